"""The report's tables, taken from a run's, sweep's or fault study's own tables and summary (values are shown, not
recomputed).

Each table keeps the raw values (per image, in the units of the run folder) and says per column how to show them, so
the HTML can carry the exact value beside the rounded text and a reader can check one against the other.
The one aggregation here serves a sweep folder without its totals table (only results.parquet, which is per layer):
a point's network total is then the sum of its layer rows and its speedup the ratio of the totals, as `summary.json`
defines them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from accelsim.results import RunFolder

# How a column is shown: (multiplier applied to the stored value, format of the result).
FORMATS: dict[str, tuple[float, str]] = {
    "text": (1.0, "{}"),
    "int": (1.0, "{:,.0f}"),
    "cycles": (1.0, "{:,.1f}"),
    "uj": (1e-6, "{:,.3f}"),  # stored in pJ, shown in µJ
    "us": (1e6, "{:,.3f}"),  # stored in s, shown in µs
    "ratio": (1.0, "{:.3f}×"),
    "pct": (100.0, "{:.1f}%"),
    "pct2": (100.0, "{:.2f}%"),
    "num": (1.0, "{:.6g}"),
    "raw": (1.0, "{:.10g}"),  # the layers.parquet dump: close to the stored value
}


@dataclass(frozen=True)
class Table:
    """One table of the report: raw values in `frame`, a format kind per column, the source column per column."""

    id: str
    title: str
    frame: pd.DataFrame
    formats: Mapping[str, str] = field(default_factory=dict)  # column -> key of FORMATS (default "text"/"num")
    sources: Mapping[str, str] = field(default_factory=dict)  # column -> "design:parquet column" it comes from
    note: str = ""
    # Tables with one quantity per row: the format of each row's value cells (every column but the first) and where
    # they come from ("{column}" stands for the column's name).
    row_kinds: tuple[str, ...] = ()
    row_sources: tuple[str, ...] = ()

    def _by_row(self, column: str) -> bool:
        return bool(self.row_kinds) and column != self.frame.columns[0]

    def kind(self, row: int, column: str) -> str:
        return self.row_kinds[row] if self._by_row(column) else self.formats.get(column, "text")

    def source(self, row: int, column: str) -> str | None:
        if self.row_sources and self._by_row(column):
            return self.row_sources[row].format(column=column)
        return self.sources.get(column)


def format_value(value: Any, kind: str) -> str:
    """The text a cell shows; missing values (None, NaN) show as an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "text" or isinstance(value, (str, bool)):
        return str(value)
    scale, spec = FORMATS.get(kind, FORMATS["num"])
    try:
        return spec.format(float(value) * scale)
    except (TypeError, ValueError):
        return str(value)


def _designs(run: RunFolder) -> tuple[str, str | None]:
    design = run.summary.get("design") or str(run.layers["design"].iloc[0])
    return design, run.summary.get("baseline")


def _ordered_layers(layers: pd.DataFrame, design: str) -> list[str]:
    mine = layers[layers["design"] == design]
    return list(dict.fromkeys(mine["layer"] if len(mine) else layers["layer"]))


def layer_table(run: RunFolder) -> Table:
    """Per-layer figures of merit of both designs side by side (per image), from layers.parquet."""
    layers = run.layers
    design, baseline = _designs(run)
    order = _ordered_layers(layers, design)
    mine = layers[layers["design"] == design].set_index("layer")
    base = layers[layers["design"] == baseline].set_index("layer") if baseline else None

    def col(frame: pd.DataFrame | None, name: str) -> list[Any]:
        if frame is None or name not in frame.columns:
            return [math.nan] * len(order)
        return [frame.at[l, name] if l in frame.index else math.nan for l in order]

    spec: list[tuple[str, pd.DataFrame | None, str | None, str, str]] = [  # header, frame, design, column, format
        ("layer", None, None, "layer", "text"),
        ("type", mine, design, "type", "text"),
        ("mode", mine, design, "mode", "text"),
        (f"{design} cycles", mine, design, "cycles", "cycles"),
    ]
    if baseline:
        spec += [(f"{baseline} cycles", base, baseline, "cycles", "cycles"),
                 ("speedup", mine, design, "speedup", "ratio")]
    spec += [(f"{design} energy µJ", mine, design, "energy_pj", "uj")]
    if baseline:
        spec += [(f"{baseline} energy µJ", base, baseline, "energy_pj", "uj"),
                 ("energy reduction", mine, design, "energy_reduction", "ratio")]
    spec += [("MACs performed", mine, design, "macs_performed", "cycles"),
             ("MACs dense", mine, design, "macs_dense", "int"),
             (f"{design} lane utilization", mine, design, "utilization", "pct"),
             ("negative outputs", mine, design, "neg_fraction", "pct"),
             ("TN rate", mine, design, "tn_rate", "pct"),
             ("FN rate", mine, design, "fn_rate", "pct2")]
    data, formats, sources = {}, {}, {}
    for header, frame, who, column, kind in spec:
        if column != "layer" and column not in layers.columns:
            continue
        data[header] = order if column == "layer" else col(frame, column)
        formats[header] = kind
        if who is not None:
            sources[header] = f"{who}:{column}"
    frame = pd.DataFrame(data)
    for header in [h for h in ("TN rate", "FN rate") if h in frame]:  # drop columns with nothing in them
        if frame[header].isna().all():
            frame = frame.drop(columns=header)
    return Table("layers", "Per-layer results (per image)", frame, formats, sources,
                 note=f"From layers.parquet. Speedup and energy reduction are {baseline} over {design}, as the run "
                      f"computed them; TN/FN rates are defined for predictive layers only." if baseline else
                 "From layers.parquet.")


def totals_table(run: RunFolder) -> Table:
    """Network totals per design (per image), one quantity per row, from summary.json."""
    designs: Mapping[str, Mapping[str, Any]] = run.summary.get("designs", {})
    classes = sorted({k for d in designs.values() for k in d if _is_energy_class(k)},
                     key=lambda k: (_CLASS_ORDER.get(_energy_class(k), 99), k))
    quantities = [("cycles", "cycles", "cycles"), ("time µs", "seconds", "us"), ("energy µJ", "energy_pj", "uj"),
                  ("MACs performed", "macs_performed", "cycles"), ("MACs dense", "macs_dense", "int"),
                  *((f"energy: {energy_label(c)} µJ", c, "uj") for c in classes)]
    data: dict[str, list[Any]] = {"quantity": [q[0] for q in quantities]}
    for name, d in designs.items():
        data[name] = [d.get(key) for _, key, _ in quantities]
    return Table("totals", "Network totals (per image)", pd.DataFrame(data), {"quantity": "text"},
                 note="From summary.json; time at each design's clock.", row_kinds=tuple(q[2] for q in quantities),
                 row_sources=tuple(f"summary:designs.{{column}}.{q[1]}" for q in quantities))


def ratios_table(run: RunFolder) -> Table | None:
    """Speedup, energy and MAC reduction of the network, from summary.json; None without a baseline."""
    s = run.summary
    entries = [("speedup (cycles)", "speedup", "ratio"), ("speedup (time)", "time_speedup", "ratio"),
               ("energy reduction", "energy_reduction", "ratio"), ("MAC reduction vs dense", "mac_reduction", "ratio"),
               ("conv layers with early termination", "eligible_conv_layers", "int"),
               ("conv layers", "conv_layers", "int"), ("exact-mode violations", "exact_violations", "int")]
    rows = [(label, s[key], kind, key) for label, key, kind in entries if s.get(key) is not None]
    if not rows:
        return None
    return _key_value("network", f"Network: {s.get('design')} over {s.get('baseline')}", rows,
                      note="From summary.json.")


def accuracy_table(run: RunFolder) -> Table | None:
    """Top-1/top-5 and agreement with dense execution, from summary.json; None for shape-only runs."""
    s = run.summary
    acc = s.get("accuracy") or {}
    labels = {"top1": "top-1", "top5": "top-5", "agreement": "agreement with dense",
              "top1_float": "top-1 (float32 reference)", "top5_float": "top-5 (float32 reference)",
              "agreement_float": "agreement with float32 reference"}
    rows: list[tuple[str, Any, str, str]] = [
        (labels.get(k, k), v, "pct2", f"accuracy.{k}") for k, v in acc.items() if isinstance(v, (int, float))]
    if not rows:
        return None
    rows = [("images", s.get("images"), "int", "images"), ("data set", s.get("dataset"), "text", "dataset"),
            ("mode", s.get("mode"), "text", "mode")] + rows
    return _key_value("accuracy", "Accuracy", rows, note="From summary.json, on the run's images.")


def _key_value(table_id: str, title: str, rows: Sequence[tuple[str, Any, str, str]], note: str = "",
               prefix: str = "summary:") -> Table:
    """One quantity per row; each row's source is `prefix` + its key."""
    frame = pd.DataFrame({"quantity": [r[0] for r in rows], "value": pd.Series([r[1] for r in rows], dtype=object)})
    return Table(table_id, title, frame, {"quantity": "text"}, note=note, row_kinds=tuple(r[2] for r in rows),
                 row_sources=tuple(f"{prefix}{r[3]}" for r in rows))


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (`pe.lanes`), lists kept as their text."""
    out: dict[str, Any] = {}
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = doc if not isinstance(doc, (list, tuple)) else ", ".join(map(str, doc)) or "[]"
    return out


def config_tables(config: Mapping[str, Any]) -> list[Table]:
    """The resolved configuration of config.yaml: run settings and each design's architecture, as key/value tables."""
    tables = []
    for section, title in (("run", "Run settings"), ("arch", "Design under test"), ("baseline", "Baseline"),
                           ("dataset", "Data set")):
        doc = config.get(section)
        if not isinstance(doc, Mapping):
            continue
        flat = flatten(doc)
        name = doc.get("name") if section in ("arch", "baseline") else None
        frame = pd.DataFrame({"key": list(flat), "value": [("" if v is None else str(v)) for v in flat.values()]})
        tables.append(Table(f"config-{section}", f"{title}{f': {name}' if name else ''}", frame,
                            {"key": "text", "value": "text"}, note=f"config.yaml, section '{section}'."))
    return tables


_CLASS_ORDER = {"busy": 0, "idle_lane": 1, "barrier": 2, "dram_stall": 3,
                "pe": 0, "pe_eyeriss": 1, "pau": 2, "rf": 3, "io_ram": 4, "noc": 5, "gbuf": 6, "dram": 7, "idle": 8}
_ENERGY_LABELS = {"rf": "RF", "pe": "PE MAC + PAU", "pe_eyeriss": "PE MAC (Eyeriss)", "pau": "PAU", "noc": "NoC",
                  "gbuf": "global buffer", "dram": "DRAM", "io_ram": "I/O RAM", "idle": "idle"}
_CYCLE_LABELS = {"busy": "busy", "idle_lane": "idle lane", "barrier": "barrier", "dram_stall": "DRAM stall",
                 "tail": "tail", "unused_pe": "unused PE", "fill": "fill", "gbuf_stall": "global-buffer stall"}


def _is_energy_class(column: str) -> bool:
    """`energy_<class>_pj`: one energy class's column (energy_pj is the total; energy_reduction_* are ratios)."""
    return column.startswith("energy_") and column.endswith("_pj") and column != "energy_pj"


def _energy_class(column: str) -> str:
    return column[len("energy_"):-len("_pj")] if column.endswith("_pj") else column[len("energy_"):]


def energy_label(column: str) -> str:
    """'energy_io_ram_pj' -> 'I/O buffer'."""
    cls = _energy_class(column)
    return _ENERGY_LABELS.get(cls, cls.replace("_", " "))


def energy_classes(layers: pd.DataFrame) -> list[str]:
    """The energy_<class>_pj columns of a layer table, in a fixed order (compute, storage, movement)."""
    cols = [c for c in layers.columns if _is_energy_class(c)]
    return sorted(cols, key=lambda c: (_CLASS_ORDER.get(_energy_class(c), 99), c))


def cycle_label(column: str) -> str:
    """'cycles_idle_lane' -> 'idle lane'."""
    cls = column[len("cycles_"):]
    return _CYCLE_LABELS.get(cls, cls.replace("_", " "))


def cycle_classes(layers: pd.DataFrame) -> list[str]:
    """The cycles_<class> columns: busy, idle lane, barrier, DRAM stall first, then the rest in table order."""
    cols = [c for c in layers.columns if c.startswith("cycles_")]
    return sorted(cols, key=lambda c: (_CLASS_ORDER.get(c[len("cycles_"):], 10), cols.index(c)))


def raw_layers_table(run: RunFolder) -> Table:
    """Every column of layers.parquet, row for row (for readers who want the exact numbers)."""
    frame = run.layers.copy()
    formats = {c: ("text" if frame[c].dtype == object or frame[c].dtype == bool else "raw") for c in frame.columns}
    return Table("layers-raw", "layers.parquet, every column", frame, formats,
                 {c: f"row:{c}" for c in frame.columns}, note="Per image; NaN shows as an empty cell.")


# --- sweeps ---------------------------------------------------------------------------------------------------


def sweep_designs(results: pd.DataFrame, totals: pd.DataFrame | None = None) -> tuple[str | None, str | None]:
    """The design under test and the baseline of a sweep: from totals' `role`, else the rows carrying speedup."""
    if totals is not None and {"design", "role"} <= set(totals.columns):
        roles = totals.dropna(subset=["design"]).drop_duplicates("role").set_index("role")["design"]
        if "design" in roles:
            return roles["design"], roles.get("baseline")
    if "design" not in results.columns:
        return None, None
    names = list(dict.fromkeys(results["design"].dropna()))
    design = None
    if "speedup" in results.columns:
        with_speedup = results.loc[results["speedup"].notna(), "design"]
        design = with_speedup.iloc[0] if len(with_speedup) else None
    design = design or (names[0] if names else None)
    others = [n for n in names if n != design]
    return design, (others[0] if others else None)


_POINT_CARRIED = ("network", "status", "error", "images", "mode", "top1", "top5", "agreement")
_POINT_RATIOS = ("speedup", "time_speedup", "energy_reduction", "mac_reduction")
_POINT_TOTALS = ("cycles", "energy_pj", "macs_performed")


def sweep_points(results: pd.DataFrame, keys: Sequence[str], totals: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sweep point: swept keys, status, each design's network cycles and energy, speedup, accuracy.

    With the sweep's `totals.parquet` (one row per point and design, from each point's summary) every value is
    read from it. With `results.parquet` alone the network totals are the sums of the point's layer rows (per image,
    as `summary.json` holds them) and speedup / energy reduction the baseline's total over the design's, as
    `accelsim run` defines them.
    """
    design, baseline = sweep_designs(results, totals)
    source = totals if totals is not None and "point" in totals.columns else results
    by = ["point"] if "point" in source.columns else [k for k in keys if k in source.columns]
    if not by:
        by = ["_all"]
        source = source.assign(_all=0)
    group = source.groupby(by, sort=False, dropna=False)
    carried = [c for c in (*keys, *_POINT_CARRIED) if c in source.columns and c not in by]
    points = group[carried].first() if carried else pd.DataFrame(index=group.size().index)
    if source is totals:
        if "design" in totals.columns and design is not None:
            mine = totals[totals["design"] == design].set_index(by)
            for col in (*_POINT_RATIOS, "top1", "top5", "agreement"):
                if col in mine.columns:
                    points[col] = mine[col].reindex(points.index)
        for name in (design, baseline):
            if name is None:
                continue
            rows = totals[totals["design"] == name].set_index(by)
            for col in _POINT_TOTALS:
                if col in rows.columns:
                    points[f"{name} {col}"] = rows[col].reindex(points.index)
    else:
        for name in (design, baseline):
            if name is None:
                continue
            rows = source[source["design"] == name].groupby(by, sort=False, dropna=False)
            for col in _POINT_TOTALS:
                if col in source.columns:
                    points[f"{name} {col}"] = rows[col].sum(min_count=1)
        if design is not None and baseline is not None:
            points["speedup"] = points[f"{baseline} cycles"] / points[f"{design} cycles"]
            if f"{design} energy_pj" in points:
                points["energy_reduction"] = points[f"{baseline} energy_pj"] / points[f"{design} energy_pj"]
    points = points.reset_index()
    points = points.drop(columns=["_all"]) if "_all" in points.columns else points
    if "status" in points.columns and "error" in points.columns and points["error"].isna().all():
        points = points.drop(columns=["error"])
    return points


def sweep_table(results: pd.DataFrame, keys: Sequence[str], totals: pd.DataFrame | None = None) -> Table:
    """The sweep's points as a table (swept keys, totals per design, speedup, accuracy)."""
    points = sweep_points(results, keys, totals)
    formats: dict[str, str] = {}
    for c in points.columns:
        if c.endswith(" cycles") or c.endswith(" macs_performed"):
            formats[c] = "cycles"
        elif c.endswith(" energy_pj"):
            formats[c] = "uj"
        elif c in _POINT_RATIOS:
            formats[c] = "ratio"
        elif c in ("top1", "top5", "agreement"):
            formats[c] = "pct2"
        else:
            formats[c] = "text" if points[c].dtype == object else "num"
    headers = {"speedup": "speedup", "time_speedup": "time speedup", "energy_reduction": "energy reduction",
               "mac_reduction": "MAC reduction", "top1": "top-1", "top5": "top-5", "agreement": "agreement with dense"}
    rename = {c: headers.get(c, c.replace(" energy_pj", " energy µJ").replace(" macs_performed", " MACs performed"))
              for c in points.columns}
    frame = points.rename(columns=rename)
    where = ("From totals.parquet (each point's network totals as its run summary holds them)."
             if totals is not None else "From results.parquet: totals are the sums of each point's layer rows; "
             "speedup and energy reduction are the baseline's total over the design's.")
    return Table("sweep-points", "Sweep points (network totals per image)", frame,
                 {rename[c]: k for c, k in formats.items()}, note=where)


def tradeoff_table(tradeoff: pd.DataFrame) -> Table:
    """The trade-off points of `accelsim tradeoff`: accuracy against speedup per epsilon."""
    wanted = {"point": "text", "epsilon": "pct", "top1_eval": "pct2", "loss_eval": "pct2", "top1_opt": "pct2",
              "speedup": "ratio", "energy_reduction": "ratio", "speedup_vs_exact": "ratio",
              "mac_reduction_vs_exact": "ratio", "predictive_layers": "int", "fn_rate": "pct2"}
    cols = [c for c in wanted if c in tradeoff.columns]
    return Table("tradeoff", "Accuracy vs speed (tradeoff.parquet)", tradeoff[cols].reset_index(drop=True),
                 {c: wanted[c] for c in cols}, {c: f"tradeoff:{c}" for c in cols},
                 note="Top-1 and loss on the evaluation images; loss in points of top-1.")


# --- fault studies --------------------------------------------------------------------------------------------


def level_text(record: Mapping[str, Any]) -> str:
    levels = record.get("levels")
    unit = " V" if record.get("level_kind") == "voltage" else ""
    return ", ".join(f"{v:g}{unit}" for v in levels) if isinstance(levels, list) else ""


def fault_study_table(record: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> Table | None:
    """What the study varied: network, images, memory, kinds, levels, budget (study.json, else summary.json)."""
    doc = {**(summary or {}), **(record or {})}
    entries = [("study", "study", "text"), ("network", "network", "text"), ("data set", "dataset", "text"),
               ("images", "images", "int"), ("design (energy table)", "arch", "text"),
               ("memory", "memory", "text"), ("data kinds", "kinds", "text"),
               ("levels (most reliable first)", "levels", "text"), ("levels are", "level_kind", "text"),
               ("accuracy budget (top-1 drop)", "budget", "pct2"), ("fault draws per evaluation", "repeats", "int")]
    rows = []
    for label, key, kind in entries:
        value = doc.get(key)
        if value is None:
            continue
        if key == "kinds" and isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key == "levels":
            value = level_text(doc)
        elif key == "level_kind":
            value = {"ber": "bit-error rates", "voltage": "supply voltages"}.get(value, value)
        source = "study" if record and key in record else "summary"
        rows.append((label, value, kind, f"{source}:{key}"))
    spec = (record or {}).get("fault_spec")
    if isinstance(spec, Mapping):
        rows.append(("fixed fault-spec keys", ", ".join(f"{k}={v}" for k, v in spec.items()) or "none", "text",
                     "study:fault_spec"))
    if not rows:
        return None
    return _key_value("fault-study", "Fault study", rows, note="From study.json (summary.json where it is absent).",
                      prefix="")


def fault_summary_table(summary: Mapping[str, Any]) -> Table:
    """The greedy per-layer assignment against all-nominal and the uniform assignments (summary.json of assign)."""
    entries = [("fault-free top-1", "clean_top1", "pct2"),
               ("target top-1 (fault-free − budget)", "target_top1", "pct2"),
               ("greedy top-1", "greedy_top1", "pct2"),
               ("greedy top-1, 95 % interval: low", "greedy_top1_ci95.0", "pct2"),
               ("greedy top-1, 95 % interval: high", "greedy_top1_ci95.1", "pct2"),
               ("greedy top-1 during the search", "greedy_search_top1", "pct2"),
               ("memory energy µJ: all nominal", "nominal_energy_pj", "uj"),
               ("memory energy µJ: greedy per-layer", "greedy_energy_pj", "uj"),
               ("memory energy µJ: uniform, same budget", "uniform_energy_pj_same_budget", "uj"),
               ("memory energy µJ: uniform, same accuracy", "uniform_energy_pj_same_accuracy", "uj"),
               ("memory energy µJ: uniform curve at the greedy top-1", "uniform_energy_pj_interpolated", "uj"),
               ("saving vs all nominal", "saving_vs_nominal", "pct"),
               ("saving vs uniform, same budget", "saving_vs_uniform_same_budget", "pct"),
               ("saving vs uniform, same accuracy", "saving_vs_uniform", "pct"),
               ("saving vs the uniform curve at the greedy top-1", "saving_vs_uniform_interpolated", "pct"),
               ("evaluations", "evaluations", "int")]
    rows = []
    for label, key, kind in entries:
        name, _, index = key.partition(".")
        value = summary.get(name)
        if index and isinstance(value, list) and len(value) > int(index):
            value = value[int(index)]
        elif index:
            value = None
        if value is None:
            continue
        rows.append((label, value, kind, f"summary:{key}"))
    return _key_value("fault-summary", "Per-layer assignment vs uniform (memory energy per image)", rows,
                      note="From summary.json. Savings are 1 − greedy energy / the other's; a negative saving: the "
                           "uniform level is cheaper at that accuracy; empty: no uniform level reaches it. 'Same "
                           "accuracy' is the cheapest uniform level at least as accurate as the greedy result on the "
                           "study's images.", prefix="")


def fault_evaluation_table(evaluation: Mapping[str, Any]) -> Table:
    """Top-1 under the run's fault spec with its 95 % interval (evaluation.json of evaluate)."""
    ci = evaluation.get("top1_ci95") or [None, None]
    draws = evaluation.get("top1_draws") or []
    spec = evaluation.get("spec")
    rows = [("top-1 (mean over draws)", evaluation.get("top1_mean"), "pct2", "evaluation:top1_mean"),
            ("95 % interval: low", ci[0], "pct2", "evaluation:top1_ci95.0"),
            ("95 % interval: high", ci[1], "pct2", "evaluation:top1_ci95.1"),
            ("interval", evaluation.get("method"), "text", "evaluation:method"),
            ("fault draws", len(draws), "int", "evaluation:top1_draws"),
            ("top-1 per draw", ", ".join(f"{100 * d:.2f}%" for d in draws), "text", "evaluation:top1_draws"),
            ("images", evaluation.get("images"), "int", "evaluation:images"),
            ("fault spec", ", ".join(f"{k}={v}" for k, v in spec.items()) if isinstance(spec, Mapping) else spec,
             "text", "evaluation:spec"),
            ("seconds", evaluation.get("seconds"), "num", "evaluation:seconds")]
    return _key_value("fault-evaluation", "Accuracy under the fault spec", [r for r in rows if r[1] is not None],
                      note="From evaluation.json: t interval over the draws, Wilson over the images with one draw.",
                      prefix="")


def _frame_table(table_id: str, title: str, frame: pd.DataFrame, wanted: Mapping[str, tuple[str, str]],
                 source: str, note: str) -> Table:
    """Columns of `frame` that `wanted` names (column -> (header, format)), renamed, in that order."""
    cols = [c for c in wanted if c in frame.columns]
    out = frame[cols].reset_index(drop=True).rename(columns={c: wanted[c][0] for c in cols})
    return Table(table_id, title, out, {wanted[c][0]: wanted[c][1] for c in cols},
                 {wanted[c][0]: f"{source}:{c}" for c in cols}, note=note)


_LEVEL_COLUMNS = {"level": ("level", "num"), "ber": ("bit-error rate", "num")}
_TOP1_COLUMNS = {"top1": ("top-1", "pct2"), "top1_low": ("top-1 low (95 %)", "pct2"),
                 "top1_high": ("top-1 high (95 %)", "pct2")}


def fault_uniform_table(uniform: pd.DataFrame) -> Table:
    """Every layer at one level: top-1 with its interval and the memory energy (uniform.parquet)."""
    wanted = {**_LEVEL_COLUMNS, **_TOP1_COLUMNS, "energy_pj": ("memory energy µJ", "uj")}
    return _frame_table("fault-uniform", "Uniform assignments (uniform.parquet)", uniform, wanted, "uniform",
                        "Every studied layer at the level; memory energy per image of the studied memory and kinds.")


def fault_assignment_table(assignment: pd.DataFrame) -> Table:
    """The greedy per-layer levels (assignment.parquet)."""
    wanted = {"layer": ("layer", "text"), "kind": ("kind", "text"), **_LEVEL_COLUMNS,
              "words": ("words read per image", "int"), "energy_pj": ("memory energy µJ", "uj")}
    return _frame_table("fault-assignment", "Greedy per-layer levels (assignment.parquet)", assignment, wanted,
                        "assignment", "One row per (layer, kind) the study varied.")


def fault_trace_table(trace: pd.DataFrame) -> Table:
    """Every move the greedy search tried, in order (trace.parquet)."""
    wanted = {"layer": ("layer", "text"), "kind": ("kind", "text"), "level_from": ("from", "num"),
              "level_to": ("to", "num"), "top1": ("top-1 of the whole assignment", "pct2"),
              "energy_pj": ("memory energy µJ", "uj"), "accepted": ("kept", "text")}
    return _frame_table("fault-trace", "Greedy search, move by move (trace.parquet)", trace, wanted, "trace",
                        "A move that left top-1 below the target was undone and its (layer, kind) frozen.")


def fault_sensitivity_table(sensitivity: pd.DataFrame) -> Table:
    """One layer faulty at a time, and the uniform '(all)' rows (sensitivity.parquet)."""
    wanted = {"layer": ("layer", "text"), "kind": ("kind", "text"), **_LEVEL_COLUMNS, **_TOP1_COLUMNS,
              "drop": ("top-1 lost", "pct2"), "energy_pj": ("memory energy µJ", "uj"),
              "energy_saving": ("energy saving vs nominal", "pct")}
    return _frame_table("fault-sensitivity", "Sensitivity (sensitivity.parquet)", sensitivity, wanted,
                        "sensitivity", "Layer '(all)': every layer at the level (uniform). Energy: the whole "
                                       "studied memory per image with that assignment.")
