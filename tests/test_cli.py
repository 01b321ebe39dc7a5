"""The main job end to end: `accelsim run` on the embedded default network, its run folder, replay, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.results import read_run


def test_default_run_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--limit", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv1" in printed and "top-1" in printed
    assert "speedup" in printed and "energy reduction" in printed
    run = read_run(out)
    t = run.layers
    for col in ("network", "design", "layer", "mode", "images", "macs_dense", "macs_performed", "cycles",
                "active_pes", "energy_pj", "energy_rf_pj", "energy_pe_pj", "energy_noc_pj", "energy_gbuf_pj",
                "energy_dram_pj", "neg_fraction", "tn_rate", "fn_rate"):
        assert col in t.columns, col
    assert set(t["design"]) == {"snapea", "eyeriss"}
    snapea = t[t["design"] == "snapea"]
    assert list(snapea["layer"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert (t["images"] == 40).all()
    conv = snapea[snapea["layer"].str.startswith("conv")]
    assert (conv["mode"] == "exact").all()  # inputs in [0, 1]: conv1 is eligible too
    assert (conv["macs_performed"] < conv["macs_dense"]).all()
    # MAC units x cycles never below the MACs performed; energy is the sum of its classes
    assert (t["cycles"] * 256 >= t["macs_performed"] - 1e-6).all()
    classes = [c for c in t.columns if c.startswith("energy_") and c.endswith("_pj") and c != "energy_pj"]
    assert np.allclose(t[classes].sum(axis=1), t["energy_pj"])
    s = run.summary
    assert s["images"] == 40 and s["accuracy"]["agreement"] == 1.0 and s["exact_violations"] == 0
    assert s["accuracy"]["top1"] > 0.9
    d, b = s["designs"]["snapea"], s["designs"]["eyeriss"]
    assert s["speedup"] == pytest.approx(b["cycles"] / d["cycles"])
    assert s["energy_reduction"] == pytest.approx(b["energy_pj"] / d["energy_pj"])
    assert d["cycles"] == pytest.approx(snapea["cycles"].sum())
    ev = run.events
    assert set(ev["design"]) == {"snapea", "eyeriss"}
    assert ev[(ev["design"] == "snapea") & (ev["component"] == "mac") & (ev["event"] == "mac")]["count"].sum() == (
        pytest.approx(conv["macs_performed"].sum() + snapea[snapea["type"] == "fc"]["macs_performed"].sum()))
    assert run.config["run"]["net"] == "lenet" and run.config["arch"]["pe"]["lanes"] == 4


def test_every_output_splits_the_speedup_into_architecture_and_early_termination(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--limit", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "where it comes from:" in printed and "architecture" in printed and "early termination" in printed
    run = read_run(out)
    s = run.summary
    for key in ("speedup", "speedup_architecture", "speedup_early_termination", "energy_reduction",
                "energy_reduction_architecture", "energy_reduction_early_termination", "saved_cycle_share"):
        assert key in s, key
    assert s["speedup"] == pytest.approx(s["speedup_architecture"] * s["speedup_early_termination"], rel=1e-12)
    assert s["energy_reduction"] == pytest.approx(
        s["energy_reduction_architecture"] * s["energy_reduction_early_termination"], rel=1e-12)
    d, b = s["designs"]["snapea"], s["designs"]["eyeriss"]
    assert s["speedup"] == pytest.approx(b["cycles"] / d["cycles"], rel=1e-12)
    t = run.layers
    mine = t[t["design"] == "snapea"].set_index("layer")
    base = t[t["design"] == "eyeriss"].set_index("layer")
    for col in ("mapping", "dense_cycles", "dense_energy_pj", "dense_macs", "speedup_architecture",
                "speedup_early_termination", "energy_reduction_architecture", "energy_reduction_early_termination",
                "saved_cycle_share"):
        assert col in mine.columns, col
    assert np.allclose(mine["speedup"], base["cycles"] / mine["cycles"])
    assert np.allclose(mine["speedup_architecture"], base["cycles"] / mine["dense_cycles"])
    assert np.allclose(mine["speedup_early_termination"], mine["dense_cycles"] / mine["cycles"])
    conv = mine[mine["type"] == "conv"]
    saved = (conv["dense_macs"] - conv["macs_performed"]) / 256
    assert np.allclose(conv["saved_cycle_share"], (conv["dense_cycles"] - conv["cycles"]) / saved)
    assert (mine["mapping"].str.len() > 0).all()
    fc = mine[mine["type"] == "fc"]  # no early termination: the dense counterpart is the layer itself
    assert (fc["dense_cycles"] == fc["cycles"]).all() and fc["saved_cycle_share"].isna().all()


def test_replaying_config_gives_identical_numbers(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "--limit", "16", "--out", str(a), "--negative-order", "least_negative_first"]) == 0
    assert main(["run", "--config", str(a / "config.yaml"), "--out", str(b)]) == 0
    ta, tb = pd.read_parquet(a / "layers.parquet"), pd.read_parquet(b / "layers.parquet")
    pd.testing.assert_frame_equal(ta, tb)
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    assert sa["accuracy"] == sb["accuracy"]
    assert read_run(b).config["run"]["negative_order"] == "least_negative_first"


def test_existing_output_folder_is_not_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--limit", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "--limit", "8", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", "--limit", "8", "--out", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--net", "nosuchnet"], "nosuchnet"),
    (["--limit", "0"], "limit"),
    (["--mode", "predictive"], "spec"),
    (["--images", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys, args, message):
    assert main(["run", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelsim: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()  # no half-written run folder


def test_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("run:\n  net: lenet\n  lanes: 4\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "unknown setting lanes" in capsys.readouterr().err
    cfg.write_text("run: [unclosed\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_shape_only_eyeriss_chip_on_alexnet(tmp_path, capsys):
    out = tmp_path / "alex"
    assert main(["run", "--arch", "arch_configs/eyeriss_chip.yaml", "--net", "alexnet", "--shape-only",
                 "--batch", "4", "--baseline", "none", "--out", str(out)]) == 0
    run = read_run(out)
    t = run.layers
    assert set(t["design"]) == {"eyeriss_chip"} and (t["macs_performed"] == t["macs_dense"]).all()
    conv = t[t["type"] == "conv"]
    assert conv["macs_dense"].sum() == 665_784_864
    assert run.summary["baseline"] is None and "accuracy" not in run.summary


def test_set_overrides_reach_the_model_and_are_validated(tmp_path, capsys):
    base, dram2 = tmp_path / "base", tmp_path / "dram2"
    assert main(["run", "--limit", "8", "--out", str(base)]) == 0
    assert main(["run", "--limit", "8", "--out", str(dram2), "--set", "energy.dram_pj_per_bit=30",
                 "--baseline-set", "energy.dram_pj_per_bit=30"]) == 0
    a, b = read_run(base).layers, read_run(dram2).layers
    # The mappers weigh energy (objective edp), so a costlier DRAM may pick another schedule for a layer; where the
    # schedule is the same, exactly the DRAM component doubles.
    same = (a["mapping"] == b["mapping"]).to_numpy()
    assert same.sum() >= len(a) - 2
    assert np.allclose(b["energy_dram_pj"][same], 2 * a["energy_dram_pj"][same])
    for col in ("energy_rf_pj", "energy_pe_pj", "energy_noc_pj", "cycles"):
        assert np.array_equal(a[col][same], b[col][same]), col
    capsys.readouterr()
    assert main(["run", "--limit", "8", "--set", "pe.lanes=0", "--out", str(tmp_path / "x")]) == 2
    assert "lanes" in capsys.readouterr().err
    assert main(["run", "--limit", "8", "--set", "pe.lane=4", "--out", str(tmp_path / "x")]) == 2
    assert "pe.lane" in capsys.readouterr().err


def test_importing_accelsim_first_lets_idle_blas_threads_sleep_unless_the_user_chose():
    """`import accelsim` sets OPENBLAS_THREAD_TIMEOUT=4 before NumPy loads OpenBLAS (its idle threads otherwise spin
    for 2^28 cycles after each GEMM and slow the Numba kernels between them); a value already set is kept."""
    import os
    import subprocess
    import sys

    probe = "import accelsim, os, numpy; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "4"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "OPENBLAS_THREAD_TIMEOUT": "28"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "28"
