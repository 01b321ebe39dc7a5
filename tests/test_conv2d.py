"""`ops.conv2d` in float64 (GEMMs over (K, images*Ho*Wo) columns) gives the same bits as the (B*Ho*Wo, K) im2col
GEMM it replaced, on fixed-point-grid data where every sum is exact; float32 agrees with it to float32 rounding.

The replaced implementation is kept here, privately, as the reference.
"""

import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.functional import ops
from accelsim.functional.fixedpoint import quantize
from accelsim.nets.graph import Conv


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _conv2d_reference(x, weight, bias, layer):
    """ops.conv2d before the NCHW GEMMs (commit 4a2e6b7)."""
    b = x.shape[0]
    f = layer.out_channels
    g = layer.groups
    cg, fg = layer.in_channels // g, f // g
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    out = None
    for gi in range(g):
        xg = x[:, gi * cg:(gi + 1) * cg]
        if ph or pw:
            xg = np.pad(xg, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        cols = sliding_window_view(xg, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw].transpose(0, 2, 3, 1, 4, 5)
        ho, wo = cols.shape[1], cols.shape[2]
        cols = cols.reshape(b * ho * wo, -1)
        wg = weight[gi * fg:(gi + 1) * fg].reshape(fg, -1).astype(x.dtype, copy=False)
        y = cols @ wg.T
        if out is None:
            out = np.empty((b, f, ho, wo), dtype=x.dtype)
        out[:, gi * fg:(gi + 1) * fg] = y.reshape(b, ho, wo, fg).transpose(0, 3, 1, 2)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False)[None, :, None, None]
    return out


def _grid(rng, shape, frac_bits, relu_like=False):
    """Values on a fixed-point grid (integers / 2^frac_bits); ReLU-like inputs are half zeros, the rest positive."""
    v = rng.integers(-128, 128, shape) * 2.0**-frac_bits
    return np.maximum(v, 0.0) if relu_like else v


@st.composite
def _cases(draw):
    g = draw(st.integers(1, 3))
    layer = Conv(
        "c", ("x",), "y",
        in_channels=g * draw(st.integers(1, 5)), out_channels=g * draw(st.integers(1, 5)),
        kernel=(draw(st.integers(1, 5)), draw(st.integers(1, 5))),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        pad=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        groups=g,
    )
    h = draw(st.integers(max(1, layer.kernel[0] - 2 * layer.pad[0]), 12))
    w = draw(st.integers(max(1, layer.kernel[1] - 2 * layer.pad[1]), 12))
    return layer, draw(st.integers(1, 5)), h, w


@settings(max_examples=150, deadline=None)
@given(
    case=_cases(),
    seed=st.integers(0, 2**32 - 1),
    pointwise=st.booleans(),
    with_bias=st.booleans(),
    relu_like=st.booleans(),
    weight_dtype=st.sampled_from([np.float64, np.float32]),
    layout=st.sampled_from(["contiguous", "channel_slice", "fortran"]),
    chunk_images=st.integers(0, 6),
    relu=st.booleans(),
    grid=st.one_of(st.none(), st.builds(ops.OutputGrid, fl=st.integers(2, 14), bits=st.integers(4, 16),
                                        rounding=st.sampled_from(["nearest", "floor"]))),
    parallel=st.booleans(),
)
def test_float64_matches_im2col_bits(case, seed, pointwise, with_bias, relu_like, weight_dtype, layout, chunk_images,
                                     relu, grid, parallel):
    """The GEMM layouts, chunks, and the epilogue (bias, ReLU, rounding onto the output grid, serial or parallel)
    give the bits of the old conv followed by np.maximum and fixedpoint.quantize."""
    layer, b, h, w = case
    if pointwise:  # the no-copy 1x1 stride-1 unpadded case, drawn often
        layer = Conv("c", ("x",), "y", in_channels=layer.in_channels, out_channels=layer.out_channels,
                     groups=layer.groups)
    rng = np.random.default_rng(seed)
    c = layer.in_channels
    if layout == "channel_slice":
        x = _grid(rng, (b, c + 2, h, w), 7, relu_like)[:, 1:-1]
    elif layout == "fortran":
        x = np.asfortranarray(_grid(rng, (b, c, h, w), 7, relu_like))
    else:
        x = _grid(rng, (b, c, h, w), 7, relu_like)
    weight = _grid(rng, (layer.out_channels, c // layer.groups) + layer.kernel, 6).astype(weight_dtype)
    weight[rng.random(weight.shape) < 0.2] = 0.0
    bias = _grid(rng, (layer.out_channels,), 9) if with_bias else None
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    per_image = max(c // layer.groups * kh * kw, layer.out_channels // layer.groups) * 8
    per_image *= ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)
    chunk_bytes = max(1, chunk_images * per_image + chunk_images)  # chunks of 1 to 6 images, remainders included
    expected = _conv2d_reference(x, weight, bias, layer)
    with mock.patch.object(ops, "_PARALLEL_MIN_WORK", 0 if parallel else 1 << 62):
        assert _same_bits(ops._conv2d_planes(x, weight, bias, layer, chunk_bytes=chunk_bytes), expected)
        assert _same_bits(ops.conv2d(x, weight, bias, layer), expected)
        if relu:
            expected = np.maximum(expected, 0)
        if grid is not None:
            expected = quantize(expected, grid.fl, grid.bits, grid.rounding)
        got = ops._conv2d_planes(x, weight, bias, layer, chunk_bytes=chunk_bytes, relu=relu, grid=grid)
        assert _same_bits(got, expected)
        assert _same_bits(ops.conv2d(x, weight, bias, layer, relu=relu, grid=grid), expected)


def test_rounding_onto_a_grid_needs_float64():
    layer = Conv("c", ("x",), "y", in_channels=1, out_channels=1)
    x = np.ones((1, 1, 2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="needs float64"):
        ops.conv2d(x, np.ones((1, 1, 1, 1), np.float32), None, layer, grid=ops.OutputGrid(4, 8))
    relu = ops.conv2d(-x, np.ones((1, 1, 1, 1), np.float32), None, layer, relu=True)
    assert relu.dtype == np.float32 and (relu == 0).all()


@settings(max_examples=30, deadline=None)
@given(case=_cases(), seed=st.integers(0, 2**32 - 1))
def test_float32_is_the_convolution_to_float32_rounding(case, seed):
    """float32 takes the (F, K) @ (K, pixels) GEMM: the same sums as the old (pixels, K) one, rounded in another order,
    so equal within float32 rounding of the sum of |products| (and of the float64 value of the same inputs)."""
    layer, b, h, w = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, layer.in_channels, h, w)).astype(np.float32)
    weight = rng.normal(size=(layer.out_channels, layer.in_channels // layer.groups) + layer.kernel).astype(np.float32)
    bias = rng.normal(size=layer.out_channels).astype(np.float32)
    got = ops.conv2d(x, weight, bias, layer)
    assert got.dtype == np.float32
    exact = ops.conv2d(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64), layer)
    magnitude = ops.conv2d(np.abs(x).astype(np.float64), np.abs(weight).astype(np.float64),
                           np.abs(bias).astype(np.float64), layer)
    k = layer.kernel_size + 1
    tol = 2 * k * np.finfo(np.float32).eps * magnitude
    assert np.all(np.abs(got - exact) <= tol)
    assert np.all(np.abs(_conv2d_reference(x, weight, bias, layer) - exact) <= tol)


def test_column_memory_stays_within_a_chunk():
    """With a budget below one image's columns, the extra memory is one image's columns, not the batch's."""
    layer = Conv("c", ("x",), "y", in_channels=8, out_channels=8, kernel=(3, 3), pad=(1, 1))
    rng = np.random.default_rng(0)
    x = _grid(rng, (6, 8, 48, 48), 7)
    weight = _grid(rng, (8, 8, 3, 3), 6)
    one_image_cols = 8 * 9 * 48 * 48 * 8
    tracemalloc.start()
    try:
        got = ops._conv2d_planes(x, weight, None, layer, chunk_bytes=one_image_cols // 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < got.nbytes + 2 * one_image_cols  # the whole batch's columns would be 6 images' worth
    assert _same_bits(got, _conv2d_reference(x, weight, None, layer))
