"""Number formats (spec B.1-B.6, B.10): values on each format's grid, saturation and rounding as the sources' equations
say (against small reference implementations written from the equations), seeded unbiased stochastic rounding, exact
mode bit-identical to dense in every format, malformed formats rejected when the settings are built, and the default
16-bit dynamic fixed point unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forward import assert_exact_equals_dense, batches, small_net

from accelsim.config import RunConfig
from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat, fractional_length, integer_length, quantize
from accelsim.functional.formats import Formats, format_bits, quantize_truncated
from accelsim.functional.forward import FunctionalConfig, prepare, run
from accelsim.functional.minifloat import exponent_bits_for, minifloat_limits, quantize_minifloat
from accelsim.functional.pruning import PruningOptions
from accelsim.functional.reorder import ReorderOptions
from accelsim.functional.rounding import image_keys, name_key, stochastic_fixed, uniforms
from accelsim.functional.shifts import (
    exponent_range,
    layer_top_exponent,
    legal_magnitudes,
    quantize_power_of_two,
    quantize_to_set,
)
from accelsim.settings import settings_of

# --- the default format is today's, bit for bit -------------------------------------------------------------------

# sha256 over every blob (exact and dense forward), the per-layer statistics, accuracy and FLs of the small test nets,
# computed with commit 8787f5d (before the formats existed); see _default_digest.
DEFAULT_DIGEST_8787F5D = "d32f7c9d96810107d9a6fc28d7ff98fdf2703b0b6d61c4f8c05a9fc7c038570c"


def _default_digest() -> str:
    h = hashlib.sha256()

    def add(a):
        h.update(np.ascontiguousarray(a).tobytes())

    for seed, mean in ((0, None), (1, [0.5, 0.5, 0.5])):
        net = small_net(seed, mean)
        for opts in (dict(), dict(reorder=ReorderOptions("least_negative_first", True)), dict(mode="dense")):
            cfg = FunctionalConfig(**{"mode": "exact", "calibration_images": 8, **opts})
            x = batches()[0][0]
            p = prepare(net, cfg, x)
            keep = [l.output for l in net.graph.layers]
            for policy in (True, False):
                out = p.forward(x, policy=policy, keep=keep)
                for k in keep:
                    add(out[k])
            r = run(net, batches(), cfg)
            add(r.layers.loc[r.layers["type"] == "conv", "fl_w"].to_numpy(dtype=float))
            for c in ("macs_performed", "neg_fraction", "zero_fraction", "fl_in", "fl_out"):
                add(r.layers[c].to_numpy(dtype=float))
            h.update(repr(sorted(r.accuracy.items())).encode())
            h.update(repr(sorted(r.blob_fl.items())).encode())
    return h.hexdigest()


def test_default_format_is_bit_identical_to_before_the_formats():
    assert _default_digest() == DEFAULT_DIGEST_8787F5D


# --- fixed point: eq 2.7 (round-nearest), eq 4.1 (saturation), eq 5.2 and the tool's integer lengths ---------------


def _fixed_reference(v: float, il: int, fl: int) -> float:
    """One value of a [IL.FL] two's complement format from the equations: round-nearest (eq 2.7, ties up), then
    saturation at x_max = 2^(IL-1) - 2^-FL (eq 4.1) and x_min = -2^(IL-1)."""
    eps = 2.0**-fl
    lo = math.floor(v / eps) * eps
    r = lo if v - lo < eps / 2 else lo + eps
    return min(max(r, -(2.0 ** (il - 1))), 2.0 ** (il - 1) - eps)


@settings(max_examples=200, deadline=None)
@given(v=st.floats(-300, 300, allow_nan=False), il=st.integers(-2, 12), bits=st.integers(2, 16))
def test_fixed_point_follows_eq_2_7_and_4_1(v, il, bits):
    fl = bits - il
    got = float(quantize(np.array([v]), fl, bits)[0])
    assert got == _fixed_reference(v, il, fl)
    assert got * 2.0**fl == math.floor(got * 2.0**fl)  # on the grid


@pytest.mark.parametrize("m", [0.003, 0.3, 0.5, 0.75, 1.0, 1.5, 3.0, 7.9, 200.0, 256.0])
def test_integer_length_rules(m):
    # fit: the smallest IL (sign included) whose range [-2^(IL-1), 2^(IL-1)) holds m with no saturation
    fit = next(il for il in range(-20, 20) if m < 2.0 ** (il - 1))
    assert integer_length(m, "fit") == fit
    # thesis: eq 5.2 counts magnitude bits (eq 5.1 has B-1 of them), plus the sign; layer outputs one fewer
    assert integer_length(m, "thesis", "weights") == math.ceil(math.log2(m + 1)) + 1
    assert integer_length(m, "thesis", "output") == math.ceil(math.log2(m + 1))
    assert integer_length(m, "thesis", "input") == math.ceil(math.log2(m + 1)) + 1
    # tool: Ristretto's quantization.cpp: il_params = ceil(log2(max) + 1), il_in / il_out = ceil(log2(max))
    assert integer_length(m, "tool", "weights") == math.ceil(math.log2(m) + 1)
    assert integer_length(m, "tool", "output") == integer_length(m, "tool", "input") == math.ceil(math.log2(m))
    # eq 5.2's IL never goes below 1 magnitude bit, the tool's can (modelling notes)
    assert integer_length(m, "thesis") >= 2
    assert fractional_length(m, 8, 0, "tool", "weights") == 8 - math.ceil(math.log2(m) + 1)


def test_integer_length_rules_differ_where_the_notes_say():
    # weights all well below 1: eq 5.2 keeps an integer bit, the tool gives IL <= 0
    assert integer_length(0.05, "thesis") == 2 and integer_length(0.05, "tool") == -3
    with pytest.raises(ConfigError, match="non-finite"):
        integer_length(float("inf"), "tool")


@settings(max_examples=100, deadline=None)
@given(v=st.floats(-100, 100, allow_nan=False), fl=st.integers(0, 10), bits=st.integers(4, 16), k=st.integers(1, 2))
def test_truncation_drops_lsbs_of_the_rounded_word(v, fl, bits, k):
    got = float(quantize_truncated(np.array([v]), fl, bits, k)[0])
    word = int(quantize(np.array([v]), fl, bits)[0] * 2**fl)  # the B-bit two's complement word
    assert got == ((word >> k) << k) * 2.0**-fl  # shift right, then left (S0's truncation on a fixed-point word)


# --- stochastic rounding -------------------------------------------------------------------------------------------


def test_stochastic_rounding_is_on_the_grid_unbiased_and_seeded():
    x = np.full((4, 20000), 0.3)
    x[1] = -1.7
    x[2] = 2.0 + 1 / 3
    x[3] = np.linspace(-3, 3, 20000)
    keys = image_keys(x, name_key(5, "blob", "c1"))
    q = stochastic_fixed(x, 3, 8, keys)
    step = 2.0**-3
    assert np.all(q / step == np.floor(q / step))
    assert np.all((q >= np.floor(x / step) * step) & (q <= np.ceil(x / step) * step))  # a neighbour on the grid
    for row in range(3):
        # eq 2.8: E[q] = x; the mean of 20000 draws is within 4 standard errors
        se = step / 2 / math.sqrt(x.shape[1])
        assert abs(q[row].mean() - x[row, 0]) < 4 * se
    assert abs((q[3] - x[3]).mean()) < 4 * step / 2 / math.sqrt(x.shape[1])
    assert np.array_equal(q, stochastic_fixed(x, 3, 8, image_keys(x, name_key(5, "blob", "c1"))))
    assert not np.array_equal(q, stochastic_fixed(x, 3, 8, image_keys(x, name_key(6, "blob", "c1"))))


def test_uniforms_are_uniform():
    u = uniforms(name_key(0, "x"), 100000)
    assert 0 <= u.min() and u.max() < 1
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - 10000) < 500)


def test_stochastic_rounding_does_not_depend_on_batches_or_image_order():
    net = small_net()
    nf = NumberFormat(weight_bits=8, activation_bits=6, rounding="stochastic", rounding_seed=2)
    cfg = FunctionalConfig(mode="exact", number_format=nf, calibration_images=8)
    x = np.concatenate([b[0] for b in batches()])
    p = prepare(net, cfg, x[:8])
    whole = p.forward(x)[net.graph.output_blob]
    one_by_one = np.concatenate([p.forward(x[i:i + 1])[net.graph.output_blob] for i in range(len(x))])
    reversed_ = p.forward(x[::-1])[net.graph.output_blob][::-1]
    assert np.array_equal(whole, one_by_one) and np.array_equal(whole, reversed_)
    a = run(net, batches(bs=8), cfg)
    b = run(net, batches(bs=5), cfg)
    assert a.layers.equals(b.layers) and a.accuracy == b.accuracy
    other = prepare(net, FunctionalConfig(mode="exact", number_format=NumberFormat(
        weight_bits=8, activation_bits=6, rounding="stochastic", rounding_seed=3), calibration_images=8), x[:8])
    assert not np.array_equal(whole, other.forward(x)[net.graph.output_blob])


# --- minifloat (eq 6.1, 6.2, Ristretto's Trim2MiniFloat) ----------------------------------------------------------


def _minifloat_reference(v: float, e_bits: int, m_bits: int) -> float:
    """From the definition: bias 2^(e-1)-1, exponents -bias..bias+1, no denormals (values whose exponent is below
    -bias flush to 0), mantissa rounded to nearest with ties away from zero, saturation at the largest value."""
    if v == 0:
        return 0.0
    bias = 2 ** (e_bits - 1) - 1
    top = (2 - 2.0**-m_bits) * 2.0 ** (bias + 1)
    a = abs(v)
    e = math.floor(math.log2(a))
    if 2.0**e > a:  # log2 rounding at the boundary
        e -= 1
    elif 2.0 ** (e + 1) <= a:
        e += 1
    if e < -bias:
        return 0.0
    if e > bias + 1:
        return math.copysign(top, v)
    t = (a / 2.0**e - 1) * 2**m_bits
    k = math.floor(t + 0.5)
    return math.copysign(min((1 + k / 2**m_bits) * 2.0**e, top), v)


def _minifloat_values(e_bits: int, m_bits: int) -> np.ndarray:
    bias = 2 ** (e_bits - 1) - 1
    mags = [(1 + k / 2**m_bits) * 2.0**e for e in range(-bias, bias + 2) for k in range(2**m_bits)]
    return np.array(sorted({0.0, *mags, *(-m for m in mags)}))


@settings(max_examples=300, deadline=None)
@given(v=st.floats(-1e4, 1e4, allow_nan=False), e_bits=st.integers(1, 5), m_bits=st.integers(0, 5))
def test_minifloat_matches_the_definition(v, e_bits, m_bits):
    got = float(quantize_minifloat(np.array([v]), e_bits, m_bits)[0])
    assert got == _minifloat_reference(v, e_bits, m_bits)
    assert got in set(_minifloat_values(e_bits, m_bits))


def test_minifloat_limits_saturation_and_specials():
    e_min, e_max, top = minifloat_limits(4, 3)  # LeNet's 8-bit minifloat in table 6.1: 4 exponent, 3 mantissa bits
    assert (e_min, e_max, top) == (-7, 8, 1.875 * 256)
    q = quantize_minifloat(np.array([1e9, -1e9, np.inf, np.nan, 2.0**-8, 2.0**-7, -0.0]), 4, 3)
    assert q[0] == top and q[1] == -top and q[2] == top and np.isnan(q[3])
    assert q[4] == 0.0 and q[5] == 2.0**-7 and q[6] == 0.0
    # chopping (floor) truncates the mantissa towards zero
    assert quantize_minifloat(np.array([1.99, -1.99]), 4, 3, "floor").tolist() == [1.875, -1.875]


def test_minifloat_stochastic_is_unbiased_inside_the_range():
    x = np.full(40000, 1.3)
    u = uniforms(name_key(1, "t"), x.size)
    q = quantize_minifloat(x, 4, 2, "stochastic", u)
    assert set(np.unique(q)) == {1.25, 1.5}
    assert abs(q.mean() - 1.3) < 4 * 0.125 / math.sqrt(x.size)


@pytest.mark.parametrize("m, e", [(1.5, 1), (4.0, 1), (17.0, 3), (200.0, 4), (3e4, 5)])
def test_exponent_bits_eq_6_2(m, e):
    assert exponent_bits_for(m) == e
    if m > 4:
        assert e == math.ceil(math.log2(math.log2(m) - 1) + 1)


# --- power-of-two (eq 7.2) and LightNN weights ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(w=st.floats(-4, 4, allow_nan=False), top=st.integers(-3, 2), zero=st.booleans())
def test_power_of_two_follows_eq_7_2(w, top, zero):
    low = top - 7
    got = float(quantize_power_of_two(np.array([w]), low, top, "nearest", zero)[0])
    if w == 0:
        assert got == 0.0
        return
    y = math.log2(abs(w))
    e = math.copysign(math.floor(abs(y) + 0.5), y)  # C round(): ties away from zero, as Ristretto's code
    if zero and e < low:
        assert got == 0.0
    else:
        assert got == math.copysign(2.0 ** min(max(e, low), top), w)


def test_power_of_two_ristretto_range_and_stochastic_log_domain():
    nf = NumberFormat(kind="power_of_two", weight_bits=4)
    assert exponent_range("power_of_two", 4, False, -1) == (-8, -1)  # 4 bits: Ristretto's e in [-8, -1]
    f = Formats(nf)
    w = np.array([0.3, -0.01, 1e-6, 0.9, 0.0])
    q, fl = f.weights("c", w)
    assert q.tolist() == [0.25, -2.0**-7, 2.0**-8, 0.5, 0.0] and fl == 8
    x = np.full(20000, 0.3)
    u = uniforms(name_key(0, "w"), x.size)
    q = quantize_power_of_two(x, -8, -1, "stochastic", False, u)
    assert set(np.unique(q)) == {0.25, 0.5}
    p_up = math.log2(0.3) - math.floor(math.log2(0.3))  # floor(log2|w| + u): up with the fractional part
    assert abs(np.mean(q == 0.5) - p_up) < 0.02


def _nearest_in_set_reference(v: float, legal: list[float]) -> float:
    a = abs(v)
    if a == 0:
        return 0.0
    best = min(legal, key=lambda m: (abs(m - a), -m))  # nearest, ties to the larger magnitude
    return math.copysign(best, v)


@settings(max_examples=200, deadline=None)
@given(w=st.floats(-3, 3, allow_nan=False), kind=st.sampled_from(["lightnn1", "lightnn2"]), zero=st.booleans())
def test_lightnn_rounds_to_the_nearest_legal_weight(w, kind, zero):
    low, top = exponent_range(kind, 4 if kind == "lightnn1" else 7, zero, 0)
    legal = legal_magnitudes(kind, low, top, zero)
    got = float(quantize_to_set(np.array([w]), legal, "nearest")[0])
    assert got == _nearest_in_set_reference(w, list(legal))


def test_lightnn_legal_sets_match_the_paper():
    one = legal_magnitudes("lightnn1", *exponent_range("lightnn1", 4, False, 0), False)
    assert one.tolist() == [2.0**-m for m in range(7, -1, -1)]  # +-2^-m, m = 0..7, in 4 bits
    two = legal_magnitudes("lightnn2", *exponent_range("lightnn2", 8, False, 0), False)
    assert set(two.tolist()) == {2.0**-a + 2.0**-b for a in range(8) for b in range(8)}  # 8 bits


def test_lightnn_stochastic_rounding_example_and_unbiased():
    legal = legal_magnitudes("lightnn1", -5, 2, False)
    x = np.full(40000, 3.0)
    q = quantize_to_set(x, legal, "stochastic", uniforms(name_key(0, "l"), x.size))
    assert set(np.unique(q)) == {2.0, 4.0}  # LightNN's example: 3 rounds to 2 or 4 with probability 0.5 each
    assert abs(q.mean() - 3.0) < 4 * 1.0 / math.sqrt(x.size)
    two = legal_magnitudes("lightnn2", -3, 0, False)
    x = np.full(40000, -0.3)
    q = quantize_to_set(x, two, "stochastic", uniforms(name_key(1, "l"), x.size))
    assert len(np.unique(q)) == 2 and abs(q.mean() + 0.3) < 0.01


def test_layer_top_exponent_follows_the_largest_weight():
    assert layer_top_exponent("power_of_two", 0.3) == -2  # round(log2 0.3) = round(-1.74)
    assert layer_top_exponent("lightnn1", 0.3) == -2 and layer_top_exponent("lightnn1", 0.4) == -1
    assert layer_top_exponent("lightnn2", 0.5) == -2  # 2^-2 + 2^-2 covers it


# --- every format on the forward pass ---------------------------------------------------------------------------------

FORMATS = [
    dict(),
    dict(weight_bits=8, activation_bits=8),
    dict(weight_bits=4, activation_bits=4, integer_length_rule="tool"),
    dict(weight_bits=6, activation_bits=6, integer_length_rule="thesis", output_il_offset=1),
    dict(weight_bits=8, activation_bits=8, rounding="stochastic", rounding_seed=4),
    dict(weight_bits=8, activation_bits=8, rounding="truncate", truncate_lsbs=2),
    dict(weight_bits=8, activation_bits=8, rounding="floor"),
    dict(kind="fixed", weight_bits=8, activation_bits=8),
    dict(kind="fixed", weight_bits=8, activation_bits=8, fixed_integer_bits=3),
    dict(kind="minifloat", weight_bits=8, activation_bits=8, exponent_bits=4),
    dict(kind="minifloat", weight_bits=12, activation_bits=12),
    dict(kind="minifloat", weight_bits=8, activation_bits=8, exponent_bits=3, rounding="stochastic"),
    dict(kind="power_of_two", weight_bits=4),
    dict(kind="power_of_two", weight_bits=4, shift_range="per_layer", shift_underflow="zero", rounding="stochastic"),
    dict(kind="lightnn1", weight_bits=4),
    dict(kind="lightnn2", weight_bits=8, shift_max_exp=1),
    dict(kind="lightnn2", weight_bits=7, rounding="stochastic", activation_bits=8),
    dict(weight_bits=24, activation_bits=24),  # sums too wide for float64: the dense reference walks the stream
    dict(kind="float32"),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
@pytest.mark.parametrize("skip_zero", [False, True])
def test_exact_mode_is_bit_identical_to_dense_in_every_format(fmt, skip_zero):
    net = small_net()
    prune = PruningOptions(prune="sparsity", prune_sparsity=0.3) if skip_zero else PruningOptions()
    reorder = ReorderOptions(skip_zero_weights=skip_zero)
    cfg = FunctionalConfig(mode="exact", number_format=NumberFormat(**fmt), reorder=reorder, pruning=prune,
                           calibration_images=8)
    assert_exact_equals_dense(net, cfg)
    res = run(net, batches(), cfg)
    assert res.accuracy["agreement"] == 1.0 and (res.layers["exact_violations"] == 0).all()


def _on_format(values: np.ndarray, fmt: dict, formats: Formats, blob: str | None) -> bool:
    nf = NumberFormat(**fmt)
    v = values.ravel()
    if nf.kind == "minifloat":
        e = formats.exponent_bits
        bits = nf.activation_bits if blob else nf.weight_bits
        return bool(np.isin(v, _minifloat_values(e, bits - 1 - e)).all())
    if blob is not None:
        fl = formats.blob_fl[blob]
        step = 2.0 ** -(fl - (nf.truncate_lsbs if nf.rounding == "truncate" else 0))
        hi = (2.0 ** (nf.activation_bits - 1) - 1) * 2.0**-fl
        return bool(np.all(v / step == np.floor(v / step)) and np.all((v <= hi) & (v >= -hi - 2.0**-fl)))
    return True


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.get("kind") != "float32"],
                         ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()) or "default")
def test_every_blob_lands_on_its_format(fmt):
    net = small_net()
    cfg = FunctionalConfig(mode="dense", number_format=NumberFormat(**fmt), calibration_images=8)
    x = batches()[0][0]
    p = prepare(net, cfg, x)
    keep = [l.output for l in net.graph.layers]
    out = p.forward(x, keep=keep)
    for layer in net.graph.layers:
        if layer.type_name in ("softmax",):
            continue
        assert _on_format(out[layer.output], fmt, p.formats, layer.output), layer.output
    for name, plan in p.convs.items():
        if p.formats.exponent_bits is not None:
            assert _on_format(plan.weight, fmt, p.formats, None)
        elif plan.fl_w is not None:
            assert np.all(np.ldexp(plan.weight, plan.fl_w) == np.floor(np.ldexp(plan.weight, plan.fl_w))), name


def test_minifloat_dense_reference_walks_the_stream_where_sums_may_round():
    net = small_net()
    p = prepare(net, FunctionalConfig(mode="exact", number_format=NumberFormat(kind="minifloat", weight_bits=8,
                                                                               activation_bits=8),
                                      calibration_images=8), batches()[0][0])
    assert all(plan.walk_dense for plan in p.convs.values() if plan.stream is not None)
    assert p.accumulator_fl("c2") is None
    th = np.full(8, 0.123456789)
    assert np.array_equal(p.threshold_on_format("c2", th), th)  # full-precision accumulator: thresholds as given
    q = prepare(net, FunctionalConfig(mode="exact", calibration_images=8), batches()[0][0])
    assert not any(plan.walk_dense for plan in q.convs.values())  # 16-bit: the GEMM is exact
    fl = q.accumulator_fl("c2")
    on = q.threshold_on_format("c2", th)
    assert np.all(np.ldexp(on, fl) == np.round(np.ldexp(th, fl)))  # thresholds on the accumulator grid


def test_fixed_split_is_the_best_agreeing_partition():
    net = small_net()
    x = batches()[0][0]
    chosen = prepare(net, FunctionalConfig(mode="dense", number_format=NumberFormat(kind="fixed", weight_bits=6,
                                                                                    activation_bits=6),
                                           calibration_images=8), x)
    il = chosen.formats.fixed_integer_bits
    assert set(chosen.blob_fl.values()) == {6 - il}
    assert {p.fl_w for p in chosen.convs.values()} == {6 - il}
    ref = prepare(net, FunctionalConfig(mode="dense", number_format=NumberFormat(kind="float32")), x)
    target = ref.forward(x)[net.graph.output_blob].argmax(axis=1)

    def agreement(i: int) -> int:
        p = prepare(net, FunctionalConfig(mode="dense", number_format=NumberFormat(
            kind="fixed", weight_bits=6, activation_bits=6, fixed_integer_bits=i), calibration_images=8), x)
        return int(np.count_nonzero(p.forward(x)[net.graph.output_blob].argmax(axis=1) == target))

    assert agreement(il) >= max(agreement(i) for i in range(-2, 8))


# --- settings ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_, message", [
    (dict(weight_bits=0), "weight_bits: must be >= 2, got 0"),
    (dict(activation_bits=1), "activation_bits: must be >= 2"),
    (dict(number_format="posit"), "number_format: must be one of 'dynamic_fixed', 'fixed', 'minifloat'"),
    (dict(number_format="minifloat", weight_bits=6, exponent_bits=6), "exponent_bits = 6 does not fit a 6-bit"),
    (dict(number_format="minifloat", exponent_bits=9), "exponent_bits: must be <= 7"),
    (dict(exponent_bits=4), "exponent_bits applies to number_format minifloat only"),
    (dict(number_format="fixed", shift_max_exp=0), "shift_max_exp applies to number_format power_of_two"),
    (dict(rounding="truncate"), "truncate needs truncate_lsbs >= 1"),
    (dict(rounding="truncate", truncate_lsbs=7, weight_bits=8), "leaves fewer than 2 bits"),
    (dict(truncate_lsbs=2), "truncate_lsbs applies to rounding truncate only"),
    (dict(rounding_seed=3), "rounding_seed applies to stochastic rounding only"),
    (dict(number_format="lightnn1", rounding="floor"), "rounds nearest or stochastic"),
    (dict(number_format="minifloat", rounding="truncate", truncate_lsbs=1), "rounding truncate drops LSBs"),
    (dict(number_format="lightnn2", weight_bits=2), "weight_bits must be >= 3"),
    (dict(number_format="power_of_two", shift_range="per_layer", shift_max_exp=0), "give one of them"),
    (dict(number_format="float32", weight_bits=8), "weight_bits applies to quantised formats only"),
    (dict(prune="threshold"), "prune_threshold > 0"),
    (dict(prune_sparsity=0.5), "no effect without --prune"),
    (dict(prune="sparsity", prune_sparsity=1.0), "prune_sparsity: must be < 1"),
])
def test_malformed_formats_are_config_errors_when_the_settings_are_built(settings_, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.of(**settings_)


def test_format_settings_reach_the_run_config():
    cfg = RunConfig.of(number_format="minifloat", weight_bits=8, activation_bits=8, exponent_bits=4,
                       rounding="stochastic", rounding_seed=9, prune="sparsity", prune_sparsity=0.25,
                       prune_scope="layer")
    nf = cfg.functional.number_format
    assert (nf.kind, nf.exponent_bits, nf.rounding_seed) == ("minifloat", 4, 9)
    assert cfg.functional.pruning.prune_sparsity == 0.25
    assert RunConfig.of(**cfg.to_dict()) == cfg  # config.yaml round trip


def test_format_bits():
    assert format_bits(NumberFormat()) == format_bits(NumberFormat(weight_bits=16))
    b = format_bits(NumberFormat(weight_bits=8, activation_bits=6))
    assert (b.weight_bits, b.activation_bits, b.mac_kind, b.multiplier_bits) == (8, 6, "multiply", (8, 6))
    b = format_bits(NumberFormat(weight_bits=8, activation_bits=8, rounding="truncate", truncate_lsbs=3))
    assert (b.weight_bits, b.activation_bits) == (5, 5)
    b = format_bits(NumberFormat(kind="power_of_two", weight_bits=4))
    assert (b.weight_bits, b.mac_kind, b.shift_stages) == (4, "shift", 3)
    b = format_bits(NumberFormat(kind="lightnn2", weight_bits=8))
    assert (b.weight_bits, b.mac_kind, b.shift_stages) == (8, "shift_add", 3)
    b = format_bits(NumberFormat(kind="minifloat", weight_bits=8, activation_bits=8), exponent_bits=4)
    assert (b.mac_kind, b.multiplier_bits, b.exponent_bits) == ("float_multiply", (4, 4), 4)


# Each new setting with its declared example and the settings it needs (its format): the example must change what
# the network computes, against the same companions without it (a setting accepted and ignored would be a defect).
COMPANIONS = {k: dict(info.needs) for k, info in settings_of(RunConfig).items()
              if info.path[:2] in (("functional", "number_format"), ("functional", "pruning"))}


@pytest.mark.parametrize("key", list(COMPANIONS))
def test_every_format_and_pruning_setting_is_honoured(key):
    info = settings_of(RunConfig)[key]
    base = dict(COMPANIONS[key])
    try:
        base_cfg: RunConfig | None = RunConfig.of(**base)
    except ConfigError:  # the settings it needs are not a run alone (prune threshold without a threshold)
        base_cfg = None
    cfg = RunConfig.of(**{**base, key: info.example})
    net = small_net()
    x = batches()[0][0]
    keep = [l.output for l in net.graph.layers]

    def outputs(c):
        fc = dataclasses.replace(c.functional, calibration_images=8) if c else FunctionalConfig(calibration_images=8)
        return prepare(net, fc, x).forward(x, keep=keep)

    a, b = outputs(cfg), outputs(base_cfg)
    assert any(not np.array_equal(a[k], b[k]) for k in keep), f"{key}={info.example!r} changed nothing"
