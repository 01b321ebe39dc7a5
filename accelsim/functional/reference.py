"""Plain NumPy reference of the MAC lanes: the definition `run_lanes` is tested against.

It walks each kernel's weight stream one MAC at a time, vectorised over all windows, and applies the PAU's checks
literally (docs/model.md A.2.2, A.3). Slow but obviously right; use it for tests and small layers only.
"""

from __future__ import annotations

import numpy as np

from accelsim.functional.lanes import LaneResult, _prepare
from accelsim.functional.reorder import WeightStream
from accelsim.nets.graph import Conv


def _windows(x: np.ndarray, layer: Conv, ho: int, wo: int) -> np.ndarray:
    """im2col: (B, C, kh, kw, Ho, Wo) view of the zero-padded input, one column per window."""
    (py, px), (sy, sx), (kh, kw) = layer.pad, layer.stride, layer.kernel
    xp = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)))
    cols = np.empty((x.shape[0], x.shape[1], kh, kw, ho, wo), dtype=np.float64)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, ky, kx] = xp[:, :, ky : ky + sy * (ho - 1) + 1 : sy, kx : kx + sx * (wo - 1) + 1 : sx]
    return cols


def run_lanes_reference(
    x: np.ndarray,
    layer: Conv,
    stream: WeightStream,
    bias: np.ndarray,
    mode: str,
    threshold: np.ndarray | None = None,
    terminate_at_zero: bool = False,
) -> LaneResult:
    """Same contract as `accelsim.functional.lanes.run_lanes`, computed MAC by MAC in stream order."""
    p = _prepare(x, layer, stream, bias, mode, threshold)
    b, f_count, ho, wo = p.out_shape
    cg = layer.in_channels // layer.groups
    fg = layer.out_channels // layer.groups
    cols = _windows(p.x, layer, ho, wo)  # (B, C, kh, kw, Ho, Wo)
    shape = (b, f_count, ho, wo)
    acc = np.empty(shape, dtype=np.float64)
    macs = np.empty(shape, dtype=np.int32)
    terminated = np.zeros(shape, dtype=bool)
    spec_stop = np.zeros(shape, dtype=bool)
    for f in range(f_count):
        g = f // fg
        kcols = cols[:, g * cg : (g + 1) * cg].reshape(b, -1, ho, wo)  # (B, K, Ho, Wo)
        length, neg_start, n = int(p.length[f]), int(p.neg_start[f]), int(p.n_spec[f])
        a = np.full((b, ho, wo), p.bias[f], dtype=np.float64)
        m = np.full((b, ho, wo), length, dtype=np.int32)
        alive = np.ones((b, ho, wo), dtype=bool)
        term = np.zeros((b, ho, wo), dtype=bool)
        spec = np.zeros((b, ho, wo), dtype=bool)
        for i in range(length):
            a = a + stream.weights[f, i] * kcols[:, int(stream.index[f, i])]
            if p.mode == "predictive" and n > 0 and i == n - 1:
                cut = alive & (a < p.threshold[f])
                m[cut], term[cut], spec[cut] = n, True, True
                alive &= ~cut
            if p.mode != "dense" and i >= neg_start:
                cut = alive & ((a <= 0) if terminate_at_zero else (a < 0))
                m[cut], term[cut] = i + 1, True
                alive &= ~cut
        acc[:, f], macs[:, f], terminated[:, f], spec_stop[:, f] = a, m, term, spec
    return LaneResult(acc=acc, macs=macs, terminated=terminated, spec_stop=spec_stop)
