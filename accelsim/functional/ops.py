"""Dense NumPy implementations of the layer operations (batch-first NCHW), used by the forward pass.

Convolutions are im2col + BLAS GEMM: on fixed-point-grid values in float64 they are exact, so a dense conv layer
gives the same accumulator values as the MAC lanes would.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.nets.graph import LRN, AvgPool, Conv, MaxPool, ShortcutSubsamplePad


def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]) -> np.ndarray:
    """Patches of `x` (B, C, H, W) as (B, Ho, Wo, C, kh, kw), zero padded: position c*kh*kw + ky*kw + kx per window."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (B, C, Ho, Wo, kh, kw)
    return win.transpose(0, 2, 3, 1, 4, 5)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, layer: Conv) -> np.ndarray:
    """Dense convolution (B, C, H, W) -> (B, F, Ho, Wo) in the dtype of `x`."""
    b = x.shape[0]
    f = layer.out_channels
    g = layer.groups
    cg, fg = layer.in_channels // g, f // g
    out = None
    for gi in range(g):
        cols = im2col(x[:, gi * cg:(gi + 1) * cg], layer.kernel, layer.stride, layer.pad)
        ho, wo = cols.shape[1], cols.shape[2]
        cols = cols.reshape(b * ho * wo, -1)
        wg = weight[gi * fg:(gi + 1) * fg].reshape(fg, -1).astype(x.dtype, copy=False)
        y = cols @ wg.T  # (B*Ho*Wo, fg)
        if out is None:
            out = np.empty((b, f, ho, wo), dtype=x.dtype)
        out[:, gi * fg:(gi + 1) * fg] = y.reshape(b, ho, wo, fg).transpose(0, 3, 1, 2)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False)[None, :, None, None]
    return out


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


def maxpool(x: np.ndarray, layer: MaxPool, out_hw: tuple[int, int]) -> np.ndarray:
    return _pool_windows(x, layer, out_hw, -np.inf).max(axis=(4, 5))


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
