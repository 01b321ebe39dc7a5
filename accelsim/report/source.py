"""What a report is made from: a run folder, a sweep folder, a trade-off folder or a fault-study folder, read back
as tables.

A folder may hold more than one of them (a sweep folder with a trade-off table beside it); the report draws what the
tables it finds allow and says what it skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from accelsim.errors import ConfigError
from accelsim.results import RunFolder, read_run

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "layers.parquet", "summary.json")
SWEEP_TABLE = "results.parquet"
SWEEP_TOTALS = "totals.parquet"  # optional: one row per (point, design), the network totals of each point
TRADEOFF_TABLE = "tradeoff.parquet"
# `accelsim faults evaluate|sensitivity|assign --out`: any of these (and no layers.parquet) makes a fault-study folder;
# its summary.json is then the assignment's summary, not a run's.
FAULT_FILES = ("sensitivity.parquet", "uniform.parquet", "evaluation.json")
FAULT_TABLES = {"sensitivity": "sensitivity.parquet", "uniform": "uniform.parquet",
                "assignment": "assignment.parquet", "trace": "trace.parquet"}
FAULT_DOCS = {"summary": "summary.json", "evaluation": "evaluation.json", "record": "study.json"}
# Files a sweep keeps beside its table (read when present): what was swept and how (`keys`, `axes`, `base`).
_SWEEP_META = ("sweep.json", "sweep.yaml")
# Columns of a sweep table that describe a point or its outcome, never a swept key.
_BOOKKEEPING = {"point", "point_id", "point_key", "key", "status", "error", "run_folder", "folder", "wall_s",
                "elapsed_s", "seed", "hash"}


@dataclass(frozen=True)
class FaultStudy:
    """The files of an `accelsim faults` folder (docs/faults.md, "Studies"); absent ones are None.

    evaluate writes `evaluation`; sensitivity writes `sensitivity`; assign writes `sensitivity` (single-layer rows
    only), `uniform`, `assignment`, `trace` and `summary`. `record` is study.json (network, images, axis), absent in
    folders written before it existed.
    """

    sensitivity: pd.DataFrame | None = None  # one row per (layer or '(all)', kind, level)
    uniform: pd.DataFrame | None = None  # one row per level: every layer at it
    assignment: pd.DataFrame | None = None  # the greedy levels: one row per (layer, kind)
    trace: pd.DataFrame | None = None  # every move the greedy search tried
    summary: dict[str, Any] | None = None  # summary.json of assign
    evaluation: dict[str, Any] | None = None  # evaluation.json of evaluate
    record: dict[str, Any] | None = None  # study.json

    @property
    def study(self) -> str:
        """'evaluate', 'sensitivity' or 'assign': from study.json, else from the files present."""
        if self.record and isinstance(self.record.get("study"), str):
            return self.record["study"]
        return "assign" if self.summary is not None or self.uniform is not None else \
            "sensitivity" if self.sensitivity is not None else "evaluate"

    @property
    def network(self) -> str:
        return str((self.record or {}).get("network") or "")


@dataclass(frozen=True)
class ReportSource:
    """The tables of one folder a report reads; absent parts are None."""

    path: Path
    run: RunFolder | None = None
    sweep: pd.DataFrame | None = None  # results.parquet: one row per (point, design, layer)
    sweep_keys: tuple[str, ...] = ()  # the swept keys, columns of `sweep`
    sweep_totals: pd.DataFrame | None = None  # totals.parquet: one row per (point, design), when the sweep wrote it
    sweep_meta: dict[str, Any] | None = None  # sweep.json and sweep.yaml, merged
    tradeoff: pd.DataFrame | None = None  # tradeoff.parquet: one row per point of `accelsim tradeoff`
    faults: FaultStudy | None = None  # an `accelsim faults` folder's tables

    @property
    def kind(self) -> str:
        """'run', 'sweep', 'faults' or 'tradeoff' (the first that applies)."""
        if self.run is not None:
            return "run"
        if self.sweep is not None:
            return "sweep"
        return "faults" if self.faults is not None else "tradeoff"

    @property
    def kind_text(self) -> str:
        """The kind as the report's sentences name it ('a fault-study folder')."""
        return {"tradeoff": "trade-off", "faults": "fault-study"}.get(self.kind, self.kind)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{path} is not a readable parquet table: {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable JSON file: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} holds a {type(doc).__name__}, expected a JSON object")
    return doc


def load_fault_study(folder: Path) -> FaultStudy:
    """The tables and JSON files of a fault-study folder, those present."""
    tables = {name: _read_parquet(folder / file) if (folder / file).is_file() else None
              for name, file in FAULT_TABLES.items()}
    docs = {name: _read_json(folder / file) if (folder / file).is_file() else None
            for name, file in FAULT_DOCS.items()}
    return FaultStudy(**tables, **docs)


def _sweep_meta(folder: Path) -> dict[str, Any] | None:
    merged: dict[str, Any] = {}
    for name in _SWEEP_META:
        path = folder / name
        if not path.is_file():
            continue
        try:
            with open(path) as fh:
                doc = json.load(fh) if path.suffix == ".json" else yaml.safe_load(fh)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        if isinstance(doc, dict):
            merged.update({k: v for k, v in doc.items() if k not in merged})
    return merged or None


def sweep_keys(table: pd.DataFrame, meta: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The swept keys of a sweep table: those its metadata names (`keys`, or the `axes` of sweep.yaml), else its
    dotted columns (`pe.lanes`, `run.mode`: the `--set` syntax, which no column of a run's layer table uses)."""
    named: list[str] = []
    if meta:
        if isinstance(meta.get("keys"), list):
            named = [str(k) for k in meta["keys"]]
        elif isinstance(meta.get("axes"), list):
            named = [str(a["key"]) for a in meta["axes"] if isinstance(a, dict) and "key" in a
                     and len(a.get("values") or ()) > 1]
    keys = [k for k in named if k in table.columns]
    if keys:
        return tuple(keys)
    return tuple(c for c in table.columns if "." in str(c) and c not in _BOOKKEEPING)


def load_source(path: str | Path) -> ReportSource:
    """Read the folder a report is made from; a folder that is none of the four kinds is a clear error."""
    folder = Path(path)
    expected = "expected a run, sweep, trade-off or fault-study folder"
    if not folder.exists():
        raise ConfigError(f"report: {folder} does not exist ({expected})")
    if not folder.is_dir():
        raise ConfigError(f"report: {folder} is a file, not a folder ({expected})")
    run = faults = None
    present = [name for name in RUN_FILES if (folder / name).is_file()]
    is_study = "layers.parquet" not in present and any((folder / name).is_file() for name in FAULT_FILES)
    if is_study:
        faults = load_fault_study(folder)  # its summary.json is the assignment's
    elif "layers.parquet" in present or "summary.json" in present:
        run = read_run(folder)  # names the missing file of a half-finished run
    sweep = totals = meta = None
    keys: tuple[str, ...] = ()
    if (folder / SWEEP_TABLE).is_file():
        sweep = _read_parquet(folder / SWEEP_TABLE)
        meta = _sweep_meta(folder)
        keys = sweep_keys(sweep, meta)
        if (folder / SWEEP_TOTALS).is_file():
            totals = _read_parquet(folder / SWEEP_TOTALS)
    tradeoff = _read_parquet(folder / TRADEOFF_TABLE) if (folder / TRADEOFF_TABLE).is_file() else None
    if run is None and sweep is None and tradeoff is None and faults is None:
        raise ConfigError(
            f"report: {folder} is not a finished accelsim run folder ({', '.join(RUN_FILES)}), a sweep folder "
            f"({SWEEP_TABLE}), a trade-off folder ({TRADEOFF_TABLE}) or a fault-study folder "
            f"({' or '.join(FAULT_FILES)}); give the folder `accelsim run --out`, `accelsim sweep --out`, "
            f"`accelsim tradeoff --out` or `accelsim faults ... --out` wrote")
    return ReportSource(path=folder, run=run, sweep=sweep, sweep_keys=keys, sweep_totals=totals, sweep_meta=meta,
                        tradeoff=tradeoff, faults=faults)
