"""accelsim sweep: grids, one functional pass per group, resume after a kill, failed points, Dask = local."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.config import RunConfig
from accelsim.errors import ConfigError
from accelsim.functional import forward
from accelsim.run import run
from accelsim.sweep import SweepDefinition, expand, make_points, parse_sets, sweep

LANES = "pe.lanes=1,2,4,8,16"


@pytest.fixture
def count_passes(monkeypatch):
    """Counts functional passes (calls of accelsim.functional.forward.run) in this process."""
    calls = []
    real = forward.run

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "run", counting)
    return calls


def _last(folder: Path) -> dict:
    return json.loads((folder / "sweep.json").read_text())["last_invocation"]


# -- grids ------------------------------------------------------------------------------------------------------------
def test_grid_zip_and_key_routing():
    axes = parse_sets(["pe.lanes=1,2", "run.negative_order=most_negative_first,least_negative_first",
                       "baseline.pe.lanes=1", "dram.bandwidth_gbps=9.6"])
    grid = expand(axes, "grid")
    assert len(grid) == 4 and grid[0]["pe.lanes"] == "1" and grid[1]["pe.lanes"] == "1"  # first axis slowest
    assert all(p["baseline.pe.lanes"] == "1" and p["dram.bandwidth_gbps"] == "9.6" for p in grid)
    points = make_points({"net": "lenet", "set": ["array.rows=4"]}, axes)
    s = points[1].settings
    assert s["set"] == ["array.rows=4", "pe.lanes=1", "dram.bandwidth_gbps=9.6"]
    assert s["baseline_set"] == ["pe.lanes=1"] and s["negative_order"] == "least_negative_first"
    assert points[1].values == {"pe.lanes": 1, "run.negative_order": "least_negative_first"}  # fixed keys: no column
    assert [p.id for p in points] == ["p0000", "p0001", "p0002", "p0003"]
    zipped = expand(parse_sets([LANES, "array.cols=32,16,8,4,2"]), "zip")
    assert [(p["pe.lanes"], p["array.cols"]) for p in zipped] == [("1", "32"), ("2", "16"), ("4", "8"), ("8", "4"),
                                                                  ("16", "2")]
    with pytest.raises(ConfigError, match="same number of values"):
        expand(parse_sets([LANES, "array.cols=32,16"]), "zip")
    with pytest.raises(ConfigError, match="unknown run setting 'negative_ordr'"):
        parse_sets(["run.negative_ordr=original"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_sets(["pe.lanes=1", "pe.lanes=2"])
    with pytest.raises(ConfigError, match="empty value"):
        parse_sets(["pe.lanes=1,,2"])


# -- the lane sweep (spec A.7 item 16, PE count fixed) -----------------------------------------------------------------
def test_lane_sweep_shares_one_functional_pass(tmp_path, count_passes):
    out = tmp_path / "lanes"
    assert main(["sweep", "--set", LANES, "--limit", "12", "--workers", "1", "--out", str(out)]) == 0
    assert len(count_passes) == 1
    assert _last(out)["functional_passes"] == 1 and _last(out)["ran"] == 5
    t = pd.read_parquet(out / "results.parquet")
    assert list(t.columns[:2]) == ["point", "pe.lanes"]
    assert len(t) == 5 * 2 * 5  # points x designs x layers
    assert sorted(t["pe.lanes"].unique()) == [1, 2, 4, 8, 16]
    snapea = t[t["design"] == "snapea"]
    mac_units = 64 * snapea["pe.lanes"]  # 8 x 8 PEs held, lanes scale the MAC units
    # MAC units x cycles never below the MACs performed; busy cycles are exactly MACs / MAC units
    assert (snapea["cycles"] * mac_units >= snapea["macs_performed"] - 1e-6).all()
    assert np.allclose(snapea["cycles_busy"] * mac_units, snapea["macs_performed"])
    eyeriss = t[t["design"] == "eyeriss"]
    assert (eyeriss["cycles"] * 256 >= eyeriss["macs_performed"] - 1e-6).all()
    by_layer = snapea.pivot(index="pe.lanes", columns="layer", values="macs_performed")
    assert (by_layer.nunique() == 1).all()  # one functional pass: the same MACs at every lane count
    cycles = snapea.pivot(index="pe.lanes", columns="layer", values="cycles").sort_index()
    # dense layers (fc) with the PE count fixed: more lanes never add cycles (docs/timing_snapea.md, item 16)
    assert (cycles[["fc1", "fc2", "fc3"]].diff().dropna() <= 1e-9).all().all()
    assert cycles.loc[16, "conv1"] < cycles.loc[1, "conv1"]
    # the baseline does not change with the design's lanes
    assert eyeriss.groupby("layer")["cycles"].nunique().eq(1).all()
    totals = pd.read_parquet(out / "totals.parquet")
    assert (totals["status"] == "ok").all() and len(totals) == 10
    design = totals[totals["role"] == "design"].set_index("pe.lanes")
    assert np.allclose(design["cycles"], snapea.groupby("pe.lanes")["cycles"].sum())
    # a point's numbers are those of `accelsim run` with the same settings
    alone = run(RunConfig.of(limit=12, set=("pe.lanes=8",)), out=tmp_path / "alone")
    mine = t[t["pe.lanes"] == 8].drop(columns=["point", "pe.lanes"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, pd.read_parquet(tmp_path / "alone" / "layers.parquet"))
    assert design.loc[8, "speedup"] == pytest.approx(alone.summary["speedup"])
    assert design.loc[8, "top1"] == alone.summary["accuracy"]["top1"]


def test_mac_count_fixed_lane_sweep(tmp_path, count_passes):
    out = tmp_path / "macs"
    argv = ["sweep", "--zip", "--set", LANES, "--set", "array.cols=32,16,8,4,2", "--limit", "8", "--workers", "1",
            "--baseline", "none", "--out", str(out)]
    assert main(argv) == 0
    assert len(count_passes) == 1
    t = pd.read_parquet(out / "results.parquet")
    assert set(t["design"]) == {"snapea"}
    units = 8 * t["array.cols"] * t["pe.lanes"]
    assert (units == 256).all()  # 8 rows x cols x lanes: the MAC count held at 256
    assert (t["cycles"] * 256 >= t["macs_performed"] - 1e-6).all()
    assert np.allclose(t["cycles_busy"] * 256, t["macs_performed"])  # busy cycles equal across the series
    assert t.groupby("point")["cycles"].sum().nunique() > 1  # ... the rest (lockstep, barriers) is what differs


# -- failures, changed commands, progress -----------------------------------------------------------------------------
def test_bad_values_stop_the_sweep_before_anything_runs(tmp_path, capsys, count_passes):
    """Every point is checked first: a value no design can run, a bad run value and a typo are reported together,
    each naming its point, and nothing is written; the corrected command then runs without --force."""
    out = tmp_path / "wb"
    argv = ["sweep", "--set", "pe.weight_buffer_bytes=2,512", "--set", "run.limit=4,0", "--set", "run.negativ_order=x",
            "--workers", "1", "--baseline", "none", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown run setting 'negativ_order'" in err and not out.exists()
    argv[6] = "run.negative_order=original"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sweep not started" in err and "nothing was written" in err
    assert "point p0000 (pe.weight_buffer_bytes=2, run.limit=4)" in err and "too small for a kernel" in err
    assert "run.limit: must be > 0, got 0" in err
    assert not out.exists() and not count_passes
    argv[4] = "run.limit=4,6"
    argv[2] = "pe.weight_buffer_bytes=512"
    assert main(argv) == 0


def test_failing_point_is_recorded_and_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    """A point that fails while running (here: its designs' timing raises) is recorded and the others go on."""
    from accelsim import run as run_mod

    real = run_mod._assemble

    def failing(point, *args, **kwargs):
        if point.cfg.limit == 4 and point.arch.pe.lanes == 2:
            raise ConfigError("this point cannot be timed")
        return real(point, *args, **kwargs)

    monkeypatch.setattr(run_mod, "_assemble", failing)
    out = tmp_path / "wb"
    argv = ["sweep", "--set", "pe.lanes=2,4", "--set", "run.limit=4,6", "--workers", "1",
            "--baseline", "none", "--out", str(out)]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "1 point(s) failed" in printed and "cannot be timed" in printed
    totals = pd.read_parquet(out / "totals.parquet")
    failed = totals[totals["status"] == "failed"]
    assert list(failed["point"]) == ["p0000"]
    ok = totals[totals["status"] == "ok"]
    assert list(ok["pe.lanes"]) == [2, 4, 4] and list(ok["images"]) == [6, 4, 6]
    record = json.loads((out / "points" / "p0000.json").read_text())
    assert record["status"] == "failed" and "Traceback" in record["traceback"]
    # a re-run tries the failed point again and leaves the finished ones alone
    monkeypatch.setattr(run_mod, "_assemble", real)
    assert main(argv) == 0
    assert _last(out)["skipped"] == 3 and _last(out)["ran"] == 1


def test_changed_command_needs_force(tmp_path, capsys):
    out = tmp_path / "s"
    base = ["sweep", "--shape-only", "--workers", "1", "--baseline", "none", "--out", str(out)]
    assert main([*base, "--set", "pe.lanes=2,4"]) == 0
    assert main([*base, "--set", "pe.lanes=2,4,8"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err
    assert main([*base, "--set", "pe.lanes=2,4", "--limit", "3"]) == 2  # a changed fixed setting too
    assert main([*base, "--set", "pe.lanes=2,4,8", "--force"]) == 0
    assert sorted(pd.read_parquet(out / "results.parquet")["pe.lanes"].unique()) == [2, 4, 8]
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("not a sweep")
    assert main([*base[:-1], str(other), "--set", "pe.lanes=2,4"]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    argv = ["sweep", "--shape-only", "--workers", "1", "--baseline", "none", "--set", "pe.lanes=2,4"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "point" not in capsys.readouterr().err  # not a terminal: no bar
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "2/2" in term.getvalue() and "point" in term.getvalue()
    # accelsim run counts images the same way
    term.seek(0)
    term.truncate()
    assert main(["run", "--limit", "5", "--baseline", "none", "--no-float-reference", "--out",
                 str(tmp_path / "run")]) == 0
    assert "5/5" in term.getvalue() and "image" in term.getvalue()


# -- resume after a kill ----------------------------------------------------------------------------------------------
def test_killed_sweep_resumes_without_recomputing(tmp_path):
    out, ref = tmp_path / "killed", tmp_path / "uninterrupted"
    argv = ["sweep", "--set", LANES, "--limit", "8", "--workers", "1", "--no-float-reference"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "accelsim", *argv, "--points-per-pass", "1", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while not list((out / "points").glob("p*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no point finished within 60 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in (out / "points").glob("p*.json")}
    assert 1 <= len(finished) < 5, "the sweep was not killed midway"
    # resume (grouped this time: one pass for the remaining points) and compare with a run never interrupted
    assert main([*argv, "--out", str(out)]) == 0
    assert _last(out)["skipped"] == len(finished) and _last(out)["ran"] == 5 - len(finished)
    assert _last(out)["functional_passes"] == 1
    for name, (mtime, text) in finished.items():
        path = out / "points" / name
        assert path.stat().st_mtime_ns == mtime and path.read_text() == text  # not recomputed
    assert not list(out.rglob("*.tmp"))
    assert main([*argv, "--out", str(ref)]) == 0
    for table in ("results.parquet", "totals.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / table), pd.read_parquet(ref / table))


# -- executors ---------------------------------------------------------------------------------------------------------
def test_dask_local_cluster_gives_the_local_table(tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    spec = SweepDefinition(base={"net": "lenet", "limit": 8, "float_reference": False},
                     axes=tuple(parse_sets(["pe.lanes=2,8", "run.negative_order=most_negative_first,original"])))
    local = sweep(spec, tmp_path / "local", workers=1)
    assert local.functional_passes == 2 and local.tasks == 2
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address)  # as --scheduler tcp://...
    assert remote.executor == "dask" and remote.workers == 2 and remote.functional_passes == 2
    pd.testing.assert_frame_equal(local.results, remote.results)
    pd.testing.assert_frame_equal(local.totals, remote.totals)
    for table in ("results.parquet", "totals.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local" / table),
                                      pd.read_parquet(tmp_path / "dask" / table))
    assert len(local.results) == 4 * 2 * 5


def test_local_processes_give_the_inline_table(tmp_path):
    spec = SweepDefinition(base={"net": "lenet", "limit": 4, "float_reference": False, "baseline": None},
                     axes=tuple(parse_sets(["pe.lanes=2,8", "run.negative_order=most_negative_first,original"])))
    inline = sweep(spec, tmp_path / "inline", workers=1)
    procs = sweep(spec, tmp_path / "procs", workers=2, points_per_pass=1)
    assert procs.executor == "processes" and procs.workers == 2 and procs.tasks == 4
    pd.testing.assert_frame_equal(inline.results, procs.results)
    pd.testing.assert_frame_equal(inline.totals, procs.totals)
