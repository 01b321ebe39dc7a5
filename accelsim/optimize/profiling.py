"""Kernel profiling (Algorithm 1's first pass) with a per-kernel proxy instead of a network pass per grid point.

The papers simulate the whole network for every kernel and every (Th, N): thousands of kernels x a grid x the data
set, which is intractable. Here, per layer and per N of the grid, one run of the MAC lanes in exact mode on the
N-speculation weight stream gives every window's MACs when the check does not stop it, and one GEMM with only the
speculation-set weights gives every window's partial sum after N MACs (bias included, exactly what the PAU compares).
Sorting a kernel's windows by that partial sum then gives, for all thresholds at once, the kernel's exact MAC count
and the proxy for its error: the share of the kernel's positive output mass (sum of its post-ReLU outputs) that the
speculation would zero. The local pass then measures the true accuracy of the candidates this pass keeps.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from accelsim.functional import ops
from accelsim.functional.lanes import run_lanes
from accelsim.functional.reorder import ReorderOptions, reorder_layer
from accelsim.nets.graph import Conv
from accelsim.optimize.grid import SearchSettings

_CHUNK_WINDOWS = 1 << 18  # windows per im2col chunk (bounds the memory of the speculation-set GEMM)


@dataclass(frozen=True)
class LayerProfile:
    """ParamK of one layer: the t-th candidate (N, Th, MACs, proxy loss) of every kernel, t = 0 most aggressive.

    Column t is each kernel's cheapest profiled setting whose proxy loss is at most `levels[t]` (ties: less loss,
    then smaller N, so exact mode wins a tie). MACs are totals over the profiling images.
    """

    layer: str
    n_spec: np.ndarray  # (F, T) int32, 0 = exact mode
    threshold: np.ndarray  # (F, T) float64, activation units, on the accumulator grid
    op: np.ndarray  # (F, T) int64
    loss: np.ndarray  # (F, T) float64, share of the kernel's positive output mass zeroed
    exact_op: np.ndarray  # (F,) int64: exact-mode MACs of each kernel
    scale: np.ndarray  # (F,) float64: the kernel's output scale (std of its dense pre-ReLU outputs)
    candidates: np.ndarray  # (F,) int32: profiled settings that beat exact mode within levels[0]

    def column(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.n_spec[:, t].copy(), self.threshold[:, t].copy()

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() if isinstance(getattr(self, k), np.ndarray) else getattr(self, k)
                for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "LayerProfile":
        return cls(
            layer=d["layer"],
            n_spec=np.asarray(d["n_spec"], dtype=np.int32),
            threshold=np.asarray(d["threshold"], dtype=np.float64),
            op=np.asarray(d["op"], dtype=np.int64),
            loss=np.asarray(d["loss"], dtype=np.float64),
            exact_op=np.asarray(d["exact_op"], dtype=np.int64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            candidates=np.asarray(d["candidates"], dtype=np.int32),
        )


def _by_kernel(a: np.ndarray) -> np.ndarray:
    """(B, F, Ho, Wo) -> (F, B*Ho*Wo), windows in (image, y, x) order."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1))


def speculation_sums(x: np.ndarray, layer: Conv, spec_w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(F, windows) partial sums after the speculation MACs: bias + the speculation-set weights' products.

    `spec_w` is (F, K) with only the speculation-set weights non-zero. On fixed-point values every sum is exact,
    so any summation order gives the PAU's value bit for bit.
    """
    f_count, g = layer.out_channels, layer.groups
    cg, fg = layer.in_channels // g, f_count // g
    b = x.shape[0]
    _, ho, wo = layer.out_shape([tuple(x.shape[1:])])
    out = np.empty((f_count, b * ho * wo))
    step = max(1, _CHUNK_WINDOWS // max(1, ho * wo))
    for gi in range(g):
        fs = slice(gi * fg, (gi + 1) * fg)
        for s in range(0, b, step):
            cols = ops.im2col(x[s : s + step, gi * cg : (gi + 1) * cg], layer.kernel, layer.stride, layer.pad)
            cols = cols.reshape(-1, cg * layer.kernel[0] * layer.kernel[1])
            out[fs, s * ho * wo : (s + len(cols) // (ho * wo)) * ho * wo] = spec_w[fs] @ cols.T
    out += bias[:, None]
    return out


def _thresholds(fractions: np.ndarray, scale: float, unit: float | None) -> np.ndarray:
    th = fractions * scale
    if unit is not None:  # on the accumulator grid, so the forward pass's quantisation leaves them unchanged
        th = np.round(th / unit) * unit
    return th


def _kernel_candidates(p: np.ndarray, out_pos: np.ndarray, macs_go: np.ndarray, n: int, ths: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """MACs and proxy loss of one kernel for every threshold at once (windows with p < Th stop after n MACs)."""
    order = np.argsort(p, kind="stable")
    ps = p[order]
    saved = np.concatenate([[0], np.cumsum(macs_go[order].astype(np.int64) - n)])
    lost = np.concatenate([[0.0], np.cumsum(out_pos[order])])
    k = np.searchsorted(ps, ths, side="left")  # windows with partial sum < Th
    op = int(macs_go.sum(dtype=np.int64)) - saved[k]
    total = lost[-1]
    loss = lost[k] / total if total > 0 else np.zeros(len(ths))
    return op, loss


def profile_layer(
    x: np.ndarray,
    layer: Conv,
    weights: np.ndarray,
    bias: np.ndarray,
    settings: SearchSettings,
    reorder: ReorderOptions = ReorderOptions(),
    acc_unit: float | None = None,
    terminate_at_zero: bool = False,
    workers: int | None = None,
) -> LayerProfile:
    """ParamK of one conv layer from its (cached, fixed-point) input `x` on the profiling images."""
    f_count = layer.out_channels
    exact = run_lanes(x, layer, reorder_layer(weights, None, reorder), bias, "exact",
                      terminate_at_zero=terminate_at_zero)
    s = _by_kernel(exact.acc)
    out_pos = np.maximum(s, 0.0)
    exact_op = _by_kernel(exact.macs).sum(axis=1, dtype=np.int64)
    scale = s.std(axis=1)
    layer_scale = float(s.std()) if s.size else 0.0
    fallback = layer_scale if layer_scale > 0 else (acc_unit or 1.0)
    scale = np.where(scale > 0, scale, fallback)
    fracs = np.asarray(settings.th_fractions, dtype=np.float64)
    flat_w = weights.reshape(f_count, -1)
    stored = np.count_nonzero(flat_w, axis=1) if reorder.skip_zero_weights else np.full(f_count, flat_w.shape[1])
    # Every kernel's candidate list starts with exact mode (N = 0, loss 0).
    cand_n = [[0] for _ in range(f_count)]
    cand_th = [[0.0] for _ in range(f_count)]
    cand_op = [[int(v)] for v in exact_op]
    cand_loss = [[0.0] for _ in range(f_count)]
    workers = workers or os.cpu_count() or 1
    for n in settings.n_values(layer.kernel_size):
        n_arr = np.minimum(n, stored).astype(np.int64)
        stream = reorder_layer(weights, n_arr, reorder)
        go = run_lanes(x, layer, stream, bias, "exact", terminate_at_zero=terminate_at_zero)
        macs_go = _by_kernel(go.macs)
        spec_w = np.zeros_like(flat_w)
        for f in range(f_count):
            k = int(n_arr[f])
            spec_w[f, stream.index[f, :k]] = stream.weights[f, :k]
        p = speculation_sums(x, layer, spec_w, bias)

        def one(f: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
            ths = _thresholds(fracs, float(scale[f]), acc_unit)
            op, loss = _kernel_candidates(p[f], out_pos[f], macs_go[f], int(n_arr[f]), ths)
            return f, ths, op, loss

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f, ths, op, loss in pool.map(one, range(f_count)):
                if n_arr[f] == 0:
                    continue
                cand_n[f] += [int(n_arr[f])] * len(ths)
                cand_th[f] += ths.tolist()
                cand_op[f] += op.tolist()
                cand_loss[f] += loss.tolist()
    levels = np.asarray(settings.levels)
    T = len(levels)
    out_n = np.zeros((f_count, T), dtype=np.int32)
    out_th = np.zeros((f_count, T))
    out_op = np.zeros((f_count, T), dtype=np.int64)
    out_loss = np.zeros((f_count, T))
    count = np.zeros(f_count, dtype=np.int32)
    for f in range(f_count):
        n_f, th_f = np.asarray(cand_n[f]), np.asarray(cand_th[f])
        op_f, loss_f = np.asarray(cand_op[f]), np.asarray(cand_loss[f])
        count[f] = int(np.count_nonzero((op_f < exact_op[f]) & (loss_f <= levels[0])))
        rank = np.lexsort((n_f, loss_f, op_f))  # by MACs, then loss, then N (exact first among equals)
        for t, level in enumerate(levels):
            i = rank[np.argmax(loss_f[rank] <= level)]  # exact mode (loss 0) always qualifies
            out_n[f, t], out_th[f, t], out_op[f, t], out_loss[f, t] = n_f[i], th_f[i], op_f[i], loss_f[i]
    out_th[out_n == 0] = 0.0
    return LayerProfile(layer=layer.name, n_spec=out_n, threshold=out_th, op=out_op, loss=out_loss,
                        exact_op=exact_op, scale=scale, candidates=count)
