"""Sign-based weight reordering (SnaPEA's offline pass): what the weight and index buffers of a conv layer hold.

Each kernel's weights are stored in execution order, `[speculation set] [non-negative] [negative]`, with the index
buffer mapping every stored weight back to its input position (inputs are never reordered). The order inside the
negative segment is a modelling choice the paper leaves open (spec A.7 item 10): most negative first by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import ConfigError

NEGATIVE_ORDERS = ("most_negative_first", "least_negative_first", "original")


@dataclass(frozen=True)
class ReorderOptions:
    """How the offline pass orders and stores a kernel's weights."""

    negative_order: str = "most_negative_first"  # order inside the negative segment
    skip_zero_weights: bool = False  # zero weights not stored/executed (the index buffer makes it possible)

    def __post_init__(self) -> None:
        if self.negative_order not in NEGATIVE_ORDERS:
            raise ConfigError(
                f"negative_order: got {self.negative_order!r}, expected one of {', '.join(NEGATIVE_ORDERS)}"
            )
        if not isinstance(self.skip_zero_weights, (bool, np.bool_)):
            raise ConfigError(f"skip_zero_weights: expected true or false, got {self.skip_zero_weights!r}")


@dataclass(frozen=True)
class WeightStream:
    """Contents of the weight and index buffers for one conv layer: each kernel's weights in execution order."""

    weights: np.ndarray  # (F, L) float64 weights in execution order, 0 in the padding beyond `length`
    index: np.ndarray  # (F, L) int32 flat position of each weight in its kernel (c*kh*kw + ky*kw + kx); -1 in padding
    length: np.ndarray  # (F,) int32 stored (= executed when not cut short) weights per kernel
    neg_start: np.ndarray  # (F,) int32 stream position where the negative segment (the PAU's sign checks) begins
    n_spec: np.ndarray  # (F,) int32 speculation-set size N per kernel (0 = no speculation check = exact mode)

    @property
    def n_kernels(self) -> int:
        return int(self.weights.shape[0])


def _flat_kernel(w: np.ndarray, what: str = "kernel") -> np.ndarray:
    w = np.asarray(w)
    if w.dtype.kind not in "fiu":
        raise ConfigError(f"{what}: expected real-valued weights, got dtype {w.dtype}")
    flat = w.astype(np.float64, copy=False).reshape(-1)
    if not np.all(np.isfinite(flat)):
        raise ConfigError(f"{what}: weights must be finite (found NaN or inf)")
    return flat


def _check_n(n: object, size: int, what: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ConfigError(f"{what}: the speculation-set size N must be an integer, got {n!r}")
    n = int(n)
    if n < 0 or n > size:
        raise ConfigError(f"{what}: the speculation-set size N must lie in [0, {size}] (stored weights), got {n}")
    return n


def speculation_set(w: np.ndarray, n: int) -> np.ndarray:
    """Positions (into the flat kernel `w`) of the N speculation weights (spec A.2.1, A.7 item 10).

    Signed ascending stable sort, `np.array_split` into N near-equal groups, the largest-|w| weight of each group
    (the first in sorted order on ties). Returned in group order (most negative group first).
    """
    flat = _flat_kernel(w)
    n = _check_n(n, flat.size, "speculation_set")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(flat, kind="stable")
    picks = [g[int(np.argmax(np.abs(flat[g])))] for g in np.array_split(order, n)]
    return np.asarray(picks, dtype=np.int64)


def reorder_kernel(
    w: np.ndarray, n_spec: int = 0, options: ReorderOptions = ReorderOptions()
) -> tuple[np.ndarray, int]:
    """Execution order of one kernel: (positions into the flat kernel, stream position where negatives begin).

    Order: [speculation set] [remaining non-negative weights, original order, zeros included unless skipped]
    [remaining negative weights in `options.negative_order`]. With `skip_zero_weights` the zero weights are not
    stored, and the speculation set is chosen among the stored (non-zero) weights, so N counts executed MACs.
    """
    flat = _flat_kernel(w)
    stored = np.flatnonzero(flat != 0) if options.skip_zero_weights else np.arange(flat.size)
    n = _check_n(n_spec, stored.size, "reorder_kernel")
    spec = stored[speculation_set(flat[stored], n)] if n else np.zeros(0, dtype=np.int64)
    rest = np.ones(flat.size, dtype=bool)
    rest[spec] = False
    if options.skip_zero_weights:
        rest &= flat != 0
    nonneg = np.flatnonzero(rest & (flat >= 0))
    neg = np.flatnonzero(rest & (flat < 0))
    if options.negative_order == "most_negative_first":
        neg = neg[np.argsort(flat[neg], kind="stable")]
    elif options.negative_order == "least_negative_first":
        neg = neg[np.argsort(-flat[neg], kind="stable")]
    positions = np.concatenate([spec, nonneg, neg]).astype(np.int64)
    return positions, int(spec.size + nonneg.size)


def reorder_layer(
    weights: np.ndarray, n_spec: np.ndarray | None = None, options: ReorderOptions = ReorderOptions()
) -> WeightStream:
    """Weight and index buffer contents for a conv layer with weights (F, C/groups, kh, kw)."""
    weights = np.asarray(weights)
    if weights.ndim != 4:
        raise ConfigError(f"reorder_layer: expected conv weights of shape (F, C/groups, kh, kw), got {weights.shape}")
    f_count = weights.shape[0]
    if n_spec is None:
        n_spec_arr = np.zeros(f_count, dtype=np.int64)
    else:
        n_spec_arr = np.asarray(n_spec)
        if n_spec_arr.shape != (f_count,) or n_spec_arr.dtype.kind not in "iu":
            raise ConfigError(
                f"reorder_layer: n_spec must hold one integer per kernel, shape ({f_count},); "
                f"got shape {n_spec_arr.shape} dtype {n_spec_arr.dtype}"
            )
    kernels = weights.reshape(f_count, -1)
    orders = []
    neg_start = np.zeros(f_count, dtype=np.int32)
    for f in range(f_count):
        try:
            pos, ns = reorder_kernel(kernels[f], int(n_spec_arr[f]), options)
        except ConfigError as exc:
            raise ConfigError(f"reorder_layer: kernel {f}: {exc}") from None
        orders.append(pos)
        neg_start[f] = ns
    length = np.asarray([len(p) for p in orders], dtype=np.int32)
    width = int(length.max()) if f_count else 0
    w_out = np.zeros((f_count, width), dtype=np.float64)
    i_out = np.full((f_count, width), -1, dtype=np.int32)
    for f, pos in enumerate(orders):
        w_out[f, : len(pos)] = kernels[f, pos]
        i_out[f, : len(pos)] = pos
    return WeightStream(
        weights=w_out, index=i_out, length=length, neg_start=neg_start, n_spec=n_spec_arr.astype(np.int32)
    )
