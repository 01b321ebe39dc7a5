"""Dense NumPy implementations of the layer operations (batch-first NCHW), used by the forward pass.

Convolutions are im2col + BLAS GEMM on (K, images*Ho*Wo) columns: on fixed-point-grid values in float64 they are
exact, so a dense conv layer gives the same accumulator values as the MAC lanes would, in any GEMM layout; float32
(the float reference) rounds as that GEMM sums. Max pooling is a
direct Numba loop (the NumPy reduction over a window view was the forward pass's slowest step); average pooling stays
on NumPy, whose summation order inside a window depends on its iterator's choices and could not be matched bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.functional.fixedpoint import grid_constants, round_onto_grid
from accelsim.nets.graph import LRN, AvgPool, Conv, MaxPool, ShortcutSubsamplePad


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
    """Patches of `x` (B, C, H, W) as (B, Ho, Wo, C, kh, kw), zero padded: position c*kh*kw + ky*kw + kx per window."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (B, C, Ho, Wo, kh, kw)
    return win.transpose(0, 2, 3, 1, 4, 5)


# A chunk's column matrix and GEMM result each stay under this many bytes (VGG-16's conv1_2 columns: 231 MB an image).
# 32 MB keeps them closer to the caches: ResNet-20's thin CIFAR layers (16-64 channels, 9x the input as columns) ran
# 1.1-2.2x faster than with 256 MB chunks, SqueezeNet v1.1's forward pass within the noise (benchmarks/dense_forward.md,
# 2026-12-06; 16 MB was 20% slower there).
_COLS_BYTES = 32 << 20


@dataclass(frozen=True)
class OutputGrid:
    """The fixed-point grid a conv's output is stored on: `quantize(., fl, bits, rounding)` (fixedpoint.py)."""

    fl: int
    bits: int
    rounding: str = "nearest"


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, layer: Conv, *, relu: bool = False,
           grid: OutputGrid | None = None) -> np.ndarray:
    """Dense convolution (B, C, H, W) -> (B, F, Ho, Wo) in the dtype of `x`, then ReLU (`relu`) and the rounding onto
    `grid` (float64 only), bit for bit as `quantize(np.maximum(conv, 0), ...)` would give them.

    Both dtypes take `_conv2d_planes`, which does bias, ReLU and rounding in the one pass that moves the GEMM result to
    NCHW. In float64 (the fixed-point path) every sum is exact in any order, so any GEMM layout gives the same bits;
    in float32 (the float reference) the rounding of a sum depends on BLAS's summation order, which is that of the
    (F, K) @ (K, pixels) GEMM (until 2026-12 it was the (pixels, K) @ (K, F) one, 3-4x slower; the float reference's
    values then differed in the last bits, docs/model.md).
    """
    if grid is not None and x.dtype != np.float64:
        raise ValueError("conv2d: rounding onto a fixed-point grid needs float64 values")
    return _conv2d_planes(x, weight, bias, layer, relu=relu, grid=grid)


def _conv2d_planes(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, layer: Conv, chunk_bytes: int = _COLS_BYTES,
    relu: bool = False, grid: OutputGrid | None = None,
) -> np.ndarray:
    """One GEMM per chunk of images and group, weight (fg, K) @ columns (K, n*Ho*Wo) -> (fg, n, Ho*Wo).

    A chunk holds as many images as keep its columns and result under `chunk_bytes` each (at least one). Columns
    are built with one strided copy per kernel position and the result goes to NCHW by whole planes (runs of
    Ho*Wo), both far cheaper than the (B*Ho*Wo, K) rows and the per-element transpose of `_conv2d_windows`. A chunk
    of one image needs neither copy of a 1x1 stride-1 unpadded conv, and writes its GEMM into the output directly.
    One GEMM per image would save the plane copy, and is the fastest layout with single-threaded BLAS, but with two
    BLAS threads on a busy 2-core machine each call waits for both threads: SqueezeNet's convs took 2.5x longer.
    The plane copy is the epilogue (`_epilogue_serial` / `_epilogue_parallel`), which also adds the bias, applies
    the ReLU and rounds onto `grid`: one pass over the output instead of four (copy, bias, ReLU, quantize); see
    benchmarks/dense_forward.md.
    """
    b, c, h, w = x.shape
    f, g = layer.out_channels, layer.groups
    cg, fg = c // g, f // g
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{layer.name}: kernel {layer.kernel} larger than the padded input {(h + 2 * ph, w + 2 * pw)}")
    k, npix = cg * kh * kw, ho * wo
    out = np.empty((b, f, ho, wo), dtype=x.dtype)
    planes = out.reshape(b, f, npix)
    wmat = weight.reshape(f, -1).astype(x.dtype, copy=False)
    pointwise = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
    step = max(1, min(b, chunk_bytes // (max(k, fg) * npix * x.itemsize)))
    cols = np.empty((k, step * npix), dtype=x.dtype) if step > 1 or not pointwise else None
    y = np.empty((fg, step * npix), dtype=x.dtype) if step > 1 else None
    has_bias = bias is not None
    bvec = bias.astype(x.dtype, copy=False).reshape(f) if bias is not None else np.zeros(f, dtype=x.dtype)
    quant = grid is not None
    scale, lo, hi = grid_constants(grid.fl, grid.bits) if grid is not None else (1.0, 0.0, 0.0)
    nearest = grid is not None and grid.rounding == "nearest"
    for s in range(0, b, step):
        n = min(step, b - s)
        xp = x[s:s + n]
        if ph or pw:
            xp = np.pad(xp, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        for gi in range(g):
            src = xp[:, gi * cg:(gi + 1) * cg]
            if n == 1 and pointwise:
                gcols = src.reshape(cg, npix)
            else:
                assert cols is not None  # allocated unless every chunk is one image of a pointwise conv
                gcols = cols[:, :n * npix]
                view = gcols.reshape(cg, kh, kw, n, ho, wo)
                src = src.transpose(1, 0, 2, 3)
                for ky in range(kh):
                    for kx in range(kw):
                        view[:, ky, kx] = src[:, :, ky:ky + sh * (ho - 1) + 1:sh, kx:kx + sw * (wo - 1) + 1:sw]
            fs = slice(gi * fg, (gi + 1) * fg)
            wg = wmat[fs]
            dst = planes[s:s + n, fs]
            if n == 1:  # the GEMM writes the output planes, the epilogue works in place
                np.matmul(wg, gcols, out=dst[0])
                src = dst[0]
            else:
                assert y is not None  # allocated when chunks hold more than one image
                src = y[:, :n * npix]
                np.matmul(wg, gcols, out=src)
            if has_bias or relu or quant or n > 1:
                run = _epilogue_parallel if src.size >= _PARALLEL_MIN_WORK else _epilogue_serial
                run(src, dst, bvec[fs], has_bias, relu, quant, scale, lo, hi, nearest)
    return out


@numba.njit(cache=True)
def _epilogue_serial(src, dst, bias, has_bias, relu, quant, scale, lo, hi, nearest):  # pragma: no cover - compiled
    """GEMM result `src` (fg, n*npix) -> output planes `dst` (n, fg, npix), with bias, ReLU and rounding."""
    for f in range(dst.shape[1]):
        _epilogue_channel(src, dst, f, bias[f], has_bias, relu, quant, scale, lo, hi, nearest)


@numba.njit(cache=True, parallel=True)
def _epilogue_parallel(src, dst, bias, has_bias, relu, quant, scale, lo, hi, nearest):  # pragma: no cover - compiled
    """`_epilogue_serial` with the output channels shared out between threads."""
    for f in numba.prange(dst.shape[1]):
        _epilogue_channel(src, dst, f, bias[f], has_bias, relu, quant, scale, lo, hi, nearest)


@numba.njit(inline="always")
def _epilogue_channel(src, dst, f, b, has_bias, relu, quant, scale, lo, hi, nearest):  # pragma: no cover - compiled
    """Channel f of every image: `c + b`, then `np.maximum(., 0)`, then `fixedpoint.quantize`'s rounding."""
    n, _, npix = dst.shape
    for i in range(n):
        for p in range(npix):
            c = src[f, i * npix + p]
            if has_bias:
                c = c + b
            if relu and not (c >= 0.0 or c != c):  # np.maximum: NaN propagates; of c and 0 the first when equal
                c = 0.0
            dst[i, f, p] = round_onto_grid(c, scale, lo, hi, nearest) if quant else c


def fc(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    y = x.reshape(x.shape[0], -1) @ weight.astype(x.dtype, copy=False).T
    if bias is not None:
        y += bias.astype(x.dtype, copy=False)
    return y


def _pool_windows(x: np.ndarray, layer: MaxPool | AvgPool, out_hw: tuple[int, int], fill: float) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    ho, wo = out_hw
    h, w = x.shape[2], x.shape[3]
    # Pad enough on the bottom/right for ceil-mode windows that run past the input.
    need_h = (ho - 1) * sh + kh - (h + 2 * ph)
    need_w = (wo - 1) * sw + kw - (w + 2 * pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + max(need_h, 0)), (pw, pw + max(need_w, 0))), constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win[:, :, :ho, :wo]


# Below this much work (window elements) a parallel region costs more than it saves on a shared 2-core machine.
_PARALLEL_MIN_WORK = 1 << 20


def maxpool(x: np.ndarray, layer: MaxPool, out_hw: tuple[int, int]) -> np.ndarray:
    """Max over each window, in the dtype of `x`; window parts past the input (padding, ceil mode) count as -inf.

    The Numba loop gives NumPy's values, NaNs included, for the layout it takes (C-contiguous float input, output
    width above 1); other layouts keep the NumPy reduction. Of a tie between 0 and -0 either may come out (NumPy's
    own choice depends on its SIMD path); a zero's sign changes nothing downstream.
    """
    ho, wo = out_hw
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous or wo <= 1 or x.size == 0:
        return _pool_windows(x, layer, out_hw, -np.inf).max(axis=(4, 5))
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    out = np.empty((x.shape[0], x.shape[1], ho, wo), dtype=x.dtype)
    planes = x.reshape(-1, x.shape[2], x.shape[3])
    run = _maxpool_parallel if out.size * kh * kw >= _PARALLEL_MIN_WORK else _maxpool_serial
    run(planes, kh, kw, sh, sw, ph, pw, out.reshape(-1, ho, wo))
    return out


@numba.njit(cache=True, parallel=True)
def _maxpool_parallel(x, kh, kw, sh, sw, ph, pw, out):  # pragma: no cover - compiled
    """`_maxpool_serial` with chunks of planes shared out between threads."""
    n = x.shape[0]
    chunk = 16
    for first in numba.prange((n + chunk - 1) // chunk):
        scratch = np.empty((x.shape[1], out.shape[2]), dtype=x.dtype)
        for p in range(first * chunk, min(n, (first + 1) * chunk)):
            _maxpool_plane(x[p], kh, kw, sh, sw, ph, pw, scratch, out[p])


@numba.njit(cache=True)
def _maxpool_serial(x, kh, kw, sh, sw, ph, pw, out):  # pragma: no cover - compiled
    """Max pooling of planes (N, H, W) into (N, Ho, Wo)."""
    scratch = np.empty((x.shape[1], out.shape[2]), dtype=x.dtype)
    for p in range(x.shape[0]):
        _maxpool_plane(x[p], kh, kw, sh, sw, ph, pw, scratch, out[p])


@numba.njit(cache=True)
def _maxpool_plane(x, kh, kw, sh, sw, ph, pw, rowmax, out):  # pragma: no cover - compiled
    """One (H, W) plane: the max over each window's part of every input row, then over the window's rows.

    Padding (-inf) never beats an input value, so it is skipped. `_take` keeps NumPy's choices: of equal values
    the later in row-major order, of NaNs the first; splitting by rows does not change which element that is.
    """
    h, w = x.shape
    ho, wo = out.shape
    for y in range(h):
        row = x[y]
        for ox in range(wo):
            x0 = ox * sw - pw
            m = -np.inf
            for xx in range(max(x0, 0), min(x0 + kw, w)):
                m = _take(row[xx], m)
            rowmax[y, ox] = m
    for oy in range(ho):
        y0 = oy * sh - ph
        o = out[oy]
        o[:] = -np.inf
        for y in range(max(y0, 0), min(y0 + kh, h)):
            r = rowmax[y]
            for ox in range(wo):
                o[ox] = _take(r[ox], o[ox])


@numba.njit(inline="always")
def _take(v, m):  # pragma: no cover - compiled
    """max(m, v) with NumPy's tie and NaN choices, written as a select so the loops stay branch free."""
    return v if (v >= m) | ((v != v) & (m == m)) else m


def avgpool(x: np.ndarray, layer: AvgPool, out_hw: tuple[int, int]) -> np.ndarray:
    total = _pool_windows(x, layer, out_hw, 0.0).sum(axis=(4, 5))
    counts = _count_windows(x.shape[2:], layer, out_hw, include_pad=layer.count_include_pad)
    return total / counts.astype(x.dtype)


def _count_windows(hw: tuple[int, int], layer: AvgPool, out_hw: tuple[int, int], include_pad: bool) -> np.ndarray:
    counts = []
    for axis, n in enumerate(hw):
        k, s, p = layer.kernel[axis], layer.stride[axis], layer.pad[axis]
        starts = np.arange(out_hw[axis]) * s - p
        lo = starts if include_pad else np.maximum(starts, 0)
        hi = np.minimum(starts + k, n + p if include_pad else n)
        counts.append(np.maximum(hi - lo, 1))
    return np.outer(counts[0], counts[1])[None, None]


def global_avgpool(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=(2, 3), keepdims=True)


def lrn(x: np.ndarray, layer: LRN) -> np.ndarray:
    """Caffe ACROSS_CHANNELS LRN: x / (k + alpha/size * sum over `size` neighbouring channels of x^2)^beta."""
    sq = x.astype(np.float64) ** 2
    half = layer.size // 2
    padded = np.pad(sq, ((0, 0), (half, layer.size - 1 - half), (0, 0), (0, 0)))
    csum = np.cumsum(padded, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = csum[:, layer.size:] - csum[:, :-layer.size]
    return (x / (layer.k + layer.alpha / layer.size * window) ** layer.beta).astype(x.dtype)


def shortcut_subsample_pad(x: np.ndarray, layer: ShortcutSubsamplePad) -> np.ndarray:
    s = layer.stride
    y = x[:, :, ::s, ::s]
    return np.pad(y, ((0, 0), (layer.pad_channels_before, layer.pad_channels_after), (0, 0), (0, 0)))


def softmax(x: np.ndarray) -> np.ndarray:
    z = x.reshape(x.shape[0], -1).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
