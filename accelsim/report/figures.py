"""The report's figures, drawn with matplotlib's Agg canvas from the tables a run, sweep, trade-off or fault study wrote
(nothing recomputed).

Every figure is a function of a `ReportSource` that returns a matplotlib `Figure` or raises `SkipFigure` saying what
data it lacks, so a report always lists the same figures and says why one is missing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from accelsim.report import tables as T
from accelsim.report.source import FaultStudy, ReportSource
from accelsim.results import RunFolder

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

LANES_KEY = "pe.lanes"
_DESIGN_COLORS = ("#2F6DB5", "#C8553D")  # design under test, baseline
_CYCLE_COLORS = {"busy": "#2F6DB5", "idle_lane": "#F2A541", "barrier": "#C8553D", "dram_stall": "#6C4E97",
                 "tail": "#8E7B61", "unused_pe": "#C9C9C9", "fill": "#7FB7BE", "gbuf_stall": "#D98CB3"}
_ENERGY_COLORS = ("#2F6DB5", "#7FB7BE", "#F2A541", "#3C9D5D", "#D98CB3", "#8E7B61", "#C8553D", "#6C4E97",
                  "#C9C9C9", "#4D4D4D")
_BASELINE_HATCH = "///"
_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "accelsim-report", "svg.fonttype": "path", "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "hatch.color": "#FFFFFF", "hatch.linewidth": 0.8}


class SkipFigure(Exception):
    """A figure's data is absent from the folder; the message says which and why."""


@dataclass(frozen=True)
class FigureDef:
    """One figure of the report: file stem, title, caption and the function drawing it."""

    name: str
    title: str
    caption: str
    draw: Callable[[ReportSource], Figure]


@dataclass(frozen=True)
class RenderedFigure:
    """A drawn figure as PNG and SVG bytes, or the reason it was skipped."""

    spec: FigureDef
    png: bytes | None = None
    svg: bytes | None = None
    skipped: str | None = None


# --- helpers --------------------------------------------------------------------------------------------------


def _need_run(src: ReportSource, what: str) -> RunFolder:
    if src.run is None:
        raise SkipFigure(f"{what} is drawn for one run (a run folder: layers.parquet, summary.json); {src.path} is "
                         f"a {src.kind_text} folder")
    return src.run


def _run_designs(run: RunFolder) -> tuple[pd.DataFrame, str, str | None, list[str]]:
    layers = run.layers
    design = run.summary.get("design") or str(layers["design"].iloc[0])
    baseline = run.summary.get("baseline")
    if baseline is not None and not (layers["design"] == baseline).any():
        baseline = None
    order = list(dict.fromkeys(layers.loc[layers["design"] == design, "layer"]))
    return layers, design, baseline, order


def _by_layer(layers: pd.DataFrame, design: str, order: Sequence[str], column: str) -> np.ndarray:
    rows = layers[layers["design"] == design].set_index("layer")
    if column not in rows.columns:
        return np.full(len(order), np.nan)
    return np.array([float(rows.at[l, column]) if l in rows.index else np.nan for l in order], dtype=float)


# Above this many layers the per-layer figures turn horizontal (layers down the page), which stays legible in a
# column of text where 60+ vertical bars would not.
MAX_VERTICAL_LAYERS = 28


def _horizontal(n_layers: int) -> bool:
    return n_layers > MAX_VERTICAL_LAYERS


def _size(n_groups: int, per_group: float, minimum: float, height: float,
          bars_per_group: int = 1) -> tuple[float, float]:
    """Figure size of a per-layer figure: wider with more layers, or taller when horizontal."""
    if _horizontal(n_groups):
        return 9.0, 1.6 + 0.13 * n_groups * max(1, bars_per_group)
    return min(max(minimum, 1.6 + per_group * n_groups), 24.0), height


def _bar(ax: Any, horizontal: bool, pos: Any, length: Any, thickness: float, base: Any = None, **kw: Any) -> Any:
    """ax.bar, or ax.barh with the same meaning of its arguments when the figure is horizontal."""
    if horizontal:
        return ax.barh(pos, length, thickness, left=base, **kw)
    return ax.bar(pos, length, thickness, bottom=base, **kw)


def _layer_axis(ax: Any, order: Sequence[str], horizontal: bool = False) -> None:
    if horizontal:
        ax.set_yticks(np.arange(len(order)))
        ax.set_yticklabels(order, fontsize=7)
        ax.set_ylim(len(order) - 0.4, -0.6)  # first layer on top
        return
    ax.set_xticks(np.arange(len(order)))
    rotate = len(order) > 8 or max((len(l) for l in order), default=0) > 8
    ax.set_xticklabels(order, rotation=60 if rotate else 0, ha="right" if rotate else "center",
                       rotation_mode="anchor")
    ax.set_xlim(-0.6, len(order) - 0.4)


def _value_axis(ax: Any, horizontal: bool, label: str, lim: tuple[float, float] | None = None) -> None:
    """Label (and limit) the axis that carries the values, and grid along it."""
    (ax.set_xlabel if horizontal else ax.set_ylabel)(label)
    if lim is not None:
        (ax.set_xlim if horizontal else ax.set_ylim)(*lim)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)


def _new_figure(size: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def _design_legend(design: str, baseline: str | None) -> list[Patch]:
    handles = [Patch(facecolor="#808080", label=f"{design} (solid)")]
    if baseline:
        handles.append(Patch(facecolor="#808080", hatch=_BASELINE_HATCH, edgecolor="white",
                             label=f"{baseline} (hatched)"))
    return handles


# --- run figures ----------------------------------------------------------------------------------------------


def draw_speedup_energy(src: ReportSource) -> Figure:
    """Per-layer speedup and energy reduction of the design over the baseline, and the network's from summary.json."""
    run = _need_run(src, "per-layer speedup and energy reduction")
    layers, design, baseline, order = _run_designs(run)
    if baseline is None or "speedup" not in layers.columns:
        raise SkipFigure("the run has no baseline (run without --baseline none for speedup and energy reduction)")
    speed = _by_layer(layers, design, order, "speedup")
    energy = _by_layer(layers, design, order, "energy_reduction")
    if np.isnan(speed).all():
        raise SkipFigure("layers.parquet has no per-layer speedup values")
    labels = [*order, "network"]
    speed = np.append(speed, run.summary.get("speedup") or np.nan)
    energy = np.append(energy, run.summary.get("energy_reduction") or np.nan)
    x = np.arange(len(labels))
    horizontal = _horizontal(len(labels))
    fig, ax = _new_figure(_size(len(labels), 0.55, 7.0, 3.6, 2))
    w = 0.38
    bars_s = _bar(ax, horizontal, x - w / 2, speed, w, color=_DESIGN_COLORS[0], label="speedup (cycles)")
    bars_e = _bar(ax, horizontal, x + w / 2, energy, w, color="#3C9D5D", label="energy reduction")
    for b in (bars_s[-1], bars_e[-1]):  # the network's bars, outlined
        b.set_edgecolor("black")
        b.set_linewidth(1.0)
    if not horizontal and len(labels) <= 24:
        for bars, values in ((bars_s, speed), (bars_e, energy)):
            for b, v in zip(bars, values):
                if np.isfinite(v):
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom", fontsize=7)
    (ax.axvline if horizontal else ax.axhline)(1.0, color="black", linewidth=0.8, linestyle="--")
    (ax.axhline if horizontal else ax.axvline)(len(order) - 0.5, color="#808080", linewidth=0.6)
    _layer_axis(ax, labels, horizontal)
    top = np.nanmax(np.concatenate([speed, energy]))
    _value_axis(ax, horizontal, f"{baseline} / {design}  (×)", (0, max(1.2, top * 1.15)))
    ax.set_title(f"{run.summary.get('network', '')}: speedup and energy reduction of {design} over {baseline}")
    if horizontal:  # the bars run under any corner of a tall figure: the legend goes above it
        fig.legend(handles=[bars_s, bars_e], loc="outside upper center", fontsize=8, frameon=False, ncols=2)
    else:
        ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=2)
    return fig


def draw_speedup_split(src: ReportSource) -> Figure:
    """Where each layer's speedup comes from: the architecture factor (baseline / design dense) and the
    early-termination factor (design dense / design), stacked on a log axis so that they add up to the speedup."""
    run = _need_run(src, "the split of the speedup")
    layers, design, baseline, order = _run_designs(run)
    if baseline is None or "speedup_architecture" not in layers.columns:
        raise SkipFigure("the run has no baseline, or its layers.parquet has no speedup_architecture column")
    arch = _by_layer(layers, design, order, "speedup_architecture")
    et = _by_layer(layers, design, order, "speedup_early_termination")
    share = _by_layer(layers, design, order, "saved_cycle_share")
    labels = [*order, "network"]
    arch = np.append(arch, run.summary.get("speedup_architecture") or np.nan)
    et = np.append(et, run.summary.get("speedup_early_termination") or np.nan)
    share = np.append(share, run.summary.get("saved_cycle_share") or np.nan)
    la, le = np.log2(arch), np.log2(et)
    x = np.arange(len(labels))
    horizontal = _horizontal(len(labels))
    fig, ax = _new_figure(_size(len(labels), 0.5, 7.0, 3.8))
    w = 0.7
    # stack in log space: the early-termination segment starts where the architecture one ends
    b_arch = _bar(ax, horizontal, x, la, w, color=_DESIGN_COLORS[0], label="architecture (baseline / design dense)")
    b_et = _bar(ax, horizontal, x, le, w, base=la, color="#F2A541",
                label="early termination (design dense / design)")
    total = la + le
    (ax.plot(total, x, "k|", markersize=10) if horizontal else ax.plot(x, total, "k_", markersize=12))
    if not horizontal and len(labels) <= 30:
        for i, (t, sh) in enumerate(zip(total, share)):
            if np.isfinite(t):
                text = f"{2 ** t:.2f}×" + (f"\nshare {sh:.2f}" if np.isfinite(sh) else "")
                ax.annotate(text, (i, max(t, la[i], 0)), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=6)
    (ax.axvline if horizontal else ax.axhline)(0.0, color="black", linewidth=0.8)
    (ax.axhline if horizontal else ax.axvline)(len(order) - 0.5, color="#808080", linewidth=0.6)
    _layer_axis(ax, labels, horizontal)
    finite = np.concatenate([la[np.isfinite(la)], total[np.isfinite(total)], [0.0]])
    lo, hi = float(finite.min()), float(finite.max())
    ticks = [t for t in range(math.floor(lo) - 1, math.ceil(hi) + 2) if lo - 1 <= t <= hi + 1]
    (ax.set_xticks if horizontal else ax.set_yticks)(ticks, [f"{2.0 ** t:g}×" for t in ticks])
    (ax.set_xlabel if horizontal else ax.set_ylabel)(f"speedup over {baseline} (log scale)")
    ax.set_title(f"{run.summary.get('network', '')}: speedup = architecture × early termination")
    ax.legend(handles=[b_arch, b_et], loc="upper left", fontsize=8, frameon=False, ncols=2)
    return fig


def _stacked_pairs(ax: Any, layers: pd.DataFrame, design: str, baseline: str | None, order: Sequence[str],
                   columns: Sequence[str], colors: Sequence[str], scale: float, horizontal: bool = False) -> None:
    """Per layer one stacked bar per design (the baseline's hatched), a segment per column."""
    designs = [design] + ([baseline] if baseline else [])
    w = 0.8 / len(designs)
    x = np.arange(len(order))
    for i, who in enumerate(designs):
        offset = (i - (len(designs) - 1) / 2) * w
        base = np.zeros(len(order))
        for col, color in zip(columns, colors):
            values = np.nan_to_num(_by_layer(layers, who, order, col)) * scale
            _bar(ax, horizontal, x + offset, values, w * 0.95, base, color=color, edgecolor="white" if i else color,
                 linewidth=0.0, hatch=_BASELINE_HATCH if i else None)
            base += values


def draw_energy_breakdown(src: ReportSource) -> Figure:
    """Energy per class (µJ per image): network totals from summary.json, then per layer, both designs."""
    run = _need_run(src, "the energy breakdown")
    layers, design, baseline, order = _run_designs(run)
    designs = [design] + ([baseline] if baseline else [])
    classes = [c for c in T.energy_classes(layers)
               if layers.loc[layers["design"].isin(designs), c].fillna(0).abs().sum() > 0]
    if not classes:
        raise SkipFigure("layers.parquet has no energy_<class>_pj columns with energy in them")
    colors = [_ENERGY_COLORS[i % len(_ENERGY_COLORS)] for i in range(len(classes))]
    horizontal = _horizontal(len(order))
    if horizontal:  # network totals above, layers below
        width, height = _size(len(order), 0.7, 9.0, 4.0, len(designs))
        fig, (tot, ax) = _new_figure((width, height + 1.2), nrows=2,
                                     gridspec_kw={"height_ratios": [1.2, height]})
    else:
        fig, (tot, ax) = _new_figure(_size(len(order), 0.7, 9.0, 4.0), ncols=2,
                                     gridspec_kw={"width_ratios": [1.1, max(2.0, 0.55 * len(order))]})
    totals = run.summary.get("designs", {})
    for i, who in enumerate(designs):
        base = 0.0
        for col, color in zip(classes, colors):
            v = float(totals.get(who, {}).get(col) or 0.0) * 1e-6
            _bar(tot, horizontal, i, v, 0.7, base, color=color, edgecolor="white" if i else color, linewidth=0.0,
                 hatch=_BASELINE_HATCH if i else None)
            base += v
    _layer_axis(tot, designs, horizontal)
    _value_axis(tot, horizontal, "energy per image (µJ)")
    tot.set_title("network (summary.json)")
    _stacked_pairs(ax, layers, design, baseline, order, classes, colors, 1e-6, horizontal)
    _layer_axis(ax, order, horizontal)
    _value_axis(ax, horizontal, "energy per image (µJ)" if horizontal else "")
    ax.set_title("per layer")
    handles = [Patch(facecolor=c, label=T.energy_label(k)) for k, c in zip(classes, colors)]
    handles += _design_legend(design, baseline)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(f"{run.summary.get('network', '')}: energy by component class")
    return fig


def draw_neg_fraction(src: ReportSource) -> Figure:
    """Fraction of negative outputs (pre-ReLU) per layer of the design under test."""
    run = _need_run(src, "the negative-output fraction")
    layers, design, _, order = _run_designs(run)
    neg = _by_layer(layers, design, order, "neg_fraction")
    keep = [i for i, v in enumerate(neg) if np.isfinite(v)]
    if not keep:
        raise SkipFigure("layers.parquet has no neg_fraction values (a shape-only run measures no outputs)")
    names = [order[i] for i in keep]
    modes = layers[layers["design"] == design].set_index("layer")["mode"]
    mode_colors = {"exact": _DESIGN_COLORS[0], "predictive": "#3C9D5D", "dense": "#C9C9C9"}
    colors = [mode_colors.get(str(modes.get(n)), "#808080") for n in names]
    horizontal = _horizontal(len(names))
    fig, ax = _new_figure(_size(len(names), 0.5, 6.0, 3.4))
    bars = _bar(ax, horizontal, np.arange(len(names)), 100 * neg[keep], 0.6, color=colors)
    for b, v in zip(bars, neg[keep]):
        if horizontal:
            ax.annotate(f"{100 * v:.0f}%", (100 * v, b.get_y() + b.get_height() / 2), xytext=(2, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=6)
        else:
            ax.annotate(f"{100 * v:.0f}%", (b.get_x() + b.get_width() / 2, 100 * v), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
    _layer_axis(ax, names, horizontal)
    _value_axis(ax, horizontal, "negative outputs (%)", (0, 105))
    ax.set_title(f"{run.summary.get('network', '')}: outputs that are negative before ReLU ({design})")
    present = dict.fromkeys(str(modes.get(n)) for n in names)
    ax.legend(handles=[Patch(facecolor=mode_colors.get(m, "#808080"), label=f"{m} mode") for m in present],
              fontsize=8, frameon=False, loc="lower right" if horizontal else "upper left", ncols=len(present))
    omitted = [l for l in order if l not in names]
    if omitted:
        fig.text(0.01, 0.005, f"no value for {', '.join(omitted)}", fontsize=7, color="#606060")
    return fig


def draw_cycle_breakdown(src: ReportSource) -> Figure:
    """Cycles per layer split into the timing models' classes (busy, idle lane, barrier, DRAM stall, ...)."""
    run = _need_run(src, "the cycle breakdown")
    layers, design, baseline, order = _run_designs(run)
    designs = [design] + ([baseline] if baseline else [])
    classes = [c for c in T.cycle_classes(layers)
               if layers.loc[layers["design"].isin(designs), c].fillna(0).abs().sum() > 0]
    if not classes:
        raise SkipFigure("layers.parquet has no cycles_<class> columns")
    colors = [_CYCLE_COLORS.get(c[len("cycles_"):], _ENERGY_COLORS[i % len(_ENERGY_COLORS)])
              for i, c in enumerate(classes)]
    horizontal = _horizontal(len(order))
    fig, ax = _new_figure(_size(len(order), 0.7, 7.5, 4.0, len(designs)))
    _stacked_pairs(ax, layers, design, baseline, order, classes, colors, 1.0, horizontal)
    _layer_axis(ax, order, horizontal)
    _value_axis(ax, horizontal, "cycles per image")
    ax.set_title(f"{run.summary.get('network', '')}: where the cycles go, per layer")
    handles = [Patch(facecolor=c, label=T.cycle_label(k)) for k, c in zip(classes, colors)]
    handles += _design_legend(design, baseline)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


# --- sweep figures --------------------------------------------------------------------------------------------


def _series(points: pd.DataFrame, x_key: str, keys: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """Lines of a sensitivity plot: one per combination of the other swept keys that vary independently of x.

    A key that takes one value per x (a zip sweep, such as array columns shrinking as lanes grow to hold MAC units
    fixed) rides along with x and makes no line of its own.
    """
    free = [k for k in keys if k != x_key and k in points.columns
            and points.groupby(x_key, dropna=False)[k].nunique(dropna=False).max() > 1]
    if not free:
        return [("", points)]
    out = []
    for values, group in points.groupby(free, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append((", ".join(f"{k}={v}" for k, v in zip(free, values)), group))
    return out


def draw_lane_sensitivity(src: ReportSource) -> Figure:
    """Speedup and cycles per image against lanes per PE, from a sweep over `pe.lanes`."""
    if src.sweep is None:
        raise SkipFigure(f"lane-count sensitivity needs a sweep folder (results.parquet from `accelsim sweep --set "
                         f"{LANES_KEY}=1,2,4,8,16`); {src.path} is a {src.kind_text} folder")
    if LANES_KEY not in src.sweep.columns:
        raise SkipFigure(f"the sweep does not vary {LANES_KEY} (swept keys: {', '.join(src.sweep_keys) or 'none'})")
    keys = src.sweep_keys if LANES_KEY in src.sweep_keys else (LANES_KEY, *src.sweep_keys)
    points = T.sweep_points(src.sweep, keys, src.sweep_totals)
    design, baseline = T.sweep_designs(src.sweep, src.sweep_totals)
    points = points[points[f"{design} cycles"].notna()] if design else points
    if points[LANES_KEY].nunique() < 2:
        raise SkipFigure(f"the sweep has fewer than two finished points with different {LANES_KEY}")
    riders = [k for k in keys if k != LANES_KEY and k in points.columns
              and points.groupby(LANES_KEY)[k].nunique().max() <= 1 and points[k].nunique() > 1]
    lines = _series(points, LANES_KEY, keys)
    has_speedup = "speedup" in points.columns and points["speedup"].notna().any()
    fig, axes = _new_figure((10.0 if has_speedup else 5.5, 3.8), ncols=2 if has_speedup else 1)
    axes = list(np.atleast_1d(axes))
    cyc_ax = axes[-1]
    markers = "osD^v<>"
    for i, (label, group) in enumerate(lines):
        group = group.sort_values(LANES_KEY)
        x = group[LANES_KEY].astype(float)
        suffix = f" ({label})" if label else ""
        if has_speedup:
            axes[0].plot(x, group["speedup"], marker=markers[i % len(markers)], label=label or design)
        cyc_ax.plot(x, group[f"{design} cycles"], marker=markers[i % len(markers)], color=f"C{i}",
                    label=f"{design}{suffix}")
        if baseline and f"{baseline} cycles" in group:
            cyc_ax.plot(x, group[f"{baseline} cycles"], linestyle="--", color=f"C{i}", alpha=0.7,
                        label=f"{baseline}{suffix}")
    lanes = sorted(points[LANES_KEY].astype(float).unique())
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(lanes)
        ax.set_xticklabels([f"{v:g}" for v in lanes])
        ax.set_xlabel("lanes per PE (pe.lanes)" + (f"; with {', '.join(riders)} as swept" if riders else ""))
        ax.grid(alpha=0.3)
    if has_speedup:
        axes[0].set_ylabel(f"speedup over {baseline} (×)")
        axes[0].axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        axes[0].set_title("network speedup")
        if any(label for label, _ in lines):
            axes[0].legend(fontsize=8, frameon=False)
    cyc_ax.set_ylabel("cycles per image")
    cyc_ax.set_title("network cycles")
    cyc_ax.legend(fontsize=8, frameon=False)
    network = ", ".join(map(str, dict.fromkeys(src.sweep["network"]))) if "network" in src.sweep else ""
    fig.suptitle(f"{network}: sensitivity to the lane count".strip(": "))
    return fig


def _accuracy_points(src: ReportSource) -> tuple[pd.DataFrame, str, str, str]:
    """(table, x column, y column, x label) for the accuracy-vs-speedup figure."""
    if src.tradeoff is not None and {"top1_eval"} <= set(src.tradeoff.columns):
        t = src.tradeoff
        x = "speedup" if "speedup" in t and t["speedup"].notna().all() else "speedup_vs_exact"
        if x in t.columns and t[x].notna().any():
            label = "speedup over the baseline (×)" if x == "speedup" else "speedup over exact mode (×)"
            return t, x, "top1_eval", label
    if src.sweep is not None and "top1" in (*src.sweep.columns, *(() if src.sweep_totals is None
                                                                    else src.sweep_totals.columns)):
        points = T.sweep_points(src.sweep, src.sweep_keys, src.sweep_totals)
        if "speedup" in points.columns and points[["speedup", "top1"]].notna().all(axis=1).any():
            return points, "speedup", "top1", "speedup over the baseline (×)"
    raise SkipFigure("accuracy vs speedup needs accuracy and speedup per point: a trade-off folder "
                     "(tradeoff.parquet from `accelsim tradeoff`) or a sweep whose points carry top1")


def _point_label(row: pd.Series, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys if k in row) or str(row.get("point", ""))


def draw_accuracy_speedup(src: ReportSource) -> Figure:
    """Top-1 accuracy against speedup, one marker per trade-off or sweep point (sweeps: only where top-1 varies)."""
    table, x, y, x_label = _accuracy_points(src)
    table = table[table[[x, y]].notna().all(axis=1)]
    sweep = not ("epsilon" in table.columns and "mode" in table.columns)
    if sweep and float(table[y].max() - table[y].min()) < 1e-12:
        raise SkipFigure(f"top-1 is {100 * float(table[y].iloc[0]):.2f}% at every point of the sweep: there is no "
                         "accuracy trade-off to draw (the speedups are in the lane-sensitivity figure and the "
                         "tables)")
    fig, ax = _new_figure((6.4, 4.0))
    if not sweep:  # a trade-off: predictive points and exact mode, labelled by epsilon (a handful of points)
        pred, exact = table[table["mode"] != "exact"], table[table["mode"] == "exact"]
        ax.plot(pred[x], 100 * pred[y], "o-", color=_DESIGN_COLORS[0], label="predictive")
        ax.plot(exact[x], 100 * exact[y], "s", color="black", label="exact")
        for _, r in pred.iterrows():
            if isinstance(r["epsilon"], float) and math.isfinite(r["epsilon"]):
                ax.annotate(f"ε={100 * r['epsilon']:g}pt", (r[x], 100 * r[y]), xytext=(4, 4),
                            textcoords="offset points", fontsize=7)
    else:  # a sweep: one colour and marker per point in a legend beside the axes (labels never overlap)
        markers = "osD^v<>ph*"
        for i, (_, r) in enumerate(table.iterrows()):
            ax.plot(r[x], 100 * r[y], markers[(i // 10) % len(markers)], color=f"C{i % 10}",
                    label=_point_label(r, src.sweep_keys))
    lo, hi = 100 * float(table[y].min()), 100 * float(table[y].max())
    pad = max(1.0, 0.1 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.0 + pad / 2, hi + pad))  # accuracy never shows above 100%
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 (%)" + (" on evaluation images" if y == "top1_eval" else ""))
    ax.set_title("accuracy vs speedup")
    ax.grid(alpha=0.3)
    if sweep:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1 + len(table) // 16)
    else:
        ax.legend(fontsize=8, frameon=False)
    return fig


def draw_sweep_layers(src: ReportSource) -> Figure:
    """Per-layer speedup and energy reduction of the design over the baseline at every sweep point (heat maps)."""
    if src.sweep is None:
        raise SkipFigure(f"per-layer values across points need a sweep folder; {src.path} is a {src.kind_text} folder")
    design, baseline = T.sweep_designs(src.sweep, src.sweep_totals)
    table = src.sweep
    if baseline is None or "speedup" not in table.columns:
        raise SkipFigure("the sweep has no baseline: per-layer speedup and energy reduction are not defined")
    mine = table[(table["design"] == design) & table["speedup"].notna()]
    if mine.empty:
        raise SkipFigure("no finished point with a baseline")
    points = list(dict.fromkeys(mine["point"]))
    layers = list(dict.fromkeys(mine["layer"]))
    first = mine.drop_duplicates("point").set_index("point")
    labels = [_point_label(first.loc[p], src.sweep_keys) for p in points]
    panels = [("speedup", "speedup over the baseline (×)")]
    if "energy_reduction" in mine.columns:
        panels.append(("energy_reduction", "energy reduction over the baseline (×)"))
    label_in = 0.055 * max(len(t) for t in labels)  # room for the longest point label, in inches at 7 pt
    width = min(18.0, max(6.0, 2.0 + label_in + 0.32 * len(layers)))
    height = 1.4 + 0.26 * len(points)
    fig, axes = _new_figure((width, height * len(panels) + 0.4), nrows=len(panels))
    axes = list(np.atleast_1d(axes))
    from matplotlib.colors import TwoSlopeNorm

    for ax, (col, title) in zip(axes, panels):
        grid = mine.pivot_table(index="point", columns="layer", values=col, sort=False).reindex(
            index=points, columns=layers).to_numpy(float)
        logs = np.log2(grid)
        span = max(float(np.nanmax(np.abs(logs))) if np.isfinite(logs).any() else 1.0, 0.05)
        image = ax.imshow(logs, aspect="auto", cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span),
                          interpolation="nearest")
        ax.set_yticks(range(len(points)), labels, fontsize=7)
        ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
        ax.set_title(title)
        if len(points) * len(layers) <= 160:
            for i in range(len(points)):
                for j in range(len(layers)):
                    if np.isfinite(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if abs(logs[i, j]) > 0.6 * span else "black")
        bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
        ratios = [r for r in (0.125, 0.25, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0, 8.0)
                  if abs(math.log2(r)) <= span]
        coarse = [r for r in ratios if r in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)]
        ticks = coarse if len(coarse) >= 3 else ratios
        bar.set_ticks([math.log2(r) for r in ticks], labels=[f"{r:g}×" for r in ticks])
    network = ", ".join(map(str, dict.fromkeys(table["network"]))) if "network" in table else ""
    fig.suptitle(f"{network}: {design} over {baseline}, per layer and point".strip(": "))
    return fig


FORMAT_KEYS = ("run.number_format", "run.weight_bits", "run.activation_bits")


def draw_format_tradeoff(src: ReportSource) -> Figure:
    """Top-1 against the design's energy per image (left) and its speedup (right), one curve per number format,
    from a sweep over `run.number_format` and / or the widths (`run.weight_bits`, `run.activation_bits`)."""
    if src.sweep is None:
        raise SkipFigure(f"accuracy vs energy per format needs a sweep folder (`accelsim sweep --set "
                         f"run.number_format=... --set run.weight_bits=...`); {src.path} is a {src.kind_text} folder")
    swept = [k for k in FORMAT_KEYS if k in src.sweep_keys]
    if not swept:
        raise SkipFigure(f"the sweep varies no number format or width ({', '.join(FORMAT_KEYS)}); swept keys: "
                         f"{', '.join(src.sweep_keys) or 'none'}")
    points = T.sweep_points(src.sweep, src.sweep_keys, src.sweep_totals)
    design, _ = T.sweep_designs(src.sweep, src.sweep_totals)
    energy = f"{design} energy_pj"
    if "top1" not in points.columns or energy not in points.columns:
        raise SkipFigure("the sweep's points carry no top-1 or no energy (shape-only sweeps have no accuracy)")
    points = points[points[["top1", energy]].notna().all(axis=1)]
    if len(points) < 2:
        raise SkipFigure("the sweep has fewer than two finished points with accuracy and energy")
    has_speedup = "speedup" in points.columns and points["speedup"].notna().any()
    fig, axes = _new_figure((10.0 if has_speedup else 5.5, 4.0), ncols=2 if has_speedup else 1)
    axes = list(np.atleast_1d(axes))
    by_format = "run.number_format" in points.columns and points["run.number_format"].nunique() > 1
    groups = points.groupby("run.number_format", sort=True) if by_format else [("", points)]
    others = [k for k in src.sweep_keys if k != "run.number_format"]
    markers = "osD^v<>"
    for i, (name, group) in enumerate(groups):
        group = group.sort_values(energy)
        style = dict(marker=markers[i % len(markers)], color=_ENERGY_COLORS[i % len(_ENERGY_COLORS)],
                     label=str(name) or "sweep points")
        axes[0].plot(group[energy] / 1e6, 100 * group["top1"], **style)
        if has_speedup:
            axes[1].plot(group["speedup"], 100 * group["top1"], linestyle="none", **style)
        for _, r in group.iterrows():
            text = ", ".join(f"{k.removeprefix('run.')}={r[k]}" for k in others if k in r)
            if text:
                axes[0].annotate(text, (r[energy] / 1e6, 100 * r["top1"]), xytext=(3, 3),
                                 textcoords="offset points", fontsize=6)
    axes[0].set_xlabel(f"{design} energy per image (µJ)")
    axes[0].set_title("accuracy vs energy")
    if has_speedup:
        axes[1].set_xlabel("speedup over the baseline (×)")
        axes[1].set_title("accuracy vs speedup")
    for ax in axes:
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, frameon=False, title="number format" if by_format else None)
    return fig


# --- fault-study figures ------------------------------------------------------------------------------------------

SENSITIVITY_COLUMNS = ("layer", "kind", "level", "level_kind", "drop")
UNIFORM_COLUMNS = ("level", "top1", "top1_low", "top1_high", "energy_pj")
GREEDY_KEYS = ("greedy_top1", "greedy_top1_ci95", "greedy_energy_pj", "target_top1")


def _need_study(src: ReportSource, what: str, files: str) -> FaultStudy:
    if src.faults is None:
        raise SkipFigure(f"{what} is drawn for a fault study (a folder of `accelsim faults {files} --out`); "
                         f"{src.path} is a {src.kind_text} folder")
    return src.faults


def _missing(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c not in table.columns]


def _study_title(study: FaultStudy, what: str) -> str:
    return f"{study.network}: {what}" if study.network else ""


def draw_fault_sensitivity(src: ReportSource) -> Figure:
    """Top-1 lost per layer and level with that layer alone faulty (`faults_study.draw_sensitivity`)."""
    from accelsim.faults_study import draw_sensitivity

    study = _need_study(src, "per-layer fault sensitivity", "sensitivity|assign")
    table = study.sensitivity
    if table is None:
        raise SkipFigure(f"this fault study ({study.study}) has no sensitivity.parquet: `accelsim faults "
                         f"sensitivity` or `assign` writes it")
    missing = _missing(table, SENSITIVITY_COLUMNS)
    if missing:
        raise SkipFigure(f"sensitivity.parquet lacks the column(s) {', '.join(missing)}")
    if not (table["layer"] != "(all)").any():
        raise SkipFigure("sensitivity.parquet has no single-layer rows (only the uniform '(all)' rows)")
    return draw_sensitivity(table, title=study.network)


def draw_fault_energy(src: ReportSource) -> Figure:
    """Top-1 against memory energy: uniform levels, greedy steps and the greedy per-layer assignment
    (`faults_study.draw_accuracy_vs_energy`)."""
    from accelsim.faults_study import draw_accuracy_vs_energy

    study = _need_study(src, "accuracy vs memory energy", "assign")
    if study.uniform is None:
        raise SkipFigure(f"this fault study ({study.study}) has no uniform.parquet: the per-layer assignment and "
                         f"the uniform levels it is measured against come from `accelsim faults assign`"
                         + ("; the uniform ('(all)') rows of sensitivity.parquet are in the tables"
                            if study.sensitivity is not None else ""))
    missing = _missing(study.uniform, UNIFORM_COLUMNS)
    if missing:
        raise SkipFigure(f"uniform.parquet lacks the column(s) {', '.join(missing)}")
    greedy = study.summary
    if greedy is not None and any(k not in greedy for k in GREEDY_KEYS):
        greedy = None  # the uniform curve alone; the tables show what summary.json holds
    trace = study.trace if study.trace is not None and {"accepted", "energy_pj", "top1"} <= set(
        study.trace.columns) else None
    return draw_accuracy_vs_energy(study.uniform, greedy=greedy, trace=trace,
                                   title=_study_title(study, "accuracy vs memory energy"))


FIGURES: tuple[FigureDef, ...] = (
    FigureDef("speedup_energy", "Speedup and energy reduction per layer",
               "Baseline cycles (energy) over the design's, per layer, from layers.parquet; the outlined bars on the "
               "right are the network's, from summary.json. Above the dashed line the design wins.",
               draw_speedup_energy),
    FigureDef("speedup_split", "Where the speedup comes from",
               "Per layer and for the network, the speedup over the baseline as the product of an architecture "
               "factor (baseline cycles over the design's cycles with every window at full length, same mapper) "
               "and an early-termination factor (the design's dense cycles over its cycles), drawn on a log axis "
               "so the two segments add up; 'share' is the cycles early termination saved over the MAC-cycles it "
               "saved (1: every saved MAC became a saved cycle).", draw_speedup_split),
    FigureDef("energy_breakdown", "Energy by component class",
               "Energy per image in µJ, stacked by energy class (classes with no energy in either design are left "
               "out); left: network totals from summary.json, right: per layer, design solid, baseline hatched.",
               draw_energy_breakdown),
    FigureDef("neg_fraction", "Negative-output fraction per layer",
               "Share of each layer's outputs that are negative before the ReLU (what early termination can skip), "
               "coloured by the layer's mode.", draw_neg_fraction),
    FigureDef("cycle_breakdown", "Cycle breakdown per layer",
               "Cycles per image split into the timing models' classes (busy, idle lane, barrier, DRAM stall, and "
               "the others a model reports); a class a design does not model is absent from its bar. Design solid, "
               "baseline hatched; each bar totals the layer's cycles.", draw_cycle_breakdown),
    FigureDef("lane_sensitivity", "Lane-count sensitivity",
               "Network speedup and cycles per image against lanes per PE, one point per sweep point (log2 axis).",
               draw_lane_sensitivity),
    FigureDef("accuracy_speedup", "Accuracy vs speedup",
               "Top-1 accuracy against speedup, one marker per point of the trade-off or sweep (a sweep whose "
               "accuracy does not vary has no such figure).", draw_accuracy_speedup),
    FigureDef("sweep_layers", "Per-layer speedup and energy reduction across the points",
               "Baseline over design per layer (columns) and sweep point (rows), on a log colour scale centred on "
               "1× (blue: the design wins); values printed where the grid is small enough to read.",
               draw_sweep_layers),
    FigureDef("format_tradeoff", "Accuracy vs energy and speedup per number format",
               "Top-1 against the design's energy per image (left) and its speedup over the baseline (right), one "
               "curve per number format of a sweep over run.number_format and the widths; markers name the other "
               "swept settings. Energy is as the timing models log it (see docs/formats.md on storage widths).",
               draw_format_tradeoff),
    FigureDef("fault_sensitivity", "Per-layer fault sensitivity",
               "Top-1 lost (points) with one layer's stored words faulty at each level (voltage or bit-error rate) "
               "and every other layer reliable, one panel per data kind, from sensitivity.parquet of `accelsim "
               "faults sensitivity|assign` (B.11's layer-randomisation figure). Each cell is one evaluation on the "
               "study's images; with few images a drop of one image is 100 / images points.",
               draw_fault_sensitivity),
    FigureDef("fault_energy", "Accuracy vs memory energy",
               "Top-1 against the studied memory's energy per image: the uniform assignments (every layer at one "
               "level, labelled with it, 95 % intervals), the assignments the greedy search kept on its way (grey), "
               "the greedy per-layer assignment (star, 95 % interval) and the accuracy budget (dashed), from "
               "uniform.parquet, trace.parquet and summary.json of `accelsim faults assign`. Energy counts each "
               "weight and input word read once per image from that memory (docs/faults.md).",
               draw_fault_energy),
)


def render(src: ReportSource, specs: Sequence[FigureDef] = FIGURES, dpi: int = 150) -> list[RenderedFigure]:
    """Draw every figure that the folder's tables allow, as PNG and SVG bytes (deterministic SVG ids and no dates)."""
    out = []
    with rc_context(_RC):
        for spec in specs:
            try:
                fig = spec.draw(src)
            except SkipFigure as exc:
                out.append(RenderedFigure(spec, skipped=str(exc)))
                continue
            png, svg = io.BytesIO(), io.BytesIO()
            fig.savefig(png, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
            fig.savefig(svg, format="svg", facecolor="white", metadata={"Date": None})
            out.append(RenderedFigure(spec, png=png.getvalue(), svg=svg.getvalue()))
    return out
