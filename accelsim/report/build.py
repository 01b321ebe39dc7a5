"""`accelsim report`: a folder's tables -> figures/ (PNG and SVG) and report.html, each file written atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from accelsim.atomic import write_bytes
from accelsim.errors import ConfigError, InternalError
from accelsim.report import figures as F
from accelsim.report import html as H
from accelsim.report import tables as T
from accelsim.report.source import FaultStudy, ReportSource, load_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """Where a report went: the HTML page, the figure files written, and the figures skipped with their reason."""

    html: Path
    figures: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _title(src: ReportSource) -> tuple[str, list[str]]:
    sub = [f"folder: {src.path.resolve()}"]
    if src.run is not None:
        s = src.run.summary
        title = f"accelsim report: {s.get('network', '?')}, {s.get('design', '?')}"
        title += f" vs {s['baseline']}" if s.get("baseline") else ""
        sub.append(f"{s.get('images', '?')} image(s)" + (f" of {s['dataset']}" if s.get("dataset") else "")
                   + f", mode {s.get('mode', '?')}; weights {s.get('weights', '?')}")
        if s.get("speedup") is not None:
            energy = s.get("energy_reduction") or float("nan")
            sub.append(f"speedup {s['speedup']:.3f}×, energy reduction {energy:.3f}× "
                       f"(per image, whole network)")
    elif src.sweep is not None:
        networks = ", ".join(map(str, dict.fromkeys(src.sweep["network"]))) if "network" in src.sweep else "?"
        title = f"accelsim sweep report: {networks}"
        sub.append(f"swept keys: {', '.join(src.sweep_keys) or 'none found'}; {len(src.sweep)} rows in results.parquet")
    elif src.faults is not None:
        title, lines = _fault_title(src.faults)
        sub.extend(lines)
    elif src.tradeoff is not None:
        title = "accelsim trade-off report"
        sub.append(f"{len(src.tradeoff)} points in tradeoff.parquet")
    else:  # load_source refuses a folder with none of the four
        raise InternalError(f"report: {src.path} has no run, sweep, fault-study or trade-off tables")
    return title, sub


def _pct(value: Any, digits: int = 2) -> str:
    return T.format_value(value, "pct2" if digits == 2 else "pct") or "n/a"


def _fault_title(study: FaultStudy) -> tuple[str, list[str]]:
    """The header of a fault-study report: what was studied, and its result in one line."""
    record = study.record or {}
    doc = {**(study.summary or {}), **record}
    title = f"accelsim fault-study report ({study.study})" + (f": {study.network}" if study.network else "")
    sub = []
    what = []
    if doc.get("kinds") and doc.get("memory"):
        what.append(f"{', '.join(map(str, doc['kinds']))} in {doc['memory']}")
    if doc.get("levels"):
        what.append(("at supply voltages " if doc.get("level_kind") == "voltage" else "at bit-error rates ")
                    + T.level_text(doc))
    images = doc.get("images") or (study.evaluation or {}).get("images")
    if images:
        what.append(f"{images} image(s)" + (f" of {doc['dataset']}" if doc.get("dataset") else ""))
    if what:
        sub.append("; ".join(what))
    s = study.summary
    if s and s.get("greedy_top1") is not None:
        sub.append(f"greedy per-layer: top-1 {_pct(s['greedy_top1'])} (budget: at least {_pct(s.get('target_top1'))})"
                   f", memory energy {_pct(s.get('saving_vs_nominal'), 1)} below all nominal, "
                   f"{_pct(s.get('saving_vs_uniform_same_budget'), 1)} below the cheapest uniform level within the "
                   f"budget")
    ev = study.evaluation
    if ev and ev.get("top1_mean") is not None:
        low, high = (ev.get("top1_ci95") or [None, None])[:2]
        sub.append(f"top-1 {_pct(ev['top1_mean'])} (95 % interval {_pct(low)} to {_pct(high)}, "
                   f"{ev.get('method', '?')}; {ev.get('images', '?')} images)")
    return title, sub


def _sections(src: ReportSource, rendered: list[F.RenderedFigure]) -> list[tuple[str, str, str]]:
    sections: list[tuple[str, str, str]] = []
    run = src.run
    if run is not None:
        cards = [T.ratios_table(run), T.accuracy_table(run)]
        sections.append(("summary", "Summary", H.render_table(T.totals_table(run)) + '<div class="cards">'
                         + "".join(H.render_table(t) for t in cards if t is not None) + "</div>"))
    study = src.faults
    if study is not None:
        cards = [T.fault_study_table(study.record, study.summary),
                 T.fault_summary_table(study.summary) if study.summary is not None else None,
                 T.fault_evaluation_table(study.evaluation) if study.evaluation is not None else None]
        sections.append(("summary", "Summary", '<div class="cards">'
                         + "".join(H.render_table(t) for t in cards if t is not None) + "</div>"))
    sections.append(("figures", "Figures", H.render_figures(rendered)))
    blocks = []
    if run is not None:
        blocks.append(H.render_table(T.layer_table(run)))
    if src.sweep is not None:
        blocks.append(H.render_table(T.sweep_table(src.sweep, src.sweep_keys, src.sweep_totals)))
    if src.tradeoff is not None:
        blocks.append(H.render_table(T.tradeoff_table(src.tradeoff)))
    if study is not None:
        for frame, make in ((study.uniform, T.fault_uniform_table), (study.assignment, T.fault_assignment_table),
                            (study.trace, T.fault_trace_table), (study.sensitivity, T.fault_sensitivity_table)):
            if frame is not None:
                blocks.append(H.render_table(make(frame)))
    if run is not None:
        blocks.append("<details><summary>Every column of layers.parquet</summary>"
                      + H.render_table(T.raw_layers_table(run)) + "</details>")
    if blocks:
        sections.append(("tables", "Tables", "".join(blocks)))
    if run is not None:
        config = T.config_tables(run.config)
        if config:
            sections.append(("configuration", "Configuration", '<div class="cards">'
                             + "".join(H.render_table(t) for t in config) + "</div>"))
    elif src.sweep_meta:
        meta = {k: v for k, v in src.sweep_meta.items() if k not in ("points", "tables")}  # points: the table above
        if isinstance(meta.get("axes"), list):
            meta["axes"] = {str(a.get("key")): a.get("values") for a in meta["axes"] if isinstance(a, dict)}
        flat = T.flatten(meta)
        table = T.Table("config-sweep", "Sweep definition (sweep.yaml, sweep.json)",
                        pd.DataFrame({"key": list(flat),
                                      "value": ["" if v is None else str(v) for v in flat.values()]}),
                        {"key": "text", "value": "text"})
        sections.append(("configuration", "Configuration", H.render_table(table)))
    elif study is not None and study.record:
        flat = T.flatten(study.record)
        table = T.Table("config-study", "Study record (study.json)",
                        pd.DataFrame({"key": list(flat),
                                      "value": ["" if v is None else str(v) for v in flat.values()]}),
                        {"key": "text", "value": "text"})
        sections.append(("configuration", "Configuration", H.render_table(table)))
    return sections


def write_report(folder: str | Path, out: str | Path | None = None) -> Report:
    """Write the figures (`figures/<name>.png`, `.svg`) and `report.html` of a run, sweep, trade-off or fault-study
    folder.

    `out` defaults to the folder itself. A figure whose data is absent is skipped, and the page says why; files of
    a skipped figure left by an earlier report are removed so `figures/` always matches the page.
    """
    src = load_source(folder)
    out_dir = Path(out) if out is not None else src.path
    try:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"report: cannot create the output folder {out_dir}/figures: {exc}") from None
    rendered = F.render(src)
    written, skipped = [], {}
    for fig in rendered:
        stem = out_dir / "figures" / fig.spec.name
        if fig.png is None:
            skipped[fig.spec.name] = fig.skipped or ""
            for ext in (".png", ".svg"):
                stem.with_suffix(ext).unlink(missing_ok=True)
            log.info("figure %s skipped: %s", fig.spec.name, fig.skipped)
            continue
        if fig.svg is None:  # render draws both or neither
            raise InternalError(f"figure {fig.spec.name}: a PNG was drawn without its SVG")
        for ext, data in ((".png", fig.png), (".svg", fig.svg)):
            write_bytes(stem.with_suffix(ext), data)
            written.append(stem.with_suffix(ext))
    title, sub = _title(src)
    page = H.render_page(title, sub, _sections(src, rendered))
    html_path = out_dir / "report.html"
    write_bytes(html_path, page.encode("utf-8"))
    return Report(html=html_path, figures=written, skipped=skipped)
