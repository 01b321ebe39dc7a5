"""The run folder (see DESIGN.md): written atomically, read back by sweeps and reports.

A run is assembled in a hidden temporary folder beside its destination and renamed into place only when every file
is written, so a killed run never leaves a half-written results folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from accelsim.atomic import write_folder
from accelsim.errors import ConfigError, InternalError

LAYER_COLUMNS = ("network", "design", "layer", "mode", "images", "macs_dense", "macs_performed")


@dataclass(frozen=True)
class RunFolder:
    """What a finished run folder holds."""

    path: Path
    config: dict[str, Any]
    layers: pd.DataFrame
    summary: dict[str, Any]
    events: pd.DataFrame | None = None


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf as None and NumPy scalars as Python ones, so JSON and YAML writers accept it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    return value


def write_run(out: str | Path, config: Mapping[str, Any], layers: pd.DataFrame, summary: Mapping[str, Any],
              events: pd.DataFrame | None = None, overwrite: bool = False, unique: bool = False) -> Path:
    """Write config.yaml, layers.parquet, events.parquet and summary.json to `out` atomically; returns the folder.

    `unique`: `out` is a default name; if it is taken (another run in the same second), `out-2`, ... is used.
    """
    missing = [c for c in LAYER_COLUMNS if c not in layers.columns]
    if missing:
        raise InternalError(f"layers table lacks required column(s) {missing}")

    def fill(tmp: Path) -> None:
        with open(tmp / "config.yaml", "w") as fh:
            yaml.safe_dump(json_safe(dict(config)), fh, sort_keys=False)
        layers.to_parquet(tmp / "layers.parquet", index=False)
        if events is not None:
            events.to_parquet(tmp / "events.parquet", index=False)
        with open(tmp / "summary.json", "w") as fh:
            json.dump(json_safe(dict(summary)), fh, indent=2)
            fh.write("\n")

    return write_folder(out, fill, overwrite=overwrite, unique=unique)


def read_run(path: str | Path) -> RunFolder:
    """Read a run folder back; a missing file is a clear error."""
    path = Path(path)
    for name in ("config.yaml", "layers.parquet", "summary.json"):
        if not (path / name).is_file():
            raise ConfigError(f"{path} is not a finished accelsim run folder: {name} is missing")
    with open(path / "config.yaml") as fh:
        config = yaml.safe_load(fh)
    with open(path / "summary.json") as fh:
        summary = json.load(fh)
    events = pd.read_parquet(path / "events.parquet") if (path / "events.parquet").is_file() else None
    return RunFolder(path=path, config=config, layers=pd.read_parquet(path / "layers.parquet"), summary=summary,
                     events=events)
