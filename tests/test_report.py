"""accelsim report: figures (PNG and SVG) and a self-contained report.html from run, sweep, trade-off and fault-study
folders, checked against the tables they come from and rendered in headless Chromium where one is installed."""

from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import check_in_browser, find_browser

from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.report import FIGURES, load_source, write_report
from accelsim.report import figures as F
from accelsim.report import tables as T

RUN_FIGURES = ("speedup_energy", "speedup_split", "energy_breakdown", "neg_fraction", "cycle_breakdown")
FAULT_FIGURES = ("fault_sensitivity", "fault_energy")
PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tables (id -> rows of {column: (text, data-value)}), every src/href, and the figure images of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, tuple[str, str | None]]]] = {}
        self.links: list[tuple[str, str, str]] = []
        self.images: list[str] = []
        self.skipped: list[str] = []
        self._table = self._row = self._cell = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href", "xlink:href", "action", "poster", "srcset"):
            if key in a:
                self.links.append((tag, key, a[key] or ""))
        if tag == "img" and "data-figure" in a:
            self.images.append(a["data-figure"])
        if "data-skipped" in a:
            self.skipped.append(a["data-skipped"])
        if tag == "table":
            self._table = a["id"].removeprefix("table-")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = {}
        elif tag == "td" and self._row is not None:
            self._cell, self._text = (a.get("data-col"), a.get("data-value")), ""

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            col, value = self._cell
            self._row[col] = (self._text, value)
            self._cell = None
        elif tag == "tr" and self._row:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _shown(text: str) -> float:
    """The number a cell shows ('1,234.5', '1.362×', '100.00%')."""
    return float(text.replace(",", "").rstrip("×%"))


def _decimals(text: str) -> int:
    m = re.search(r"\.(\d+)", text)
    return len(m.group(1)) if m else 0


def _check_cell(cell: tuple[str, str | None], value: float, scale: float = 1.0) -> None:
    """The cell carries exactly `value` and shows value x scale rounded to the digits it shows."""
    text, raw = cell
    assert raw is not None and float(raw) == pytest.approx(value, rel=0, abs=0)
    assert _shown(text) == pytest.approx(value * scale, abs=0.51 * 10 ** -_decimals(text))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "lenet-run"
    assert main(["run", "--limit", "8", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    assert main(["report", str(run_dir)]) == 0  # default: inside the run folder
    return run_dir / "report.html"


def test_run_report_writes_every_run_figure_as_png_and_svg(run_dir, report):
    figures = run_dir / "figures"
    for name in RUN_FIGURES:
        png, svg = (figures / f"{name}.png").read_bytes(), (figures / f"{name}.svg").read_bytes()
        assert png.startswith(PNG) and len(png) > 5000
        assert svg.startswith(b"<?xml") and b"<svg" in svg[:2000] and len(svg) > 5000
    # A run has no lane sweep and no accuracy/speed points: those figures are skipped, and the page says why.
    assert not (figures / "lane_sensitivity.png").exists() and not (figures / "accuracy_speedup.svg").exists()
    page = _page(report)
    assert sorted(page.images) == sorted(RUN_FIGURES)
    assert sorted(page.skipped) == ["accuracy_speedup", "fault_energy", "fault_sensitivity", "format_tradeoff",
                                    "lane_sensitivity", "sweep_layers"]
    assert "Not drawn" in report.read_text() and "needs a sweep folder" in report.read_text()
    assert not list(run_dir.glob(".*.tmp")) and not list(figures.glob(".*.tmp"))  # atomic writes left nothing


def test_report_html_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    page = _page(report)
    for tag, attr, value in page.links:
        assert value.startswith("data:") if attr == "src" else value.startswith("#"), (tag, attr, value[:80])
    assert all(v.startswith("data:image/png;base64,") for t, a, v in page.links if t == "img")
    assert "http://" not in text and "https://" not in text and "<link" not in text and "@import" not in text
    assert "url(" not in text and "file:" not in text


def test_table_values_match_the_run_tables(run_dir, report):
    layers = pd.read_parquet(run_dir / "layers.parquet")
    summary = json.loads((run_dir / "summary.json").read_text())
    design, baseline = summary["design"], summary["baseline"]
    page = _page(report)
    rows = {r["layer"][0]: r for r in page.tables["layers"]}
    assert list(rows) == list(layers.loc[layers["design"] == design, "layer"])
    for _, r in layers.iterrows():
        row = rows[r["layer"]]
        _check_cell(row[f"{r['design']} cycles"], r["cycles"])
        _check_cell(row[f"{r['design']} energy µJ"], r["energy_pj"], 1e-6)
        if r["design"] == design:
            _check_cell(row["speedup"], r["speedup"])
            _check_cell(row["energy reduction"], r["energy_reduction"])
            assert row["mode"][0] == r["mode"]
            if not math.isnan(r["neg_fraction"]):
                _check_cell(row["negative outputs"], r["neg_fraction"], 100)
            else:
                assert row["negative outputs"] == ("", None)
    totals = {r["quantity"][0]: r for r in page.tables["totals"]}
    for name in (design, baseline):
        _check_cell(totals["cycles"][name], summary["designs"][name]["cycles"])
        _check_cell(totals["energy µJ"][name], summary["designs"][name]["energy_pj"], 1e-6)
        _check_cell(totals["energy: DRAM µJ"][name], summary["designs"][name]["energy_dram_pj"], 1e-6)
    network = {r["quantity"][0]: r["value"] for r in page.tables["network"]}
    _check_cell(network["speedup (cycles)"], summary["speedup"])
    _check_cell(network["energy reduction"], summary["energy_reduction"])
    accuracy = {r["quantity"][0]: r["value"] for r in page.tables["accuracy"]}
    _check_cell(accuracy["top-1"], summary["accuracy"]["top1"], 100)
    assert accuracy["images"][0] == "8"
    # Every column of layers.parquet, row for row.
    raw = page.tables["layers-raw"]
    assert len(raw) == len(layers)
    for i in (0, len(layers) - 1):
        _check_cell(raw[i]["macs_performed"], layers["macs_performed"].iloc[i])
        assert raw[i]["design"][0] == layers["design"].iloc[i]
    config = {r["key"][0]: r["value"][0] for r in page.tables["config-arch"]}
    assert config["pe.lanes"] == "4" and config["name"] == design


def test_figures_draw_the_table_values(run_dir):
    """The stacked cycle bars reach each layer's cycles; the speedup bars are the table's speedups."""
    src = load_source(run_dir)
    layers = src.run.layers
    design = src.run.summary["design"]
    mine = layers[layers["design"] == design]
    fig = F.draw_speedup_energy(src)
    heights = [p.get_height() for p in fig.axes[0].patches]
    n = len(mine)
    assert heights[:n] == pytest.approx(list(mine["speedup"]))
    assert heights[n] == pytest.approx(src.run.summary["speedup"])
    fig = F.draw_cycle_breakdown(src)
    tops = {}
    for p in fig.axes[0].patches:
        key = round(p.get_x() + p.get_width() / 2, 6)
        tops[key] = max(tops.get(key, 0.0), p.get_y() + p.get_height())
    expected = sorted(layers["cycles"])
    assert sorted(tops.values()) == pytest.approx(expected)


def test_svg_output_is_reproducible(run_dir):
    src = load_source(run_dir)
    spec = [s for s in FIGURES if s.name == "neg_fraction"]
    first, second = F.render(src, spec)[0], F.render(src, spec)[0]
    assert first.svg == second.svg and first.png == second.png


@pytest.fixture(scope="module")
def browser():
    path = find_browser()
    if path is None:
        pytest.skip("no Chromium installed (apt-get install chromium); the browser check needs one")
    return path


def test_report_renders_in_headless_chromium(report, browser, tmp_path):
    from PIL import Image

    check = check_in_browser(report, tmp_path / "shot.png", browser=browser)
    assert sorted(check.expected) == sorted(RUN_FIGURES)
    assert sorted(check.loaded) == sorted(RUN_FIGURES), f"figures not decoded: {set(RUN_FIGURES) - set(check.loaded)}"
    assert not check.blank and check.ok
    with Image.open(check.screenshot) as img:
        assert img.size == (1400, 3000)
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    # The figures' bar blue (#2F6DB5) is painted: the images are on screen, not just in the DOM.
    blue = (np.abs(pixels - [0x2F, 0x6D, 0xB5]).sum(axis=1) < 30).sum()
    assert blue > 5000


def test_browser_check_catches_a_figure_that_does_not_decode(report, browser, tmp_path):
    broken = tmp_path / "broken.html"
    text = report.read_text(encoding="utf-8")
    start = text.index('data-figure="neg_fraction"')
    src = text.index("base64,", start) + len("base64,")
    broken.write_text(text[:src] + "bm90IGEgcG5n" + text[text.index('"', src):], encoding="utf-8")
    check = check_in_browser(broken, tmp_path / "broken.png", browser=browser)
    assert "neg_fraction" in check.expected and "neg_fraction" not in check.loaded and not check.ok


def test_cli_report_to_another_folder_and_stale_figures_removed(run_dir, tmp_path):
    out = tmp_path / "elsewhere"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "lane_sensitivity.png").write_bytes(b"stale")  # from an earlier report of another folder
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "figures" / "cycle_breakdown.svg").is_file()
    assert not (out / "figures" / "lane_sensitivity.png").exists()


def test_shape_only_run_without_baseline_skips_what_it_lacks(tmp_path):
    run = tmp_path / "shape"
    assert main(["run", "--shape-only", "--baseline", "none", "--out", str(run)]) == 0
    rep = write_report(run)
    assert set(rep.skipped) == {"speedup_energy", "speedup_split", "neg_fraction", "lane_sensitivity",
                                "accuracy_speedup", "sweep_layers", "format_tradeoff", *FAULT_FIGURES}
    assert "no baseline" in rep.skipped["speedup_energy"] and "shape-only" in rep.skipped["neg_fraction"]
    assert sorted(p.name for p in rep.figures) == ["cycle_breakdown.png", "cycle_breakdown.svg",
                                                   "energy_breakdown.png", "energy_breakdown.svg"]
    page = _page(rep.html)
    assert sorted(page.skipped) == sorted(rep.skipped) and "accuracy" not in page.tables


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    pytest.importorskip("accelsim.sweep")
    out = tmp_path_factory.mktemp("report") / "lanes"
    assert main(["sweep", "--net", "lenet", "--set", "pe.lanes=1,2,4,8", "--limit", "8", "--workers", "1",
                 "--out", str(out)]) == 0
    return out


def test_sweep_report_draws_lane_sensitivity_from_the_sweep_totals(sweep_dir, tmp_path):
    rep = write_report(sweep_dir, tmp_path / "rep")
    assert (tmp_path / "rep" / "figures" / "lane_sensitivity.png").read_bytes().startswith(PNG)
    assert (tmp_path / "rep" / "figures" / "lane_sensitivity.svg").stat().st_size > 5000
    assert "lane_sensitivity" not in rep.skipped and "sweep_layers" not in rep.skipped
    # top-1 is the same at every point of a lane sweep: no accuracy figure, and the page says why
    assert "no accuracy trade-off" in rep.skipped["accuracy_speedup"]
    assert set(RUN_FIGURES) <= set(rep.skipped)
    totals = pd.read_parquet(sweep_dir / "totals.parquet")
    mine = totals[totals["role"] == "design"].set_index("pe.lanes")
    rows = {int(r["pe.lanes"][0]): r for r in _page(rep.html).tables["sweep-points"]}
    assert sorted(rows) == [1, 2, 4, 8]
    for lanes, row in rows.items():
        _check_cell(row["speedup"], mine.at[lanes, "speedup"])
        _check_cell(row[f"{mine.at[lanes, 'design']} cycles"], mine.at[lanes, "cycles"])
    fig = F.draw_lane_sensitivity(load_source(sweep_dir))
    x, y = fig.axes[0].lines[0].get_data()
    assert list(x) == [1, 2, 4, 8] and list(y) == pytest.approx(list(mine.loc[[1, 2, 4, 8], "speedup"]))


def test_results_table_alone_is_enough_for_the_lane_figure(sweep_dir, tmp_path):
    """The sweep contract is results.parquet (point, design, layer rows, swept keys as columns); without the
    sweep's totals the network totals are the layer sums, and they agree with the totals the sweep recorded."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(sweep_dir / "results.parquet", bare / "results.parquet")
    src = load_source(bare)
    assert src.sweep_keys == ("pe.lanes",) and src.sweep_totals is None
    points = T.sweep_points(src.sweep, src.sweep_keys).set_index("pe.lanes")
    totals = pd.read_parquet(sweep_dir / "totals.parquet")
    recorded = totals[totals["role"] == "design"].set_index("pe.lanes")
    assert list(points["speedup"]) == pytest.approx(list(recorded.loc[points.index, "speedup"]), rel=1e-9)
    rep = write_report(bare)
    assert "lane_sensitivity" not in rep.skipped and (bare / "figures" / "lane_sensitivity.png").is_file()
    assert "accuracy_speedup" in rep.skipped  # results.parquet carries no top-1


def test_tradeoff_table_draws_accuracy_vs_speedup(tmp_path):
    table = pd.DataFrame({"point": ["exact", "eps=0pt", "eps=2pt"], "epsilon": [math.nan, 0.0, 0.02],
                          "mode": ["exact", "predictive", "predictive"], "top1_eval": [0.99, 0.99, 0.975],
                          "speedup": [1.3, 1.35, 1.6], "speedup_vs_exact": [1.0, 1.04, 1.23]})
    table.to_parquet(tmp_path / "tradeoff.parquet", index=False)
    rep = write_report(tmp_path)
    assert "accuracy_speedup" not in rep.skipped and (tmp_path / "figures" / "accuracy_speedup.svg").is_file()
    fig = F.draw_accuracy_speedup(load_source(tmp_path))
    x, y = fig.axes[0].lines[0].get_data()
    assert list(x) == [1.35, 1.6] and list(y) == pytest.approx([99.0, 97.5])
    rows = _page(rep.html).tables["tradeoff"]
    _check_cell(rows[2]["top1_eval"], 0.975, 100)


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="not a finished accelsim run folder.*results.parquet.*tradeoff.parquet.*"
                                          "fault-study folder.*evaluation.json.*accelsim faults"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(tmp_path / "missing")
    half = tmp_path / "half"
    half.mkdir()
    pd.DataFrame({"layer": ["conv1"]}).to_parquet(half / "layers.parquet")
    with pytest.raises(ConfigError, match="config.yaml is missing"):
        write_report(half)
    # summary.json alone is a half-written run, not a fault study (those have their own tables beside it)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="is missing"):
        write_report(lone)
    assert main(["report", str(tmp_path)]) == 2
    assert "accelsim: error: report:" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_deep_networks_get_horizontal_per_layer_figures(run_dir, monkeypatch):
    """Past MAX_VERTICAL_LAYERS the layers run down the figure; the stacked bars still end at each layer's cycles."""
    monkeypatch.setattr(F, "MAX_VERTICAL_LAYERS", 3)
    src = load_source(run_dir)
    fig = F.draw_cycle_breakdown(src)
    ends = {}
    for p in fig.axes[0].patches:
        key = round(p.get_y() + p.get_height() / 2, 6)
        ends[key] = max(ends.get(key, 0.0), p.get_x() + p.get_width())
    assert sorted(ends.values()) == pytest.approx(sorted(src.run.layers["cycles"]))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(
        src.run.layers.loc[src.run.layers["design"] == src.run.summary["design"], "layer"])
    for draw in (F.draw_speedup_energy, F.draw_energy_breakdown, F.draw_neg_fraction):
        draw(src)  # every per-layer figure has a horizontal form


def test_sweep_layer_figure_and_accuracy_legend(sweep_dir, tmp_path):
    """The per-layer heat map holds results.parquet's per-layer speedups, one row per point; an accuracy figure of a
    sweep labels its points in a legend (never as text on top of each other)."""
    src = load_source(sweep_dir)
    fig = F.draw_sweep_layers(src)
    image = fig.axes[0].images[0].get_array()
    t = src.sweep[src.sweep["design"] == "snapea"]
    expected = t.pivot_table(index="point", columns="layer", values="speedup", sort=False).to_numpy(float)
    assert image.shape == expected.shape == (4, 5)
    assert np.allclose(np.asarray(image), np.log2(expected))
    assert [tick.get_text() for tick in fig.axes[0].get_yticklabels()] == [f"pe.lanes={n}" for n in (1, 2, 4, 8)]
    out = tmp_path / "bits"
    assert main(["sweep", "--set", "run.weight_bits=2,3,16", "--limit", "30", "--workers", "1", "--out",
                 str(out)]) == 0
    bits = load_source(out)
    fig = F.draw_accuracy_speedup(bits)
    ax = fig.axes[0]
    assert not ax.texts and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "run.weight_bits=2", "run.weight_bits=3", "run.weight_bits=16"]


# --- fault studies ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_dir(tmp_path_factory) -> Path:
    """A real `accelsim faults assign` folder: LeNet's DRAM weights at BER 0, 1e-2 and 1e-1 on 12 images (1e-1
    costs some layers top-1, so the sensitivity grid and the greedy trace have something in them)."""
    out = tmp_path_factory.mktemp("report") / "lenet-assign"
    assert main(["faults", "assign", "--limit", "12", "--bers", "0,1e-2,1e-1", "--kinds", "weights",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def fault_report(fault_dir) -> Path:
    assert main(["report", str(fault_dir)]) == 0
    return fault_dir / "report.html"


def _values(page: _Page, table: str) -> dict[str, tuple[str, str | None]]:
    return {r["quantity"][0]: r["value"] for r in page.tables[table]}


def test_fault_study_report_draws_both_figures_and_the_studys_summary(fault_dir, fault_report):
    src = load_source(fault_dir)
    # summary.json here is the assignment's: the folder is a fault study, not a half-written run
    assert src.kind == "faults" and src.run is None and src.faults.study == "assign"
    figures = fault_dir / "figures"
    for name in FAULT_FIGURES:
        assert (figures / f"{name}.png").read_bytes().startswith(PNG)
        assert (figures / f"{name}.svg").stat().st_size > 5000
    page = _page(fault_report)
    assert sorted(page.images) == sorted(FAULT_FIGURES)
    assert sorted(page.skipped) == sorted(f.name for f in FIGURES if f.name not in FAULT_FIGURES)
    text = fault_report.read_text(encoding="utf-8")
    assert "fault-study report (assign): lenet" in text and "is a fault-study folder" in text
    summary = json.loads((fault_dir / "summary.json").read_text())
    rows = _values(page, "fault-summary")
    for label, key, scale in (("fault-free top-1", "clean_top1", 100), ("target top-1 (fault-free − budget)",
                                                                       "target_top1", 100),
                              ("greedy top-1", "greedy_top1", 100),
                              ("memory energy µJ: all nominal", "nominal_energy_pj", 1e-6),
                              ("memory energy µJ: greedy per-layer", "greedy_energy_pj", 1e-6),
                              ("memory energy µJ: uniform, same budget", "uniform_energy_pj_same_budget", 1e-6),
                              ("saving vs all nominal", "saving_vs_nominal", 100),
                              ("saving vs uniform, same budget", "saving_vs_uniform_same_budget", 100),
                              ("saving vs uniform, same accuracy", "saving_vs_uniform", 100)):
        _check_cell(rows[label], summary[key], scale)
    _check_cell(rows["greedy top-1, 95 % interval: low"], summary["greedy_top1_ci95"][0], 100)
    _check_cell(rows["greedy top-1, 95 % interval: high"], summary["greedy_top1_ci95"][1], 100)
    study = _values(page, "fault-study")
    assert study["network"][0] == "lenet" and study["memory"][0] == "dram" and study["levels (most reliable "
                                                                                      "first)"][0] == "0, 0.01, 0.1"
    _check_cell(study["images"], 12)
    uniform = pd.read_parquet(fault_dir / "uniform.parquet")
    shown = page.tables["fault-uniform"]
    assert len(shown) == len(uniform) == 3
    for row, (_, u) in zip(shown, uniform.iterrows()):
        _check_cell(row["top-1"], u["top1"], 100)
        _check_cell(row["top-1 low (95 %)"], u["top1_low"], 100)
        _check_cell(row["memory energy µJ"], u["energy_pj"], 1e-6)
    assert len(page.tables["fault-assignment"]) == 5 and len(page.tables["fault-trace"]) == len(
        pd.read_parquet(fault_dir / "trace.parquet"))
    config = {r["key"][0]: r["value"][0] for r in page.tables["config-study"]}
    assert config["study"] == "assign" and config["number_format.weight_bits"] == "16"


def test_fault_figures_draw_the_study_tables(fault_dir):
    src = load_source(fault_dir)
    sens = pd.read_parquet(fault_dir / "sensitivity.parquet")
    layers = list(dict.fromkeys(sens["layer"]))
    fig = F.draw_fault_sensitivity(src)
    ax = fig.axes[0]
    expected = sens.pivot(index="layer", columns="level", values="drop").reindex(layers).to_numpy() * 100
    assert np.allclose(np.asarray(ax.images[0].get_array()), expected) and expected.max() > 0
    assert [t.get_text() for t in ax.get_yticklabels()] == layers
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.01", "0.1"]
    fig = F.draw_fault_energy(src)
    ax = fig.axes[0]
    assert ax.get_title() == "lenet: accuracy vs memory energy"
    series = {c.get_label(): c.lines[0].get_data() for c in ax.containers}
    uniform = pd.read_parquet(fault_dir / "uniform.parquet").sort_values("energy_pj")
    x, y = series["uniform"]
    assert list(x) == pytest.approx(list(uniform["energy_pj"] / 1e6)) and list(y) == pytest.approx(
        list(uniform["top1"] * 100))
    summary = json.loads((fault_dir / "summary.json").read_text())
    x, y = series["per-layer (greedy)"]
    assert list(x) == pytest.approx([summary["greedy_energy_pj"] / 1e6]) and list(y) == pytest.approx(
        [summary["greedy_top1"] * 100])


def test_fault_report_renders_in_headless_chromium(fault_report, browser, tmp_path):
    check = check_in_browser(fault_report, tmp_path / "faults.png", browser=browser)
    assert sorted(check.expected) == sorted(FAULT_FIGURES) and sorted(check.loaded) == sorted(FAULT_FIGURES)
    assert check.ok


def test_a_sensitivity_folder_gets_the_sensitivity_figure_and_says_why_not_the_energy_one(tmp_path):
    out = tmp_path / "sens"
    assert main(["faults", "sensitivity", "--limit", "12", "--bers", "0,1e-1", "--kinds", "weights",
                 "--layers", "conv2,fc1", "--out", str(out)]) == 0
    rep = write_report(out)
    assert "fault_sensitivity" not in rep.skipped and (out / "figures" / "fault_sensitivity.png").is_file()
    assert "no uniform.parquet" in rep.skipped["fault_energy"] and "accelsim faults assign" in rep.skipped[
        "fault_energy"]
    assert not (out / "figures" / "fault_energy.png").exists()
    table = pd.read_parquet(out / "sensitivity.parquet")
    page = _page(rep.html)
    shown = page.tables["fault-sensitivity"]
    assert [r["layer"][0] for r in shown] == list(table["layer"]) and "(all)" in table["layer"].values
    for row, (_, r) in zip(shown, table.iterrows()):
        _check_cell(row["top-1 lost"], r["drop"], 100)
    assert "fault-summary" not in page.tables and _values(page, "fault-study")["study"][0] == "sensitivity"
    # a folder written before study.json existed is still a fault study, named by the files it holds
    (out / "study.json").unlink()
    src = load_source(out)
    assert src.kind == "faults" and src.faults.study == "sensitivity" and src.faults.network == ""
    assert "fault_sensitivity" not in write_report(out).skipped


def test_an_evaluate_folder_shows_top1_with_its_interval(tmp_path):
    out = tmp_path / "ev"
    assert main(["faults", "evaluate", "--limit", "12", "--faults", "b13_dram_1v2", "--repeats", "2",
                 "--out", str(out)]) == 0
    rep = write_report(out)
    assert set(FAULT_FIGURES) <= set(rep.skipped) and not rep.figures
    assert "no sensitivity.parquet" in rep.skipped["fault_sensitivity"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    rows = _values(_page(rep.html), "fault-evaluation")
    _check_cell(rows["top-1 (mean over draws)"], evaluation["top1_mean"], 100)
    _check_cell(rows["95 % interval: low"], evaluation["top1_ci95"][0], 100)
    _check_cell(rows["95 % interval: high"], evaluation["top1_ci95"][1], 100)
    assert rows["interval"][0] == evaluation["method"] and rows["fault draws"][0] == "2"
    assert f"top-1 {100 * evaluation['top1_mean']:.2f}%" in rep.html.read_text(encoding="utf-8")


def test_a_damaged_fault_study_file_is_a_clear_error(tmp_path):
    (tmp_path / "evaluation.json").write_text("{not json")
    with pytest.raises(ConfigError, match="evaluation.json is not a readable JSON file"):
        load_source(tmp_path)
    (tmp_path / "evaluation.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_source(tmp_path)
