"""The compiled quantize, max pooling and weight reordering give the same bits as the NumPy code they replaced.

Each test keeps a private copy of the replaced implementation as the reference.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.errors import ConfigError, NetworkError
from accelsim.functional import ops
from accelsim.functional.fixedpoint import quantize
from accelsim.functional.reorder import NEGATIVE_ORDERS, ReorderOptions, WeightStream, reorder_kernel, reorder_layer
from accelsim.nets.graph import MaxPool

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324])


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaNs in the same places, 0 == -0.

    Which of two tied zeros NumPy's max reduction returns depends on its SIMD path (it changed between NumPy
    releases), and the sign of a zero changes nothing downstream (it quantizes to code 0, is not < 0).
    """
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# --- quantize --------------------------------------------------------------------------------------------------------


def _quantize_reference(x, fl, bits, rounding="nearest"):
    scale = math.ldexp(1.0, fl)
    codes = np.asarray(x, dtype=np.float64) * scale
    codes = np.floor(codes + 0.5) if rounding == "nearest" else np.floor(codes)
    hi = float(2 ** (bits - 1) - 1)
    np.clip(codes, -hi - 1.0, hi, out=codes)
    return codes / scale


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([1, 7, 4096, 5000]),
    fl=st.integers(-8, 70),
    bits=st.sampled_from([2, 8, 16, 24, 62]),
    rounding=st.sampled_from(["nearest", "floor"]),
    dtype=st.sampled_from([np.float64, np.float32]),
    layout=st.sampled_from(["flat", "nchw", "strided"]),
)
def test_quantize_matches_numpy(seed, size, fl, bits, rounding, dtype, layout):
    rng = np.random.default_rng(seed)
    step = 2.0**-fl
    limit = 2.0 ** (bits - 1) * step
    x = rng.normal(size=size) * limit * rng.choice([0.01, 0.5, 2.0], size=size)
    half = rng.random(size) < 0.2
    x[half] = (rng.integers(-(2**20), 2**20, int(half.sum())) + 0.5) * step  # exact half steps: the rounding ties
    x[: min(size, len(SPECIALS))] = SPECIALS[: min(size, len(SPECIALS))]
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    if layout == "nchw" and size % 4 == 0:
        x = x.reshape(2, 2, -1, 1)
    elif layout == "strided":
        x = np.repeat(x, 2)[::2]  # not contiguous: the NumPy path
    with np.errstate(all="ignore"):
        assert _same_bits(quantize(x, fl, bits, rounding), _quantize_reference(x, fl, bits, rounding))


def test_quantize_large_nchw_blob_keeps_shape_and_grid():
    x = np.random.default_rng(3).normal(size=(2, 8, 30, 30)) * 3.0
    q = quantize(x, 12, 16)
    assert q.shape == x.shape and q.dtype == np.float64
    assert _same_bits(q, _quantize_reference(x, 12, 16))


# --- max pooling -----------------------------------------------------------------------------------------------------


def _pool_windows_reference(x, layer, out_hw, fill):
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    ho, wo = out_hw
    h, w = x.shape[2], x.shape[3]
    need_h = (ho - 1) * sh + kh - (h + 2 * ph)
    need_w = (wo - 1) * sw + kw - (w + 2 * pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + max(need_h, 0)), (pw, pw + max(need_w, 0))), constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win[:, :, :ho, :wo]


def _maxpool_reference(x, layer, out_hw):
    return _pool_windows_reference(x, layer, out_hw, -np.inf).max(axis=(4, 5))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    b=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 15), w=st.integers(1, 15),
    kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), ceil_mode=st.booleans(),
    dtype=st.sampled_from([np.float64, np.float32]),
    values=st.sampled_from(["normal", "relu", "zeros", "specials"]),
    fortran=st.booleans(),
)
def test_maxpool_matches_numpy(seed, b, c, h, w, kh, kw, sh, sw, ph, pw, ceil_mode, dtype, values, fortran):
    assume(ph < kh and pw < kw)
    layer = MaxPool(name="pool", inputs=("x",), output="pool", kernel=(kh, kw), stride=(sh, sw), pad=(ph, pw),
                    ceil_mode=ceil_mode)  # fmt: skip
    try:
        out_hw = layer.out_shape([(c, h, w)])[1:]
    except NetworkError:
        assume(False)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, c, h, w))
    if values == "relu":
        x = np.maximum(x, 0)
    elif values == "zeros":  # ties between 0 and -0: NumPy keeps the later one
        x = rng.choice([0.0, -0.0, -1.0], size=x.shape)
    elif values == "specials":
        x = rng.choice(np.concatenate([SPECIALS, [-1.0, 2.0]]), size=x.shape)
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    if fortran:
        x = np.asfortranarray(x)
    got = ops.maxpool(x, layer, out_hw)
    assert _same_values(got, _maxpool_reference(x, layer, out_hw))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_parallel_path_matches_numpy(dtype):
    layer = MaxPool(name="pool", inputs=("x",), output="pool", kernel=(3, 3), stride=(2, 2), ceil_mode=True)
    x = np.random.default_rng(5).choice([0.0, -0.0, 1.0, 2.5, np.nan], size=(2, 16, 130, 130)).astype(dtype)
    out_hw = layer.out_shape([x.shape[1:]])[1:]
    assert x.shape[0] * x.shape[1] * out_hw[0] * out_hw[1] * 9 >= ops._PARALLEL_MIN_WORK
    assert _same_values(ops.maxpool(x, layer, out_hw), _maxpool_reference(x, layer, out_hw))


# --- weight reordering -----------------------------------------------------------------------------------------------


def _reorder_layer_reference(weights, n_spec=None, options=ReorderOptions()):
    """The per-kernel loop reorder_layer used to be."""
    weights = np.asarray(weights)
    f_count = weights.shape[0]
    n_spec_arr = np.zeros(f_count, dtype=np.int64) if n_spec is None else np.asarray(n_spec)
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
    return WeightStream(weights=w_out, index=i_out, length=length, neg_start=neg_start,
                        n_spec=n_spec_arr.astype(np.int32))  # fmt: skip


def _same_stream(a: WeightStream, b: WeightStream) -> bool:
    return all(_same_bits(getattr(a, k), getattr(b, k)) for k in ("weights", "index", "length", "neg_start", "n_spec"))


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    f=st.integers(1, 6), c=st.integers(1, 8), kh=st.integers(1, 3), kw=st.integers(1, 3),
    levels=st.sampled_from([1, 4, 1000]),
    zeros=st.sampled_from([0.0, 0.3, 0.9]),
    dtype=st.sampled_from([np.float64, np.float32, np.int16]),
    skip=st.booleans(),
    order=st.sampled_from(NEGATIVE_ORDERS),
)
def test_reorder_layer_matches_per_kernel_loop(data, f, c, kh, kw, levels, zeros, dtype, skip, order):
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = rng.integers(-levels, levels + 1, (f, c, kh, kw)).astype(np.float64)  # few levels: many ties (long runs)
    w[rng.random(w.shape) < zeros] = 0.0
    if dtype == np.int16:
        w = w.astype(np.int16)
    else:
        w = (w / 4.0).astype(dtype)
        w[rng.random(w.shape) < 0.1] *= -1.0  # some -0.0 among the zeros
    options = ReorderOptions(negative_order=order, skip_zero_weights=skip)
    stored = np.count_nonzero(w.reshape(f, -1), axis=1) if skip else np.full(f, c * kh * kw)
    n_spec = np.array([data.draw(st.integers(0, int(s))) for s in stored], dtype=np.int64)
    if data.draw(st.booleans()):
        n_spec = None
    assert _same_stream(reorder_layer(w, n_spec, options), _reorder_layer_reference(w, n_spec, options))


@pytest.mark.parametrize("skip", [False, True])
def test_reorder_layer_errors_name_the_first_bad_kernel(skip):
    w = np.ones((3, 1, 2, 2))
    w[2, 0, 0, 0] = np.nan
    w[1, 0, :, 0] = 0.0
    options = ReorderOptions(skip_zero_weights=skip)
    for n_spec in (np.array([0, 4, 0]), np.array([0, 2, 0]), np.array([-1, 0, 0])):
        with pytest.raises(ConfigError) as new:
            reorder_layer(w, n_spec, options)
        with pytest.raises(ConfigError) as old:
            _reorder_layer_reference(w, n_spec, options)
        assert str(new.value) == str(old.value)
    with pytest.raises(ConfigError, match="kernel 0: .*real-valued"):
        reorder_layer(np.ones((2, 1, 1, 1), dtype=complex))


def test_reorder_layer_of_kernels_without_weights():
    w = np.zeros((2, 0, 3, 3))
    assert _same_stream(reorder_layer(w), _reorder_layer_reference(w))
