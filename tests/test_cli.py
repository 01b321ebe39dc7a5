"""The main job end to end: `accelsim run` on the embedded default network, its run folder, replay, bad input."""

import json

import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.results import read_run


def test_default_run_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--limit", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv1" in printed and "top-1" in printed
    run = read_run(out)
    t = run.layers
    for col in ("network", "design", "layer", "mode", "images", "macs_dense", "macs_performed", "neg_fraction",
                "tn_rate", "fn_rate"):
        assert col in t.columns
    assert list(t["layer"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert (t["images"] == 40).all()
    conv = t[t["layer"].str.startswith("conv")]
    assert (conv["mode"] == "exact").all()  # inputs in [0, 1]: conv1 is eligible too
    assert (conv["macs_performed"] < conv["macs_dense"]).all()
    s = run.summary
    assert s["images"] == 40 and s["accuracy"]["agreement"] == 1.0 and s["exact_violations"] == 0
    assert s["accuracy"]["top1"] > 0.9
    assert run.config["run"]["net"] == "lenet"


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
    assert "unknown key" in capsys.readouterr().err
    cfg.write_text("run: [unclosed\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
