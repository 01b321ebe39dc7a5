"""The Numba MAC lanes against the plain NumPy reference, plus the invariants of exact and predictive mode."""


import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.errors import ConfigError
from accelsim.functional import lanes, simd
from accelsim.functional.lanes import LaneResult, run_lanes
from accelsim.functional.reference import run_lanes_reference
from accelsim.functional.reorder import NEGATIVE_ORDERS, ReorderOptions, reorder_layer
from accelsim.nets.graph import Conv

FIELDS = ("acc", "macs", "terminated", "spec_stop", "output")


def conv(c, f, k=(3, 3), stride=(1, 1), pad=(0, 0), groups=1):
    return Conv(name="c", inputs=("x",), output="y", in_channels=c, out_channels=f, kernel=k, stride=stride,
                pad=pad, groups=groups)  # fmt: skip


def assert_same(a: LaneResult, b: LaneResult):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), f"{name} differs at {np.argwhere(x != y)[:5].tolist()}"


@st.composite
def cases(draw):
    """A small conv layer with weights and inputs on a fixed-point grid (so float sums are exact)."""
    g = draw(st.integers(1, 2))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sy, sx = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    py, px = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 11))
    b = draw(st.integers(1, 2))
    layer = conv(cg * g, fg * g, (kh, kw), (sy, sx), (py, px), g)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    f = fg * g
    wts = rng.integers(-6, 7, (f, cg, kh, kw)) / 8.0
    for i in range(f):  # special kernels: all positive, all negative, all zero, ties
        kind = draw(st.sampled_from(["random", "random", "positive", "negative", "zero", "ties"]))
        if kind == "positive":
            wts[i] = np.abs(wts[i]) + 0.125
        elif kind == "negative":
            wts[i] = -np.abs(wts[i]) - 0.125
        elif kind == "zero":
            wts[i] = 0.0
        elif kind == "ties":
            wts[i] = rng.choice([-0.5, 0.5], wts[i].shape)
    x = np.maximum(rng.integers(-4, 9, (b, cg * g, h, w)), 0) / 4.0  # ReLU-like: many zeros
    if draw(st.booleans()):
        x[0] = 0.0  # all-zero windows
    options = ReorderOptions(negative_order=draw(st.sampled_from(NEGATIVE_ORDERS)),
                             skip_zero_weights=draw(st.booleans()))
    stored = np.count_nonzero(wts.reshape(f, -1), axis=1) if options.skip_zero_weights else np.full(f, cg * kh * kw)
    n_spec = np.array([draw(st.integers(0, int(s))) for s in stored], dtype=np.int64)
    stream = reorder_layer(wts, n_spec, options)
    bias = rng.integers(-4, 5, f) / 8.0
    threshold = rng.integers(-8, 9, f) / 8.0
    return layer, x, stream, bias, threshold


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), mode=st.sampled_from(["dense", "exact", "predictive"]), at_zero=st.booleans())
def test_numba_matches_reference(case, mode, at_zero):
    layer, x, stream, bias, threshold = case
    fast = run_lanes(x, layer, stream, bias, mode, threshold, at_zero)
    ref = run_lanes_reference(x, layer, stream, bias, mode, threshold, at_zero)
    assert_same(fast, ref)
    length = stream.length.astype(np.int32)[None, :, None, None]
    assert np.all(fast.macs <= length)
    assert np.all(fast.spec_stop <= fast.terminated)
    if mode == "dense":
        assert np.all(fast.macs == length) and not fast.terminated.any()
    if mode == "exact":
        assert not fast.spec_stop.any()
        assert np.array_equal(fast.output, np.maximum(fast.acc, 0.0))  # exact mode never changes an output
        assert np.all(fast.macs[~fast.terminated] == np.broadcast_to(length, fast.macs.shape)[~fast.terminated])
    if mode == "predictive":
        n = stream.n_spec.astype(np.int32)[None, :, None, None]
        assert np.all(np.where(fast.spec_stop, fast.macs == n, True))


@settings(max_examples=50, deadline=None)
@given(case=cases(), mode=st.sampled_from(["exact", "predictive"]), at_zero=st.booleans())
def test_signed_inputs_match_reference(case, mode, at_zero):
    """Inputs of either sign (a first layer): not sign-clean, the lanes must still follow the PAU literally."""
    layer, x, stream, bias, threshold = case
    x = x - 1.0
    assert_same(
        run_lanes(x, layer, stream, bias, mode, threshold, at_zero),
        run_lanes_reference(x, layer, stream, bias, mode, threshold, at_zero),
    )


def test_dense_values_match_a_direct_convolution():
    rng = np.random.default_rng(3)
    layer = conv(4, 6, (3, 3), (2, 2), (1, 1), groups=2)
    w = rng.integers(-8, 8, (6, 2, 3, 3)) / 16.0
    x = rng.integers(0, 8, (2, 4, 7, 8)) / 4.0
    bias = rng.integers(-4, 4, 6) / 4.0
    res = run_lanes(x, layer, reorder_layer(w), bias, "dense")
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((2, 6, 4, 4))
    for f in range(6):
        g = f // 3
        for y in range(4):
            for xx in range(4):
                want[:, f, y, xx] = bias[f] + np.einsum(
                    "bcij,cij->b", xp[:, 2 * g : 2 * g + 2, 2 * y : 2 * y + 3, 2 * xx : 2 * xx + 3], w[f]
                )
    assert np.array_equal(res.acc, want)


def test_hand_checked_exact_and_predictive():
    """1x3 kernel [2, -3, -1] on input [1, 1, 1] (Fig 3.4 shape): exact stops after 2 MACs, predictive after 1."""
    layer = conv(1, 1, (1, 3))
    stream = reorder_layer(np.array([[[[2.0, -3.0, -1.0]]]]), np.array([1]))
    x = np.ones((1, 1, 1, 3))
    exact = run_lanes(x, layer, reorder_layer(np.array([[[[2.0, -3.0, -1.0]]]])), np.zeros(1), "exact")
    assert exact.acc.item() == -2.0 and exact.macs.item() == 2 and exact.terminated.item()
    # speculation set of N=1 is the largest-|w| weight, -3: acc = -3 < th = 0 -> cut after 1 MAC
    pred = run_lanes(x, layer, stream, np.zeros(1), "predictive", threshold=np.array([0.0]))
    assert pred.macs.item() == 1 and pred.spec_stop.item() and pred.output.item() == 0.0
    keep = run_lanes(x, layer, stream, np.zeros(1), "predictive", threshold=np.array([-5.0]))
    # stream -3 | 2 | -1: no check at the non-negative weight, the sign check after the last MAC (-2) cuts
    assert keep.macs.item() == 3 and keep.terminated.item() and not keep.spec_stop.item()
    # a sum that reaches exactly 0: cut only with terminate_at_zero
    stream0 = reorder_layer(np.array([[[[2.0, -2.0, 1.0]]]]))
    assert run_lanes(x, layer, stream0, np.zeros(1), "exact").macs.item() == 3
    assert run_lanes(x, layer, stream0, np.zeros(1), "exact", terminate_at_zero=True).macs.item() == 3
    assert run_lanes(x, layer, reorder_layer(np.array([[[[2.0, -2.0, -1.0]]]])), np.zeros(1), "exact",
                     terminate_at_zero=True).macs.item() == 2  # fmt: skip


def test_most_negative_first_cuts_no_later_on_uniform_windows():
    """With equal inputs in a window the products follow the weights, so most-negative-first stops first."""
    rng = np.random.default_rng(5)
    layer = conv(8, 32, (3, 3), pad=(0, 0))
    w = rng.integers(-8, 8, (32, 8, 3, 3)) / 8.0
    x = np.full((1, 8, 6, 6), 0.5)
    bias = rng.integers(-8, 8, 32) / 4.0
    most = run_lanes(x, layer, reorder_layer(w, options=ReorderOptions("most_negative_first")), bias, "exact")
    least = run_lanes(x, layer, reorder_layer(w, options=ReorderOptions("least_negative_first")), bias, "exact")
    assert np.array_equal(most.terminated, least.terminated)
    assert np.all(most.macs <= least.macs)
    assert np.any(most.macs < least.macs)


def test_deterministic_whatever_the_thread_count():
    rng = np.random.default_rng(7)
    layer = conv(6, 16, (3, 3), pad=(1, 1), groups=2)
    w = rng.integers(-8, 8, (16, 3, 3, 3)) / 8.0
    x = np.maximum(rng.integers(-4, 8, (2, 6, 9, 9)), 0) / 4.0
    stream = reorder_layer(w, rng.integers(0, 5, 16))
    args = (x, layer, stream, rng.integers(-4, 4, 16) / 8.0, "predictive", rng.integers(-4, 4, 16) / 4.0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_lanes(*args)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run_lanes(*args)
    finally:
        numba.set_num_threads(before)
    assert_same(one, many)


def test_bad_arguments_are_reported():
    layer = conv(2, 3, (3, 3))
    stream = reorder_layer(np.ones((3, 2, 3, 3)))
    x = np.ones((1, 2, 5, 5))
    with pytest.raises(ConfigError, match="unknown mode"):
        run_lanes(x, layer, stream, np.zeros(3), "fast")
    with pytest.raises(ConfigError, match="needs a threshold"):
        run_lanes(x, layer, stream, np.zeros(3), "predictive")
    with pytest.raises(ConfigError, match=r"input must be \(B, 2, H, W\)"):
        run_lanes(np.ones((1, 3, 5, 5)), layer, stream, np.zeros(3), "exact")
    with pytest.raises(ConfigError, match="weight stream"):
        run_lanes(x, layer, reorder_layer(np.ones((4, 2, 3, 3))), np.zeros(4), "exact")
    with pytest.raises(ConfigError, match="bias"):
        run_lanes(x, layer, stream, np.zeros(2), "exact")
    with pytest.raises(ConfigError, match="index out of range"):
        run_lanes(np.ones((1, 1, 5, 5)), conv(1, 3, (3, 3)), stream, np.zeros(3), "exact")
    with pytest.raises(ValueError):  # kernel larger than the padded input (NetworkError is a ValueError)
        run_lanes(np.ones((1, 2, 2, 2)), layer, stream, np.zeros(3), "exact")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), mode=st.sampled_from(["dense", "exact", "predictive"]), at_zero=st.booleans())
def test_off_grid_values_match_reference_bit_for_bit(case, mode, at_zero):
    """Values off any fixed-point grid: no GEMM shortcut is exact, the lanes must sum in stream order."""
    layer, x, stream, bias, threshold = case
    rng = np.random.default_rng(int(x.size))
    x = x * (1.0 + rng.random(x.shape) * 1e-3) + np.pi * 1e-7 * (x > 0)
    # (all-zero weights or inputs make every sum exact whatever the values: the walk is still compared)
    assert not lanes._sums_are_exact(x, stream.weights, bias) or not x.any() or not stream.weights.any()
    assert_same(
        run_lanes(x, layer, stream, bias, mode, threshold, at_zero),
        run_lanes_reference(x, layer, stream, bias, mode, threshold, at_zero),
    )


def test_gemm_shortcut_is_taken_only_where_sums_are_exact():
    w = np.array([[0.5, -0.25, 0.125]])
    assert lanes._sums_are_exact(np.array([1.0, 2.5, 0.75]), w, np.array([0.25]))
    assert not lanes._sums_are_exact(np.array([1.0, 0.1]), w, np.array([0.0]))  # 0.1 lies on no short grid
    assert not lanes._sums_are_exact(np.array([2.0**60, 1.0]), w, np.array([0.0]))  # sums beyond 2**52 units
    assert not lanes._sums_are_exact(np.array([1.0]), w, np.array([2.0**-40]))  # bias finer than the products


def test_dense_gemm_path_matches_the_walk(monkeypatch):
    rng = np.random.default_rng(11)
    layer = conv(6, 8, (3, 3), (2, 1), (1, 1), groups=2)
    w = rng.integers(-8, 8, (8, 3, 3, 3)) / 8.0
    x = rng.integers(-4, 8, (2, 6, 9, 7)) / 4.0
    stream = reorder_layer(w, options=ReorderOptions(skip_zero_weights=True))
    bias = rng.integers(-4, 4, 8) / 8.0
    fast = run_lanes(x, layer, stream, bias, "dense")
    monkeypatch.setattr(lanes, "_sums_are_exact", lambda *a: False)
    assert_same(fast, run_lanes(x, layer, stream, bias, "dense"))
    assert_same(fast, run_lanes_reference(x, layer, stream, bias, "dense"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), at_zero=st.booleans(), signed=st.booleans(), off_grid=st.booleans())
def test_predictive_outputs_equal_the_lanes_output(case, at_zero, signed, off_grid):
    """The optimiser's GEMM shortcut gives the lanes' predictive outputs bit for bit, also where it must walk."""
    layer, x, stream, bias, threshold = case
    if signed:
        x = x - 1.0
    if off_grid:
        x = x * (1.0 + np.random.default_rng(int(x.size)).random(x.shape) * 1e-3)
    got = lanes.predictive_outputs(x, layer, stream, bias, threshold, at_zero)
    want = run_lanes(x, layer, stream, bias, "predictive", threshold, at_zero).output
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


def test_predictive_outputs_take_the_gemm_path_on_the_grid(monkeypatch):
    rng = np.random.default_rng(5)
    layer = conv(4, 6, (3, 3), (1, 1), (1, 1), groups=2)
    w = rng.integers(-8, 8, (6, 2, 3, 3)) / 8.0
    x = np.maximum(rng.integers(-4, 8, (2, 4, 7, 7)), 0) / 4.0
    stream = reorder_layer(w, np.array([0, 1, 3, 0, 2, 18]))
    bias, threshold = rng.integers(-4, 4, 6) / 8.0, rng.integers(-8, 8, 6) / 8.0
    want = run_lanes(x, layer, stream, bias, "predictive", threshold).output
    monkeypatch.setattr(lanes, "run_lanes", lambda *a, **k: pytest.fail("walked the lanes on exact sums"))
    assert np.array_equal(lanes.predictive_outputs(x, layer, stream, bias, threshold), want)


@st.composite
def long_kernels(draw):
    """Conv layers with long negative segments (up to 8 x 5 x 5 weights), so the walk spans many checkpoint blocks."""
    cg, f = draw(st.integers(2, 8)), draw(st.integers(1, 4))
    k = draw(st.integers(3, 5))
    layer = conv(cg, f, (k, k), pad=(1, 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    wts = rng.integers(-40, 12, (f, cg, k, k)) / 16.0  # mostly negative: long negative segments
    x = np.maximum(rng.integers(-3, 9, (draw(st.integers(1, 2)), cg, 7, 9)), 0) / 4.0
    n_spec = rng.integers(0, 4, f)
    stream = reorder_layer(wts, n_spec, ReorderOptions(negative_order=draw(st.sampled_from(NEGATIVE_ORDERS))))
    bias = rng.integers(-8, 200, f) / 4.0  # large positive biases: stops spread over the whole segment
    threshold = rng.integers(-8, 40, f) / 4.0
    return layer, x, stream, bias, threshold


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=long_kernels(), mode=st.sampled_from(["exact", "predictive"]), at_zero=st.booleans(),
       signed=st.booleans(), off_grid=st.booleans())
def test_trace_blocks_find_the_reference_stops(case, mode, at_zero, signed, off_grid):
    """The stored trace (a partial sum, and for signed inputs a running minimum, every `simd.TRACE_BLOCK` weights)
    and the re-walk of the failing block find the reference's stops, whether the partial sum can only fall or not,
    fused multiply-adds or not, with stops spread over many blocks."""
    layer, x, stream, bias, threshold = case
    if signed:
        x = x - 0.75  # on the grid still; the negative segment's partial sums go both ways
    if off_grid:
        x = x * (1.0 + np.random.default_rng(int(x.size)).random(x.shape) * 1e-3)
    got = run_lanes(x, layer, stream, bias, mode, threshold, at_zero)
    assert_same(got, run_lanes_reference(x, layer, stream, bias, mode, threshold, at_zero))
    assert got.exact_sums == (not off_grid or not x.any())


def test_window_stats_count_what_the_arrays_say():
    rng = np.random.default_rng(2)
    shape = (3, 5, 7, 6)
    acc = rng.integers(-3, 4, shape) / 2.0
    term = (acc <= 0) & (rng.random(shape) < 0.8) | (rng.random(shape) < 0.05)
    spec = term & (rng.random(shape) < 0.4)
    res = LaneResult(acc=acc, macs=rng.integers(0, 50, shape).astype(np.int32), terminated=term, spec_stop=spec)
    for at_zero in (False, True):
        neg = acc <= 0 if at_zero else acc < 0
        pos = acc > 0
        want = {"macs": int(res.macs.sum()), "neg": int(neg.sum()), "pos": int(pos.sum()),
                "zero_out": int((res.output == 0).sum()), "tn_spec": int((spec & neg).sum()),
                "tn_any": int((term & neg).sum()), "fn": int((spec & pos).sum()),
                "mismatches": int((term & ~spec & pos).sum())}
        assert lanes.window_stats(res, at_zero) == want


def test_a_dense_result_counts_as_its_full_arrays_would():
    """`LaneResult.of_dense` holds broadcast views and `window_stats` counts it from the sums alone: the same counts
    and outputs as a result with full per-window arrays, including -0.0 and exact zeros."""
    rng = np.random.default_rng(5)
    shape = (2, 4, 5, 3)
    acc = rng.integers(-3, 4, shape) / 2.0
    acc[0, 0, 0, :2] = -0.0
    k = 27
    full = LaneResult(acc=acc, macs=np.full(shape, k, np.int32), terminated=np.zeros(shape, bool),
                      spec_stop=np.zeros(shape, bool))
    dense = LaneResult.of_dense(acc, k)
    assert dense.dense and not dense.macs.flags.writeable and dense.macs.strides == (0, 0, 0, 0)
    np.testing.assert_array_equal(dense.output, full.output)
    for at_zero in (False, True):
        assert lanes.window_stats(dense, at_zero) == lanes.window_stats(full, at_zero)
    empty = np.zeros((0, 4, 5, 3))
    assert lanes.window_stats(LaneResult.of_dense(empty, k))["macs"] == 0


def test_input_facts_are_the_numpy_ones():
    """One pass gives what the NumPy checks gave: finite, min (0 when all are >= 0), max |x|, float32-exact."""
    rng = np.random.default_rng(6)
    on_grid = rng.integers(-300, 300, 1000) / 64.0
    for x in (on_grid, np.abs(on_grid), rng.normal(size=1000), np.array([-0.0, 0.0, 1e300]), np.zeros(0),
              np.array([1.0, np.nan]), np.array([np.inf])):
        finite, lo, top, f32 = lanes._input_facts(x)
        assert finite == bool(np.all(np.isfinite(x)))
        if finite:
            assert lo == np.min(x, initial=0.0) and top == np.max(np.abs(x), initial=0.0)
            with np.errstate(over="ignore"):  # 1e300 is no float32
                assert f32 == bool(np.array_equal(x.astype(np.float32), x))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), mode=st.sampled_from(["dense", "exact", "predictive"]))
def test_spec_sums_are_the_partial_sums_after_n_macs(case, mode):
    """The partial sum the PAU compares with Th: bias plus the first N products of the stream, per window."""
    layer, x, stream, bias, threshold = case
    got = run_lanes(x, layer, stream, bias, mode, threshold, spec_sums=True)
    plain = run_lanes(x, layer, stream, bias, mode, threshold)
    for name in FIELDS:
        assert np.array_equal(getattr(got, name), getattr(plain, name)), name
    n = np.asarray(stream.n_spec)
    want = run_lanes_reference(x, layer, _prefix(stream), bias, "dense").acc
    has = n > 0
    assert np.array_equal(got.spec_sums[:, has], want[:, has])
    assert np.isnan(got.spec_sums[:, ~has]).all()


def _prefix(stream):
    """The stream cut to its first N weights per kernel (N = 0 kernels keep theirs; they are not compared)."""
    from accelsim.functional.reorder import WeightStream

    n = np.asarray(stream.n_spec)
    length = np.where(n > 0, n, stream.length).astype(stream.length.dtype)
    return WeightStream(weights=stream.weights, index=stream.index, length=length,
                        neg_start=np.minimum(stream.neg_start, length).astype(stream.neg_start.dtype),
                        n_spec=np.zeros_like(stream.n_spec))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=long_kernels(), at_zero=st.booleans(), n_share=st.sampled_from([0.05, 0.9]))
def test_predictive_outputs_walk_short_speculation_sets_and_gemm_long_ones(case, at_zero, n_share):
    """Short speculation sets are summed by walking their weights, long ones by a GEMM: both give the lanes'
    outputs bit for bit."""
    layer, x, _, bias, threshold = case
    rng = np.random.default_rng(int(x.sum() * 4) % 2**32)
    w = rng.integers(-40, 12, (layer.out_channels, layer.in_channels, *layer.kernel)) / 16.0
    n = np.maximum(1, (rng.random(layer.out_channels) * n_share * layer.kernel_size).astype(np.int64))
    n[0] = 0  # one kernel does not speculate
    stream = reorder_layer(w, n)
    got = lanes.predictive_outputs(x, layer, stream, bias, threshold, at_zero)
    assert np.array_equal(got, run_lanes(x, layer, stream, bias, "predictive", threshold, at_zero).output)


@numba.njit(cache=True)
def _block_passes(v0, patch, wrow, orow, s0, t, at_zero):  # pragma: no cover - compiled
    return simd.block_passes(v0, patch, wrow, orow, s0, t, at_zero)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), f32=st.booleans(), at_zero=st.booleans(), start=st.integers(-40, 80))
def test_block_passes_counts_the_leading_passing_partial_sums(seed, f32, at_zero, start):
    """The vector prefix sum of one block finds the same stop as the walk's chain of adds, for partial sums that
    go both ways and exact zeros (the grid: every sum exact, as `block_passes` requires)."""
    rng = np.random.default_rng(seed)
    patch = (rng.integers(-4, 9, 12 * simd.LANES) / 4.0).astype(np.float32 if f32 else np.float64)
    wrow = rng.integers(-12, 5, 20) / 8.0
    orow = rng.integers(0, 12, 20).astype(np.int64) * simd.LANES
    for t in (0, 5, simd.LANES - 1):
        for s0 in (0, 3, 20 - simd.TRACE_BLOCK):
            v, want = start / 4.0, 0
            for i in range(s0, s0 + simd.TRACE_BLOCK):
                v = v + wrow[i] * float(patch[orow[i] + t])
                if v < 0.0 or (at_zero and v == 0.0):
                    break
                want += 1
            assert _block_passes(start / 4.0, patch, wrow, orow, s0, t, at_zero) == want
