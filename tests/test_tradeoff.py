"""accelsim tradeoff (accuracy vs speed per epsilon), the predictive report of accelsim run, forward_from."""

import math

import numpy as np
import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.config import RunConfig
from accelsim.errors import ConfigError
from accelsim.functional.forward import FunctionalConfig, SmallPositiveErrors, prepare
from accelsim.functional.reorder import reorder_layer
from accelsim.metrics import predictive_report
from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network
from accelsim.report.text import format_summary
from accelsim.results import read_run
from accelsim.run import run

EPSILONS = (0.0, 0.02, 0.05)
OPT, EVAL = 400, 60  # 200 optimisation, 200 validation, 60 test digits
GRID = ["--n-fractions", "0.125,0.5", "--th-fractions=-0.25,0,0.25", "--levels", "0.2,0.05,0",
        "--profile-images", "32"]


@pytest.fixture(scope="module")
def tradeoff_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tradeoff") / "lenet"
    rc = main(["tradeoff", "--net", "lenet", "--epsilons", ",".join(map(str, EPSILONS)), "--opt-limit", str(OPT),
               "--eval-limit", str(EVAL), "--out", str(out), *GRID])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def table(tradeoff_dir):
    return pd.read_parquet(tradeoff_dir / "tradeoff.parquet")


def test_tradeoff_writes_table_figure_and_a_folder_per_point(tradeoff_dir, table):
    assert list(table["mode"]) == ["exact"] + ["predictive"] * len(EPSILONS)
    assert list(table["epsilon"].iloc[1:]) == list(EPSILONS) and math.isnan(table["epsilon"].iloc[0])
    assert (table["opt_images"] + table["val_images"] == OPT).all() and (table["eval_images"] == EVAL).all()
    assert (table["opt_images"] == OPT // 2).all()
    md = (tradeoff_dir / "tradeoff.md").read_text()
    assert md.count("\n| eps=") == len(EPSILONS) and "| exact |" in md
    for ext, magic in (("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<?xml")):
        data = (tradeoff_dir / f"tradeoff.{ext}").read_bytes()
        assert data.startswith(magic) and len(data) > 5000
    assert not list(tradeoff_dir.glob(".tradeoff*"))  # no temporary files left behind
    for folder in table["run_folder"]:
        done = read_run(tradeoff_dir / folder)
        assert done.summary["images"] == EVAL
    for eps in EPSILONS:
        point = tradeoff_dir / f"eps_{100 * eps:g}pt"
        assert (point / "spec.npz").is_file() and (point / "spec.npz.json").is_file()
        assert read_run(point / "run").summary["mode"] == "predictive"


def test_promise_checked_on_validation_and_savings_grow_with_epsilon(table):
    pred = table[table["mode"] == "predictive"]
    chosen = pred[pred["chosen_step"] >= 0]
    assert (chosen["loss_val_upper"] <= chosen["epsilon"] + 1e-4).all()  # the validation bound the promise passed
    assert (np.diff(pred["chosen_step"].to_numpy()) >= 0).all()  # a larger epsilon walks at least as far
    assert pred["mac_reduction_opt"].iloc[-1] > 1.0  # the largest budget speculates somewhere
    # the test interval brackets the test loss, and promise_kept says whether it is within epsilon
    assert (pred["loss_eval_lower"] <= pred["loss_eval_paired"] + 1e-12).all()
    assert (pred["loss_eval_paired"] <= pred["loss_eval_upper"] + 1e-12).all()
    np.testing.assert_allclose(pred["loss_eval_paired"], pred["loss_eval"], atol=1e-12)  # all test digits labelled
    assert (pred["promise_kept"] == (pred["loss_eval"] <= pred["epsilon"] + 1e-12)).all()
    exact = table.iloc[0]
    assert exact["loss_opt"] == 0 and exact["loss_eval"] == 0 and exact["mac_reduction_vs_exact"] == 1.0
    assert exact["predictive_layers"] == 0 and exact["refine_trials"] == 0
    # vs-exact ratios are the ratios of the two runs' totals.
    for _, r in pred.iterrows():
        assert r["speedup_vs_exact"] == pytest.approx(exact["cycles"] / r["cycles"])
        assert r["mac_reduction_vs_exact"] == pytest.approx(exact["macs_performed"] / r["macs_performed"])


def test_predictive_summary_fields_follow_from_the_layer_rows(tradeoff_dir, table):
    eps = EPSILONS[-1]
    done = read_run(tradeoff_dir / f"eps_{100 * eps:g}pt" / "run")
    pr, layers = done.summary["predictive"], done.layers
    design, baseline = done.summary["design"], done.summary["baseline"]
    mine = layers[(layers["design"] == design) & (layers["type"] == "conv")]
    pred = mine[mine["mode"] == "predictive"]
    assert len(pred) > 0
    assert pr["predictive_layers"] == len(pred) and pr["conv_layers"] == len(mine)
    assert pr["predictive_layer_share"] == pytest.approx(len(pred) / len(mine))
    base = layers[(layers["design"] == baseline) & layers["layer"].isin(pred["layer"])]
    assert pr["speedup"] == pytest.approx(base["cycles"].sum() / pred["cycles"].sum())
    assert pr["energy_reduction"] == pytest.approx(base["energy_pj"].sum() / pred["energy_pj"].sum())
    assert pr["network_speedup"] == pytest.approx(done.summary["speedup"])
    neg = pred["windows"] * pred["neg_fraction"]
    assert pr["tn_rate"] == pytest.approx((pred["tn_rate"] * neg).sum() / neg.sum())
    assert pr["tn_rate_any"] >= pr["tn_rate"]
    pos = pred["windows"] * pred["pos_fraction"]
    assert pr["fn_rate"] == pytest.approx((pred["fn_rate"] * pos).sum() / pos.sum())
    # The other reading of A.7 item 17: every conv+ReLU layer counts; a layer that does not speculate catches no
    # negative at the speculation check (mixed cases: test_all_layer_rates_count_every_conv_relu_layer).
    relu = mine[mine["relu"].astype(bool)]
    neg_all = (relu["windows"] * relu["neg_fraction"]).sum()
    assert pr["tn_rate_all_layers"] == pytest.approx((pred["tn_rate"] * neg).sum() / neg_all)
    checked = relu[relu["mode"] != "dense"]
    assert pr["tn_rate_any_all_layers"] == pytest.approx(
        (checked["tn_rate_any"] * checked["windows"] * checked["neg_fraction"]).sum() / neg_all)
    assert pr["fn_rate_all_layers"] == pytest.approx(
        (pred["fn_rate"] * pos).sum() / (relu["windows"] * relu["pos_fraction"]).sum())
    assert pr["tn_rate_all_layers"] <= pr["tn_rate"] + 1e-12 and pr["fn_rate_all_layers"] <= pr["fn_rate"] + 1e-12
    for key in ("fn_small_share", "fn_small_mass_share", "fn_mass_share"):
        assert 0.0 <= pr[key] <= 1.0
        assert pred[key].between(0, 1).all() and mine.loc[mine["mode"] != "predictive", key].isna().all()
    # A zeroed small output carries less than a zeroed large one: mass share <= count share.
    assert pr["fn_small_mass_share"] <= pr["fn_small_share"] + 1e-12
    row = table[table["epsilon"] == eps].iloc[0]
    assert row["fn_small_share"] == pytest.approx(pr["fn_small_share"])
    text = format_summary(done.summary)
    assert "predictive: " in text and "median positive output" in text


def test_small_positive_errors_count_against_the_layer_median():
    stats = SmallPositiveErrors()
    acc = np.concatenate([np.arange(1.0, 101.0), [-3.0, 0.0]])
    pos = acc > 0
    fn = np.isin(acc, [10.0, 20.0, 60.0, 90.0])
    stats.add(acc[:50], pos[:50], fn[:50])  # two batches: the histogram accumulates
    stats.add(acc[50:], pos[50:], fn[50:])
    shares = stats.shares()
    # Lower median of 1..100 is 50: 10 and 20 are small, 60 and 90 are not.
    assert shares["fn_small_share"] == pytest.approx(0.5)
    assert shares["fn_small_mass_share"] == pytest.approx(30 / 180)
    assert shares["fn_mass_share"] == pytest.approx(180 / 5050)
    empty = SmallPositiveErrors().shares()
    assert all(math.isnan(v) for v in empty.values())


def test_forward_from_a_cached_blob_matches_the_full_pass_and_speculates_where_told():
    net = load_network("lenet")
    data = load_dataset(None, net.graph, limit=32)
    x, _ = next(data.iter_batches(32))
    prepared = prepare(net, FunctionalConfig(mode="exact", float_reference=False), x)
    graph = net.graph
    i = next(k for k, l in enumerate(graph.layers) if l.name == "conv2")
    blob = graph.layers[i].inputs[0]
    full = prepared.forward(x, policy=False, keep=[blob])
    out = prepared.forward_from(i, {blob: full[blob]}, policy=False)
    np.testing.assert_array_equal(out[graph.output_blob], full[graph.output_blob])
    # Speculating with a threshold above every sum after one MAC zeroes every window of conv2, and is observed.
    conv = prepared.convs["conv2"]
    n = np.ones(conv.layer.out_channels, dtype=np.int64)
    stream = reorder_layer(conv.weight, n, prepared.config.reorder)
    seen = {}
    spec = prepared.forward_from(i, {blob: full[blob]}, policy=False, keep=[graph.layers[i].output],
                                 observer=lambda name, res: seen.setdefault(name, res),
                                 speculate={"conv2": (stream, np.full(len(n), 1e9))})
    assert set(seen) == {"conv2"} and seen["conv2"].spec_stop.all()
    assert not spec[graph.layers[i].output].any()
    with pytest.raises(ConfigError, match="reads blob"):
        prepared.forward_from(i, {}, policy=False)
    other = next(l.name for l in graph.layers[i:] if l.name not in prepared.convs)  # only conv layers speculate
    with pytest.raises(ConfigError, match=f"speculate names '{other}'"):
        prepared.forward_from(i, {blob: full[blob]}, policy=False, speculate={other: (stream, np.zeros(len(n)))})


def test_run_skip_takes_the_images_after_the_skipped_ones_and_rejects_too_many(tmp_path):
    cfg = RunConfig.of(net="lenet", skip=990, limit=50, baseline=None, float_reference=False)
    outcome = run(cfg)
    assert outcome.summary["images"] == 10
    with pytest.raises(ConfigError, match="skip"):
        RunConfig.of(net="lenet", skip=-1)
    with pytest.raises(ConfigError, match="passes over"):
        run(RunConfig.of(net="lenet", skip=1000, baseline=None, float_reference=False))


def test_tradeoff_rejects_bad_epsilons(tmp_path):
    from accelsim.optimize.tradeoff import tradeoff

    with pytest.raises(ConfigError, match="between 0 and 1"):
        tradeoff(RunConfig.of(net="lenet"), [0.01, 1.5], tmp_path)
    with pytest.raises(ConfigError, match="twice"):
        tradeoff(RunConfig.of(net="lenet"), [0.01, 0.01], tmp_path)
    assert main(["tradeoff", "--epsilons=-0.1", "--out", str(tmp_path / "x")]) == 2


def test_without_the_opt_check_the_optimisers_own_numbers_fill_the_columns():
    from types import SimpleNamespace

    from accelsim.optimize.tradeoff import _opt_columns

    result = SimpleNamespace(search={"dense_top1_opt": 0.9, "mac_reduction_opt_estimate": 2.0}, loss_opt=0.02)
    cols = _opt_columns(None, None, result)
    assert cols["top1_opt"] == pytest.approx(0.88) and cols["loss_opt"] == 0.02
    assert cols["mac_reduction_opt"] == pytest.approx(2.0) and cols["opt_source"].startswith("optimiser")


def test_a_layer_whose_kernels_all_run_exact_counts_as_exact_not_predictive():
    from accelsim.functional import forward
    from accelsim.functional.forward import SpeculationParams

    net = load_network("lenet")
    data = load_dataset(None, net.graph, limit=16)
    f1, f2 = net.graph.layer("conv1").out_channels, net.graph.layer("conv2").out_channels
    spec = SpeculationParams({"conv1": np.zeros(f1, np.int32), "conv2": np.full(f2, 4, np.int32)},
                          {"conv1": np.zeros(f1), "conv2": np.zeros(f2)})
    res = forward.run(net, data.iter_batches(16), FunctionalConfig(mode="predictive", float_reference=False), spec=spec)
    modes = dict(zip(res.layers["layer"], res.layers["mode"]))
    assert modes["conv1"] == "exact" and modes["conv2"] == "predictive"
    conv1 = res.layers.set_index("layer").loc["conv1"]
    assert math.isnan(conv1["fn_rate"]) and math.isnan(conv1["fn_small_share"])


def test_all_layer_rates_count_every_conv_relu_layer():
    """A.7 item 17's second reading on hand-made rows: a dense layer catches no negative, an exact one catches all
    at the sign check and none at the speculation check, a layer without a ReLU does not count."""
    rows = pd.DataFrame([
        # layer, mode, relu, windows, neg, pos, tn_spec, tn_any, fn
        ("c1", "dense", True, 100.0, 0.5, 0.5, np.nan, np.nan, np.nan),
        ("c2", "exact", True, 100.0, 0.4, 0.6, np.nan, 1.0, np.nan),
        ("c3", "predictive", True, 200.0, 0.5, 0.5, 0.6, 1.0, 0.1),
        ("c4", "dense", False, 100.0, 0.5, 0.5, np.nan, np.nan, np.nan),
    ], columns=["layer", "mode", "relu", "windows", "neg_fraction", "pos_fraction", "tn_rate", "tn_rate_any",
                "fn_rate"])
    rows["design"], rows["type"] = "snapea", "conv"
    for col in ("fn_small_share", "fn_small_mass_share", "fn_mass_share", "macs_performed", "macs_dense"):
        rows[col] = 0.5
    pr = predictive_report(rows, "snapea", None)
    assert pr["tn_rate"] == pytest.approx(0.6) and pr["fn_rate"] == pytest.approx(0.1)
    neg_all = 50 + 40 + 100  # c1, c2, c3 (c4 has no ReLU)
    assert pr["tn_rate_all_layers"] == pytest.approx(0.6 * 100 / neg_all)
    assert pr["tn_rate_any_all_layers"] == pytest.approx((40 + 100) / neg_all)
    assert pr["fn_rate_all_layers"] == pytest.approx(0.1 * 100 / (50 + 60 + 100))
