"""A sweep over number formats and widths through the generated `run.*` keys, and its accuracy-vs-energy figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.report import figures as F
from accelsim.report.source import load_source


@pytest.fixture(scope="module")
def format_sweep(tmp_path_factory) -> Path:
    pytest.importorskip("accelsim.sweep")
    out = tmp_path_factory.mktemp("formats") / "sweep"
    assert main(["sweep", "--net", "lenet", "--set", "run.number_format=dynamic_fixed,lightnn2", "--set",
                 "run.weight_bits=8,6", "--limit", "8", "--workers", "1", "--out", str(out)]) == 0
    return out


def test_a_sweep_runs_every_format_and_width(format_sweep):
    totals = pd.read_parquet(format_sweep / "totals.parquet")
    mine = totals[totals["role"] == "design"]
    points = set(zip(mine["run.number_format"], mine["run.weight_bits"]))
    assert points == {("dynamic_fixed", 8), ("dynamic_fixed", 6), ("lightnn2", 8), ("lightnn2", 6)}
    assert mine["top1"].notna().all()


def test_format_tradeoff_figure_has_one_curve_per_format(format_sweep):
    src = load_source(format_sweep)
    fig = F.draw_format_tradeoff(src)
    totals = pd.read_parquet(format_sweep / "totals.parquet")
    mine = totals[totals["role"] == "design"]
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == {"dynamic_fixed", "lightnn2"}
    for name, line in lines.items():
        x, y = line.get_data()
        rows = mine[mine["run.number_format"] == name].sort_values("energy_pj")
        assert list(x) == pytest.approx(list(rows["energy_pj"] / 1e6))
        assert list(y) == pytest.approx(list(100 * rows["top1"]))


def test_format_tradeoff_figure_is_skipped_without_a_format_sweep(tmp_path):
    lanes = tmp_path / "lanes"
    assert main(["sweep", "--net", "lenet", "--set", "pe.lanes=1,2", "--limit", "4", "--workers", "1",
                 "--out", str(lanes)]) == 0
    with pytest.raises(F.SkipFigure, match="varies no number format"):
        F.draw_format_tradeoff(load_source(lanes))
