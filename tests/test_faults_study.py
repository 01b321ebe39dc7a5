"""Fault studies (accelsim.faults_study): evaluation with the stopping rule, memory energy of an assignment, the
sensitivity pass, the greedy per-layer assignment against the uniform one, the accumulation curve, the figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from accelsim import faults_study as S
from accelsim.config import RunConfig
from accelsim.errors import ConfigError
from accelsim.functional.forward import run


@pytest.fixture(scope="module")
def inputs():
    return S.study_inputs(RunConfig.of(limit=60, mode="dense", float_reference=False, batch_size=20))


AXIS = S.Axis("dram", ("weights", "activations"), "voltage", (1.5, 1.3, 1.25, 1.2))


def test_a_fault_free_evaluation_is_the_functional_runs_top1(inputs):
    ev = S.evaluate(inputs, {})
    x = np.concatenate([b[0] for b in inputs.batches])
    ref = run(inputs.network, inputs.batches, inputs.prepared.config, calibration=x[:32])
    assert ev.top1_draws == (ref.accuracy["top1"],) and ev.images == 60 and "Wilson" in ev.method


def test_the_stopping_rule_draws_until_the_interval_is_narrow_enough(inputs):
    wide = S.evaluate(inputs, {"weights.dram.ber": 0.01}, repeats=2)
    assert len(wide.top1_draws) == 2
    ev = S.evaluate(inputs, {"weights.dram.ber": 0.01}, ci_halfwidth=0.02, max_repeats=12)
    n = len(ev.top1_draws)
    assert ev.half_width <= 0.02 or n == 12
    assert ev.top1_draws[:2] == wide.top1_draws  # draws are numbered: the first two are the same ones
    if n > 2:  # it did not stop earlier than the rule allows
        before = ev.top1_draws[:-1]
        half = S.t975(len(before) - 1) * np.std(before, ddof=1) / math.sqrt(len(before))
        assert half > 0.02
    capped = S.evaluate(inputs, {"weights.dram.ber": 0.01}, ci_halfwidth=1e-9, max_repeats=3)
    assert len(capped.top1_draws) == 3


def test_memory_energy_is_words_times_bits_times_the_scaled_energy_per_bit(inputs):
    words = S.memory_words(inputs)
    assert words[("fc1", "weights")] == (48000.0, 16) and words[("conv1", "activations")] == (784.0, 16)
    nominal = S.memory_energy(inputs, AXIS, {})
    assert nominal == pytest.approx(15.0 * 16 * sum(w for w, _ in words.values()))
    low = S.memory_energy(inputs, AXIS, {("fc1", "weights"): 1.2})
    assert nominal - low == pytest.approx(48000 * 16 * 15.0 * (1 - (1.2 / 1.5) ** 2))
    ber_axis = S.Axis("dram", ("weights",), "ber", (0.0, 1e-6, 1e-3), ber_reference=1e-8)
    assert S.energy_factor(inputs, ber_axis, 1e-3) == pytest.approx(math.log(1e-3) / math.log(1e-8))
    assert S.energy_factor(inputs, ber_axis, 0.0) == 1.0
    sram = S.Axis("global_buffer", ("weights",), "ber", (1e-9, 1e-4))
    assert S.energy_factor(inputs, sram, 1e-4) == pytest.approx(4 / 9)  # B.11 with the table's 1e-9 nominal


def test_an_axis_checks_its_levels_and_memory():
    with pytest.raises(ConfigError, match="most reliable first"):
        S.Axis("dram", ("weights",), "voltage", (1.2, 1.5))
    with pytest.raises(ConfigError, match="not stored in io_buffer"):
        S.Axis("io_buffer", ("weights",), "ber", (0.0, 1e-3))


def test_the_sensitivity_pass_makes_one_layer_faulty_at_a_time(inputs):
    sens = S.sensitivity(inputs, S.Axis("dram", ("weights",), "voltage", (1.5, 1.3, 1.2)), layers=["conv2", "fc1"])
    single = sens[sens["layer"] != "(all)"]
    assert list(single["layer"]) == ["conv2"] * 3 + ["fc1"] * 3
    clean = single["top1"].iloc[0]
    assert (single.loc[single["level"] > 1.25, "drop"] == 0).all()  # no DRAM errors above 1.25 V (table 4.6)
    assert set(sens.loc[sens["layer"] == "(all)", "level"]) == {1.5, 1.3, 1.2}
    assert sens.loc[(sens["layer"] == "fc1") & (sens["level"] == 1.2), "energy_saving"].iloc[0] > 0
    assert clean == S.evaluate(inputs, {}).mean


def test_the_greedy_assignment_stays_in_budget_and_beats_nothing_it_should_not(inputs, tmp_path):
    result = S.assign(inputs, AXIS, 0.02, layers=["conv2", "fc1", "fc2"])
    s = result.summary
    assert s["greedy_top1"] >= s["target_top1"] - 1e-12
    assert s["greedy_energy_pj"] <= s["nominal_energy_pj"]
    assert s["saving_vs_nominal"] > 0.2  # every unit at 1.3 V at least: error-free and 25 % cheaper
    assert set(result.table["layer"]) == {"conv2", "fc1", "fc2"}
    kept = result.trace[result.trace["accepted"]]
    assert (kept["top1"] >= s["target_top1"] - 1e-12).all()
    assert list(result.uniform["level"]) == list(AXIS.levels)
    if s["uniform_energy_pj_same_accuracy"] == s["uniform_energy_pj_same_accuracy"]:
        assert s["greedy_energy_pj"] <= s["uniform_energy_pj_same_accuracy"] + 1e-6
    folder = S.write_assignment(result, tmp_path / "study")
    for name in ("assignment.parquet", "trace.parquet", "uniform.parquet", "summary.json", "accuracy_vs_energy.png"):
        assert (folder / name).stat().st_size > 0


def test_accumulating_faults_give_an_accuracy_curve_over_images(inputs, tmp_path):
    spec = {"persistence": "accumulate", "weights.global_buffer.ber": 2e-3, "mitigation": "flip"}
    curve = S.images_curve(inputs, spec, block=20)
    assert list(curve["images_run"]) == [20, 40, 60]
    assert curve["cumulative_top1"].iloc[-1] == pytest.approx(curve["block_top1"].mean())
    assert curve["block_top1"].iloc[-1] <= curve["block_top1"].iloc[0]  # the faults pile up
    path = S.plot_images_curve({"flip 2e-3": curve}, tmp_path / "curve.png")
    assert path.stat().st_size > 0


def test_the_sensitivity_figure_is_drawn(tmp_path):
    table = pd.DataFrame([dict(layer=l, kind=k, level=v, level_kind="ber", drop=d, top1=0.9)
                          for l in ("a", "b") for k in ("weights", "activations") for v, d in ((0.0, 0), (1e-3, 0.1))])
    assert S.plot_sensitivity(table, tmp_path / "s.png").stat().st_size > 0


def test_the_study_commands_write_their_folders(tmp_path):
    cfg = RunConfig.of(limit=20, mode="dense", float_reference=False, fault_set=["model=value"])
    ev = S.run_study(RunConfig.of(limit=20, mode="dense", float_reference=False,
                                  fault_set=["weights.dram.ber=0.01"]), "evaluate", tmp_path / "e", repeats=2)
    import json

    record = json.loads((ev / "evaluation.json").read_text())
    assert len(record["top1_draws"]) == 2 and record["spec"] == {"weights.dram.ber": 0.01}
    sens = S.run_study(cfg, "sensitivity", tmp_path / "s", kinds=("weights",), voltages=(1.5, 1.25),
                       layers=["fc1"])
    assert (sens / "sensitivity.png").exists()
    table = pd.read_parquet(sens / "sensitivity.parquet")
    assert set(table["layer"]) == {"fc1", "(all)"}
    a = S.run_study(cfg, "assign", tmp_path / "a", kinds=("weights",), bers=(0.0, 1e-4), layers=["fc1", "fc2"])
    assert (a / "summary.json").exists() and (a / "accuracy_vs_energy.png").exists()
    with pytest.raises(ConfigError, match="voltages or as bit-error rates"):
        S.run_study(cfg, "sensitivity", tmp_path / "x")


def test_comparison_with_the_uniform_assignments():
    uniform = pd.DataFrame({"level": [1.5, 1.3, 1.25], "top1": [0.9, 0.9, 0.5], "energy_pj": [100.0, 75.0, 70.0]})
    c = S.compare_with_uniform(uniform, top1=0.7, energy=72.0, target=0.6, nominal=100.0)
    assert c["uniform_energy_pj_same_budget"] == 75.0 and c["uniform_energy_pj_same_accuracy"] == 75.0
    assert c["uniform_energy_pj_interpolated"] == pytest.approx(72.5)  # halfway from 0.9 to 0.5 in top-1
    assert c["saving_vs_uniform_same_budget"] == pytest.approx(1 - 72 / 75)
    above = S.compare_with_uniform(uniform, top1=0.95, energy=72.0, target=0.85, nominal=100.0)
    assert math.isnan(above["uniform_energy_pj_same_accuracy"]) and above["uniform_energy_pj_same_budget"] == 75.0


def test_the_faults_command_runs_each_study_into_a_complete_folder(tmp_path, capsys):
    from accelsim.cli import main

    assert main(["faults", "evaluate", "--limit", "12", "--faults", "b13_dram_1v2", "--repeats", "2",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "top-1" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "ev" / "evaluation.json").read_text())["top1_draws"]) == 2
    assert main(["faults", "sensitivity", "--limit", "12", "--bers", "0,1e-2", "--kinds", "weights",
                 "--out", str(tmp_path / "se")]) == 0
    table = pd.read_parquet(tmp_path / "se" / "sensitivity.parquet")
    assert len(table) > 0 and (tmp_path / "se" / "sensitivity.png").exists()
    capsys.readouterr()
    assert main(["faults", "assign", "--limit", "12", "--out", str(tmp_path / "as")]) == 2
    assert "--voltages or --bers" in capsys.readouterr().err and not (tmp_path / "as").exists()
    assert main(["faults", "evaluate", "--limit", "12", "--faults", "nonexistent_spec", "--out",
                 str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_a_run_at_a_lower_dram_voltage_pays_less_dram_energy_in_both_designs(tmp_path):
    """B.13: DRAM at 1.3 V (no beat errors yet) instead of 1.5 V costs (1.3 / 1.5)^2 of its energy per access, in every
    layer of the design and of the baseline (same memories, same voltage), in the layer's energy and in its dense
    counterpart; with no faults drawn, everything else is unchanged."""
    from accelsim.cli import main
    from accelsim.config import RunConfig, functional_key

    base, low = tmp_path / "base", tmp_path / "low"
    assert main(["run", "--limit", "8", "--out", str(base)]) == 0
    assert main(["run", "--limit", "8", "--fault-set", "voltage.dram=1.3", "--out", str(low)]) == 0
    a, b = pd.read_parquet(base / "layers.parquet"), pd.read_parquet(low / "layers.parquet")
    assert set(a["design"]) == {"snapea", "eyeriss"}
    assert np.allclose(b["energy_dram_pj"], (1.3 / 1.5) ** 2 * a["energy_dram_pj"])
    assert np.allclose(b["energy_pe_pj"], a["energy_pe_pj"]) and np.array_equal(b["cycles"], a["cycles"])
    assert (b["dense_energy_pj"] < a["dense_energy_pj"]).all()
    # a voltage makes the design's voltage models an input of the functional pass: no sharing across archs
    key = functional_key(RunConfig.of(fault_set=("voltage.dram=1.2",), set=("pe.lanes=2",)))
    assert key != functional_key(RunConfig.of(fault_set=("voltage.dram=1.2",)))
    assert functional_key(RunConfig.of(set=("pe.lanes=2",))) == functional_key(RunConfig.of())
