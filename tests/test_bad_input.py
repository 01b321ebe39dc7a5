"""The bad-input catalogue: every mistake a user can make on the command line gets exit code 2, one clear message
naming what is wrong and what was expected, no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelsim.cli import main


def _fails(argv: list[str], capsys, *needles: str, written: Path | None = None) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelsim: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    if written is not None:
        assert not written.exists() or not any(written.iterdir()), f"{written} was written"
    return err


# -- output locations --------------------------------------------------------------------------------------------------
def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    _fails(["run", "--out", str(f)], capsys, "is a file, not a folder")
    _fails(["run", "--out", str(f / "run")], capsys, "is a file, so nothing can be created under it")
    _fails(["sweep", "--set", "pe.lanes=2,4", "--out", str(f)], capsys, "is a file, not a folder")
    _fails(["tradeoff", "--out", str(f)], capsys, "is a file, not a folder")
    _fails(["optimize", "--epsilon", "0.01", "--out", str(f / "spec.npz")], capsys, "nothing can be created")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_unwritable(tmp_path, capsys):  # pragma: no cover - CI runs as root
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    _fails(["run", "--out", str(ro / "run")], capsys, "permission denied")


def test_existing_run_folder_is_found_before_the_simulation(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep").write_text("x")
    from accelsim.functional import forward

    def no_pass(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("the functional pass ran before the output folder was checked")

    monkeypatch.setattr(forward, "run", no_pass)
    _fails(["run", "--out", str(out)], capsys, "already exists and is not empty", "--overwrite")
    assert (out / "keep").read_text() == "x"


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    """Two runs that get the same default folder name (the same second) write two folders."""
    from accelsim import run as run_mod

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_mod, "default_out_dir", lambda cfg: Path("runs") / "lenet-snapea-exact-20260101-000000")
    assert main(["run", "--limit", "4", "--baseline", "none"]) == 0
    assert main(["run", "--limit", "4", "--baseline", "none"]) == 0
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["lenet-snapea-exact-20260101-000000", "lenet-snapea-exact-20260101-000000-2"]
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary folder left behind


# -- settings and files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["--arch", "nosuch"], ["unknown architecture 'nosuch'", "snapea"]),
    (["--arch", "nosuch.yaml"], ["does not exist", "snapea.yaml"]),
    (["--baseline", "nosuch"], ["unknown architecture 'nosuch'"]),
    (["--set", "pe.lane=4"], ["unknown key 'pe.lane'", "pe.lanes"]),
    (["--set", "pe.lanes=four"], ["pe.lanes must be a positive integer"]),
    (["--set", "array.rows=100000"], ["array.rows must be at most 1024"]),
    (["--set", "pe.weight_buffer_bytes=2"], ["too small for a kernel"]),
    (["--limit", "0"], ["--limit: must be > 0, got 0"]),
    (["--weight-bits", "99"], ["--weight-bits: must be <= 24"]),
    (["--mode", "predictive"], ["needs speculation parameters"]),
    (["--mode", "predictive", "--spec", "/nonexistent.npz"], ["/nonexistent.npz does not exist"]),
    (["--net", "nosuchnet"], ["nosuchnet"]),
    (["--images", "/nonexistent/folder"], ["/nonexistent/folder"]),
    (["--weights", "/nonexistent.npz"], ["/nonexistent.npz"]),
    (["--skip", "5000"], ["--skip 5000 passes over every one of the 1000 images"]),
])
def test_bad_run_settings(args, needles, tmp_path, capsys):
    _fails(["run", *args, "--out", str(tmp_path / "x")], capsys, *needles, written=tmp_path / "x")


def test_independent_problems_are_reported_in_one_message(tmp_path, capsys):
    err = _fails(["run", "--arch", "nosuch", "--baseline", "nosuch2", "--images", "/nonexistent/folder",
                  "--out", str(tmp_path / "x")], capsys, "3 problems", "nosuch2", "/nonexistent/folder")
    assert err.count("\n  - ") == 3


def test_malformed_architecture_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndataflow: snapea\n  clock_mhz: [\n")
    _fails(["run", "--arch", str(bad), "--out", str(tmp_path / "x")], capsys, "malformed YAML", "line")
    bad.write_text("name: x\ndataflow: snapea\nclock_mhz: 500\nclock_mhz: 400\n")
    _fails(["run", "--arch", str(bad), "--out", str(tmp_path / "x")], capsys, "appears twice")


def test_empty_image_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["run", "--images", str(empty), "--out", str(tmp_path / "x")], capsys, str(empty))


def test_random_bytes_as_a_config(tmp_path, capsys):
    junk = tmp_path / "config.yaml"
    junk.write_bytes(os.urandom(256))
    _fails(["run", "--config", str(junk), "--out", str(tmp_path / "x")], capsys, str(junk))


# -- sweeps ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axes, needles", [
    (["--set", "run.nosuch=1,2"], ["unknown run setting 'nosuch'"]),
    (["--set", "run.mode=dense,fast"], ["run.mode: must be one of 'dense', 'exact', 'predictive', got 'fast'"]),
    (["--set", "pe.lanes=2,0"], ["pe.lanes must be a positive integer, got 0"]),
    (["--set", "pe.lane=2,4"], ["unknown key 'pe.lane'"]),
    (["--set", "run.limit=4,6", "--set", "run.limit=8,9"], ["given twice"]),
    (["--zip", "--set", "pe.lanes=2,4", "--set", "array.cols=8,4,2"], ["same number of values"]),
])
def test_bad_sweep_axes_stop_before_anything_runs(axes, needles, tmp_path, capsys):
    out = tmp_path / "sweep"
    _fails(["sweep", *axes, "--limit", "4", "--out", str(out)], capsys, *needles)
    assert not out.exists()


def test_sweep_workers_die_with_their_parent(tmp_path):
    """SIGKILL of a sweep with 2 worker processes leaves no worker behind after a few seconds."""
    import signal
    import time

    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "accelsim", "sweep", "--set", "pe.lanes=1,2,4,8", "--set", "run.limit=200,300",
           "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        children: list[int] = []
        while time.time() < deadline and len(children) < 2:
            time.sleep(0.5)
            children = _children(proc.pid)
        assert len(children) >= 2, "the sweep did not start its workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.25)
        assert not any(_alive(pid) for pid in children), "worker processes outlived the killed sweep"
    finally:
        if proc.poll() is None:
            proc.kill()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.is_file():
            out += [int(c) for c in children.read_text().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"
