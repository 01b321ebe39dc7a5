"""The sweep folder: its definition, one record per finished point (written atomically), the combined tables.

    sweep.yaml          what the sweep is (base settings, axes, grid/zip, point ids): a re-run must match it
    points/pNNNN.parquet  the point's layer rows (written first)
    points/pNNNN.json     the point's record: status, error, network totals, timings (written last: the marker)
    results.parquet     one row per (point, design, layer) of every finished point, swept keys as columns
    totals.parquet      one row per (point, design) with the network totals; a failed point is one row with its error
    sweep.json          the last invocation: keys, counts, functional passes, executor, wall time

Every file is written to a temporary name and renamed into place, so a killed sweep leaves whole files only;
the combined tables are rebuilt from the point records.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from accelsim.atomic import out_dir_problems, write_file, write_text
from accelsim.errors import ConfigError
from accelsim.results import json_safe
from accelsim.sweep.grid import Point
from accelsim.sweep.runner import PointRecord

log = logging.getLogger(__name__)

DEFINITION = "sweep.yaml"
RESULTS = "results.parquet"
TOTALS = "totals.parquet"
META = "sweep.json"
POINTS = "points"
_OWNED = (DEFINITION, RESULTS, TOTALS, META, POINTS, "figures", "report.html")  # report: made from the tables


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    write_text(path, json.dumps(json_safe(dict(doc)), indent=1) + "\n")


def _axes_text(axes: Any) -> str:
    try:
        return " ".join(f"{a['key']}={','.join(map(str, a['values']))}" for a in axes) or "none"
    except (TypeError, KeyError):
        return repr(axes)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    if old.get("combine") != new.get("combine"):
        out.append(f"combine: was {old.get('combine')}, now {new.get('combine')}")
    if old.get("axes") != new.get("axes"):
        out.append(f"--set: was {_axes_text(old.get('axes'))}, now {_axes_text(new.get('axes'))}")
    ob, nb = old.get("base") or {}, new.get("base") or {}
    for key in sorted(set(ob) | set(nb)):
        if ob.get(key) != nb.get(key):
            out.append(f"{key}: was {ob.get(key)!r}, now {nb.get(key)!r}")
    return out


def _normal(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as it reads back from sweep.yaml (plain lists and scalars)."""
    return yaml.safe_load(yaml.safe_dump(json_safe(dict(definition)), sort_keys=False))


class SweepStore:
    """One sweep folder on this machine's disk (only the driver writes it)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.points_dir = self.folder / POINTS

    def problems(self, definition: Mapping[str, Any], force: bool = False) -> list[str]:
        """Why the sweep cannot be written here (checked before any point runs); nothing is changed."""
        if self.folder.exists() and not self.folder.is_dir():
            return [f"--out {self.folder} is a file, not a folder"]
        path = self.folder / DEFINITION
        if path.is_file() and not force:
            diffs = _differences(self._old_definition(), _normal(definition))
            if diffs:
                return [f"{self.folder} holds a different sweep ({'; '.join(diffs)}); re-run the same command to "
                        "resume it, choose another --out, or pass --force to discard its results"]
        elif not path.is_file() and self.folder.is_dir() and any(self.folder.iterdir()) and not force:
            return [f"{self.folder} exists and is not a sweep folder (no {DEFINITION}); choose another --out, or "
                    "pass --force to write the sweep into it"]
        return out_dir_problems(self.folder, overwrite=True)

    def _old_definition(self) -> dict[str, Any]:
        with open(self.folder / DEFINITION) as fh:
            return yaml.safe_load(fh) or {}

    def open(self, definition: Mapping[str, Any], force: bool = False) -> None:
        """Create the folder, or check that it holds this same sweep; `force` discards another sweep's records."""
        problems = self.problems(definition, force)
        if problems:
            raise ConfigError("; ".join(problems))
        definition = _normal(definition)
        path = self.folder / DEFINITION
        if path.is_file() and _differences(self._old_definition(), definition):
            log.warning("--force: discarding the results of the earlier sweep in %s", self.folder)
            self._clear()
        elif not path.is_file() and self.folder.is_dir() and any(self.folder.iterdir()):
            self._clear()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.points_dir.mkdir(exist_ok=True)
        for stale in [*self.folder.glob(".*.tmp"), *self.points_dir.glob(".*.tmp")]:  # left by a killed sweep
            stale.unlink(missing_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "w") as fh:
                yaml.safe_dump(definition, fh, sort_keys=False)

        write_file(path, write)

    def _clear(self) -> None:
        for name in _OWNED:
            target = self.folder / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def _record_path(self, point_id: str) -> Path:
        return self.points_dir / f"{point_id}.json"

    def read_record(self, point_id: str) -> dict[str, Any] | None:
        path = self._record_path(point_id)
        if not path.is_file():
            return None
        try:
            with open(path) as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:  # cannot happen with atomic writes, unless edited by hand
            log.warning("ignoring unreadable point record %s: %s", path, exc)
            return None

    def finished(self, points: Sequence[Point]) -> set[str]:
        """Ids of the points whose successful record matches their current settings."""
        done = set()
        for p in points:
            rec = self.read_record(p.id)
            if rec and rec.get("status") == "ok" and (self.points_dir / f"{p.id}.parquet").is_file():
                if rec.get("digest") == p.digest:
                    done.add(p.id)
                else:
                    log.warning("point %s was recorded with other settings; running it again", p.id)
        return done

    def record(self, point: Point, rec: PointRecord) -> None:
        """Record one point: its layer rows first, then its record (the marker that it is finished)."""
        if rec.status == "ok" and rec.layers is not None:
            layers = rec.layers.copy()
            for i, (key, value) in enumerate(point.values.items()):
                layers.insert(i, key, value)
            layers.insert(0, "point", point.id)
            write_file(self.points_dir / f"{point.id}.parquet", lambda tmp: layers.to_parquet(tmp, index=False))
        else:
            (self.points_dir / f"{point.id}.parquet").unlink(missing_ok=True)
        _write_json(self._record_path(point.id), {
            "point": point.id, "index": point.index, "values": point.values, "digest": point.digest,
            "settings": point.settings, "status": rec.status, "error": rec.error, "traceback": rec.traceback,
            "totals": rec.totals, "functional_pass": rec.functional_pass, "elapsed_s": round(rec.elapsed_s, 3),
            "finished_at": rec.finished_at, "host": rec.host,
        })

    def rebuild(self, points: Sequence[Point], keys: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Combine the point records into results.parquet and totals.parquet (atomically) and return them."""
        frames, totals = [], []
        for p in points:
            rec = self.read_record(p.id)
            if rec is None or rec.get("digest") != p.digest:
                continue
            head = {"point": p.id, **{k: p.values.get(k) for k in keys}}
            if rec["status"] == "ok":
                frames.append(pd.read_parquet(self.points_dir / f"{p.id}.parquet"))
                totals += [{**head, "status": "ok", "error": None, **row} for row in rec["totals"]]
            else:
                totals.append({**head, "status": rec["status"], "error": rec["error"]})
        results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["point", *keys])
        table = pd.DataFrame(totals) if totals else pd.DataFrame(columns=["point", *keys, "status", "error"])
        write_file(self.folder / RESULTS, lambda tmp: results.to_parquet(tmp, index=False))
        write_file(self.folder / TOTALS, lambda tmp: table.to_parquet(tmp, index=False))
        return results, table

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        _write_json(self.folder / META, meta)
