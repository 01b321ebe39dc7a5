"""What a report is made from: a run folder, a sweep folder or a trade-off folder, read back as tables.

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
# Files a sweep keeps beside its table (read when present): what was swept and how (`keys`, `axes`, `base`).
_SWEEP_META = ("sweep.json", "sweep.yaml")
# Columns of a sweep table that describe a point or its outcome, never a swept key.
_BOOKKEEPING = {"point", "point_id", "point_key", "key", "status", "error", "run_folder", "folder", "wall_s",
                "elapsed_s", "seed", "hash"}


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

    @property
    def kind(self) -> str:
        """'run', 'sweep' or 'tradeoff' (the first that applies), for titles."""
        return "run" if self.run is not None else "sweep" if self.sweep is not None else "tradeoff"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{path} is not a readable parquet table: {exc}") from None


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
    """Read the folder a report is made from; a folder that is none of the three kinds is a clear error."""
    folder = Path(path)
    if not folder.exists():
        raise ConfigError(f"report: {folder} does not exist (expected a run, sweep or trade-off folder)")
    if not folder.is_dir():
        raise ConfigError(f"report: {folder} is a file, not a folder (expected a run, sweep or trade-off folder)")
    run = None
    present = [name for name in RUN_FILES if (folder / name).is_file()]
    if "layers.parquet" in present or "summary.json" in present:
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
    if run is None and sweep is None and tradeoff is None:
        raise ConfigError(
            f"report: {folder} is not a finished accelsim run folder ({', '.join(RUN_FILES)}), a sweep folder "
            f"({SWEEP_TABLE}) or a trade-off folder ({TRADEOFF_TABLE}); give the folder `accelsim run --out`, "
            f"`accelsim sweep --out` or `accelsim tradeoff --out` wrote")
    return ReportSource(path=folder, run=run, sweep=sweep, sweep_keys=keys, sweep_totals=totals, sweep_meta=meta,
                        tradeoff=tradeoff)
