"""Sign-based weight reordering (SnaPEA's offline pass): what the weight and index buffers of a conv layer hold.

Each kernel's weights are stored in execution order, `[speculation set] [non-negative] [negative]`, with the index
buffer mapping every stored weight back to its input position (inputs are never reordered). The order inside the
negative segment is a modelling choice the paper leaves open (docs/model.md A.7-10): most negative first by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numba
import numpy as np

from accelsim.errors import ConfigError
from accelsim.settings import declared, setting

NegativeOrder = Literal["most_negative_first", "least_negative_first", "original"]
NEGATIVE_ORDERS: tuple[str, ...] = get_args(NegativeOrder)


@declared
class ReorderOptions:
    """How the offline pass orders and stores a kernel's weights."""

    negative_order: NegativeOrder = setting(
        default="most_negative_first", help="order of each kernel's negative weights (the papers leave it open)",
        modes=("exact", "predictive"), example="least_negative_first")
    skip_zero_weights: bool = setting(
        default=False, help="do not store or execute zero weights (static pruning composed with SnaPEA; the index "
        "buffer makes it possible)", modes=("exact", "predictive"), example=True)


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
    """Positions (into the flat kernel `w`) of the N speculation weights (docs/model.md A.2.1, A.7 item 10).

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
    """Weight and index buffer contents for a conv layer with weights (F, C/groups, kh, kw).

    Kernel f's stream is `reorder_kernel(weights[f], n_spec[f], options)`; all kernels are sorted in one NumPy call
    and walked by a compiled loop, because the optimiser rebuilds the streams for every candidate N.
    """
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
    flat, stored = _checked_kernels(kernels, n_spec_arr, options)
    width = int(stored.max()) if f_count else 0
    w_out = np.zeros((f_count, width), dtype=np.float64)
    i_out = np.full((f_count, width), -1, dtype=np.int32)
    neg_start = np.zeros(f_count, dtype=np.int32)
    if f_count and flat.shape[1]:
        ascending = np.argsort(flat, axis=1)  # the fast unstable sort; `_fill_streams` orders ties by position
        _fill_streams(flat, ascending, n_spec_arr.astype(np.int64), bool(options.skip_zero_weights),
                      NEGATIVE_ORDERS.index(options.negative_order), w_out, i_out, neg_start)
    return WeightStream(
        weights=w_out, index=i_out, length=stored.astype(np.int32), neg_start=neg_start,
        n_spec=n_spec_arr.astype(np.int32),
    )


def _checked_kernels(
    kernels: np.ndarray, n_spec: np.ndarray, options: ReorderOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Kernels (F, K) as float64 rows and their stored-weight counts.

    The first bad kernel raises exactly what `reorder_kernel` raises for it, as the per-kernel loop did.
    """
    f_count = kernels.shape[0]
    flat: np.ndarray  # (F, K); declared, or the first branch's np.zeros(shape) types it as 0-d
    stored: np.ndarray
    if kernels.dtype.kind not in "fiu":
        bad = np.ones(f_count, dtype=bool)
        flat, stored = np.zeros(kernels.shape), np.zeros(f_count, dtype=np.int64)
    else:
        flat = kernels.astype(np.float64, copy=False)
        stored = np.count_nonzero(flat, axis=1) if options.skip_zero_weights else np.full(f_count, flat.shape[1])
        bad = ~np.isfinite(flat).all(axis=1) | (n_spec < 0) | (n_spec > stored)
    if bad.any():
        f = int(np.argmax(bad))
        try:
            reorder_kernel(kernels[f], int(n_spec[f]), options)
        except ConfigError as exc:
            raise ConfigError(f"reorder_layer: kernel {f}: {exc}") from None
        raise AssertionError(f"reorder_layer: kernel {f} failed the layer's checks but not reorder_kernel's")
    return flat, stored.astype(np.int64)


@numba.njit(cache=True)
def _fill_streams(flat, ascending, n_spec, skip_zero, negative_order, w_out, i_out, neg_start):  # pragma: no cover
    """`reorder_kernel` for every row of `flat`, written into the buffers: speculation set, non-negative, negative.

    `ascending` sorts each row but may order equal weights either way; putting each run of equal weights in position
    order gives the stable sort `reorder_kernel` uses. `negative_order` indexes NEGATIVE_ORDERS.
    """
    f_count, k = flat.shape
    order = np.empty(k, dtype=np.int64)  # the row's stable signed ascending order
    stored_order = np.empty(k, dtype=np.int64)  # the same restricted to stored weights
    taken = np.zeros(k, dtype=np.bool_)
    for f in range(f_count):
        row = flat[f]
        order[:] = ascending[f]
        start = 0
        while start < k:
            end = start + 1
            while end < k and row[order[end]] == row[order[start]]:
                end += 1
            if end - start > 32:
                order[start:end] = np.sort(order[start:end])
            else:
                for j in range(start + 1, end):  # insertion sort: runs of equal weights are mostly short
                    p = order[j]
                    i = j - 1
                    while i >= start and order[i] > p:
                        order[i + 1] = order[i]
                        i -= 1
                    order[i + 1] = p
            start = end
        m = 0
        for j in range(k):
            if not skip_zero or row[order[j]] != 0:
                stored_order[m] = order[j]
                m += 1
        taken[:] = False
        pos = 0
        n = n_spec[f]
        if n > 0:  # np.array_split into n groups (the first m % n one longer); largest |w| of each, first on ties
            q, r = m // n, m % n
            start = 0
            for g in range(n):
                size = q + 1 if g < r else q
                best = stored_order[start]
                best_abs = abs(row[best])
                for j in range(start + 1, start + size):
                    a = abs(row[stored_order[j]])
                    if a > best_abs:
                        best, best_abs = stored_order[j], a
                w_out[f, pos] = row[best]
                i_out[f, pos] = best
                taken[best] = True
                pos += 1
                start += size
        for p in range(k):  # the non-negative segment keeps the original order
            if not taken[p] and row[p] >= 0 and (not skip_zero or row[p] != 0):
                w_out[f, pos] = row[p]
                i_out[f, pos] = p
                pos += 1
        neg_start[f] = pos
        if negative_order == 0:  # most negative first: ascending, equal weights in position order
            for j in range(k):
                p = order[j]
                if not taken[p] and row[p] < 0:
                    w_out[f, pos] = row[p]
                    i_out[f, pos] = p
                    pos += 1
        elif negative_order == 1:  # least negative first: runs of equal weights descending, each in position order
            end = k
            while end > 0:
                start = end - 1
                while start > 0 and row[order[start - 1]] == row[order[end - 1]]:
                    start -= 1
                for j in range(start, end):
                    p = order[j]
                    if not taken[p] and row[p] < 0:
                        w_out[f, pos] = row[p]
                        i_out[f, pos] = p
                        pos += 1
                end = start
        else:  # original order
            for p in range(k):
                if not taken[p] and row[p] < 0:
                    w_out[f, pos] = row[p]
                    i_out[f, pos] = p
                    pos += 1
