"""Speed of the MAC lanes (exact mode) against a dense numpy im2col + float32 GEMM convolution, on AlexNet's convs.

Synthetic but realistic data on a 16-bit fixed-point grid: a signed, mean-subtracted-like image for conv1, sparse
non-negative (ReLU-like, about half zeros) inputs for conv2-5, zero-mean weights so that roughly half the outputs are
negative. Prints per-layer times, the MAC saving exact mode sees, and as its last line
`functional/dense time ratio: X.XX` (sum of best-of-3 lane times / sum of best-of-3 dense times).

    python benchmarks/functional_speed.py [--batch 8] [--repeat 3] [--negative-order most_negative_first] [--cpu]

`--cpu` times process CPU time instead of wall time: on a machine shared with other jobs, with
`OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1`, it measures each side's own work rather than its share of the cores.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.functional.lanes import run_lanes
from accelsim.functional.reorder import NEGATIVE_ORDERS, ReorderOptions, reorder_layer
from accelsim.nets.graph import Conv

# name, in_channels, out_channels, kernel, stride, pad, groups, input H=W (Caffe bvlc_alexnet, input 227)
ALEXNET_CONVS = [
    ("conv1", 3, 96, 11, 4, 0, 1, 227),
    ("conv2", 96, 256, 5, 1, 2, 2, 27),
    ("conv3", 256, 384, 3, 1, 1, 1, 13),
    ("conv4", 384, 384, 3, 1, 1, 2, 13),
    ("conv5", 384, 256, 3, 1, 1, 2, 13),
]


def quantize(v: np.ndarray, bits: int = 16) -> np.ndarray:
    """Round to a `bits`-bit dynamic fixed-point grid (integer / 2^frac, frac chosen so the largest value fits)."""
    top = float(np.max(np.abs(v))) or 1.0
    frac = bits - 1 - int(np.ceil(np.log2(top + 1e-300)))
    q = np.clip(np.round(v * 2.0**frac), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q / 2.0**frac


def make_layer(spec, batch: int, rng: np.random.Generator):
    name, c, f, k, s, p, g, hw = spec
    layer = Conv(name=name, inputs=("in",), output=name, in_channels=c, out_channels=f, kernel=(k, k),
                 stride=(s, s), pad=(p, p), groups=g, relu=True)  # fmt: skip
    if name == "conv1":
        x = quantize(rng.normal(0.0, 50.0, (batch, c, hw, hw)).clip(-127, 127))
    else:
        x = quantize(np.maximum(rng.normal(0.0, 1.0, (batch, c, hw, hw)), 0.0))
    w = quantize(rng.normal(0.0, 1.0 / np.sqrt(layer.kernel_size), (f, c // g, k, k)))
    bias = quantize(rng.normal(0.0, 0.05, f))
    return layer, x, w, bias


def dense_gemm(x: np.ndarray, layer: Conv, w32: np.ndarray, bias32: np.ndarray) -> np.ndarray:
    """Dense conv: numpy im2col (a copy) + BLAS GEMM per group, in the weights' dtype (float32 or float64)."""
    (k, _), (s, _), (p, _), g = layer.kernel, layer.stride, layer.pad, layer.groups
    xp = np.pad(x.astype(w32.dtype), ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (B, C, Ho, Wo, k, k)
    b, c, ho, wo = win.shape[:4]
    cg, fg = c // g, layer.out_channels // g
    out = np.empty((layer.out_channels, b * ho * wo), dtype=w32.dtype)
    for gi in range(g):
        cols = np.ascontiguousarray(win[:, gi * cg : (gi + 1) * cg].transpose(1, 4, 5, 0, 2, 3)).reshape(cg * k * k, -1)
        out[gi * fg : (gi + 1) * fg] = w32[gi * fg : (gi + 1) * fg].reshape(fg, -1) @ cols
    out += bias32[:, None]
    return out.reshape(layer.out_channels, b, ho, wo).transpose(1, 0, 2, 3)


def best_of(fn, repeat: int, clock=time.perf_counter) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        best = min(best, clock() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--negative-order", default="most_negative_first", choices=NEGATIVE_ORDERS)
    ap.add_argument("--cpu", action="store_true", help="time process CPU time instead of wall time")
    args = ap.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    rng = np.random.default_rng(args.seed)
    options = ReorderOptions(negative_order=args.negative_order)
    print(f"batch {args.batch}, best of {args.repeat}, nproc {os.cpu_count()}, negative order {args.negative_order}, "
          f"{'CPU' if args.cpu else 'wall'} time, load {os.getloadavg()[0]:.1f}")
    print(f"{'layer':6} {'GMAC':>7} {'dense s':>8} {'lanes s':>8} {'ratio':>6} {'lane GMAC/s':>11} {'MAC saving':>10} {'neg out':>7}")
    tot_dense = tot_lanes = tot_dense64 = 0.0
    tot_macs = tot_done = 0
    first_call = None
    for spec in ALEXNET_CONVS:
        layer, x, w, bias = make_layer(spec, args.batch, rng)
        stream = reorder_layer(w, None, options)
        t0 = time.perf_counter()
        res = run_lanes(x, layer, stream, bias, "exact")  # warm-up (compiles or loads the cache on the first layer)
        if first_call is None:
            first_call = time.perf_counter() - t0
        t_lanes, res = best_of(lambda: run_lanes(x, layer, stream, bias, "exact"), args.repeat, clock)
        w32, b32 = w.astype(np.float32), bias.astype(np.float32)
        t_dense, dense = best_of(lambda: dense_gemm(x, layer, w32, b32), args.repeat, clock)
        t_dense64, _ = best_of(lambda: dense_gemm(x, layer, w, bias), args.repeat, clock)
        tot_dense64 += t_dense64
        if not np.allclose(dense, res.acc, rtol=1e-4, atol=1e-3 * float(np.abs(res.acc).max())):
            raise SystemExit(f"{layer.name}: lane values disagree with the dense GEMM")
        if x.min() >= 0 and not np.array_equal(res.output, np.maximum(res.acc, 0.0)):
            raise SystemExit(f"{layer.name}: exact mode changed an output")
        dense_macs = int(res.macs.size) * layer.kernel_size
        done = int(res.macs.sum(dtype=np.int64))
        tot_dense += t_dense
        tot_lanes += t_lanes
        tot_macs += dense_macs
        tot_done += done
        print(f"{layer.name:6} {dense_macs / 1e9:7.3f} {t_dense:8.3f} {t_lanes:8.3f} {t_lanes / t_dense:6.2f} "
              f"{dense_macs / t_lanes / 1e9:11.2f} {1 - done / dense_macs:10.1%} {np.mean(res.acc < 0):7.1%}")  # fmt: skip
    print(f"{'total':6} {tot_macs / 1e9:7.3f} {tot_dense:8.3f} {tot_lanes:8.3f} {tot_lanes / tot_dense:6.2f} "
          f"{tot_macs / tot_lanes / 1e9:11.2f} {1 - tot_done / tot_macs:10.1%}")  # fmt: skip
    print(f"first run_lanes call (compile or cache load + run): {first_call:.2f} s")
    print(f"float64 GEMM (exact on the fixed-point grid) {tot_dense64:.3f} s: functional/float64-dense time ratio: "
          f"{tot_lanes / tot_dense64:.2f}")
    print(f"functional/dense time ratio: {tot_lanes / tot_dense:.2f}")


if __name__ == "__main__":
    main()
