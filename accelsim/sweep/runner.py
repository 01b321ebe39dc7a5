"""The point runner: one task = the points of one functional group, run with one functional pass.

It runs wherever the executor puts it (this process, a local worker process, a Dask worker), takes and returns
plain picklable data, and never touches the sweep folder: the driver records what comes back.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

# The per-network totals of a design (summary.json `designs`) that the totals table keeps.
_POINT_FIELDS = ("speedup", "time_speedup", "energy_reduction", "mac_reduction", "exact_violations", "images",
                 "dataset", "mode")


@dataclass(frozen=True)
class Task:
    """The points one worker runs together: (point id, RunConfig mapping) pairs sharing one functional pass."""

    points: tuple[tuple[str, dict[str, Any]], ...]


@dataclass
class PointRecord:
    """What one point produced: its layer rows and network totals, or its error."""

    point: str
    status: str  # "ok" | "failed"
    error: str | None = None
    traceback: str | None = None
    layers: pd.DataFrame | None = None  # the run's layers table (one row per design and layer)
    totals: list[dict[str, Any]] = field(default_factory=list)  # one row per design: network totals
    functional_pass: bool = False  # this point's numbers came from a functional pass (not shape-only)
    elapsed_s: float = 0.0  # wall time of the task the point ran in
    finished_at: str = ""
    host: str = ""


def totals_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """summary.json -> one row per design: cycles, energy (per class), MACs, seconds, and the point's ratios."""
    rows = []
    acc = summary.get("accuracy") or {}
    for design, totals in summary["designs"].items():
        role = "design" if design == summary["design"] else "baseline"
        row: dict[str, Any] = {"network": summary["network"], "design": design, "role": role, **totals}
        for key in _POINT_FIELDS:
            value = summary.get(key)
            row[key] = value if role == "design" or key in ("images", "dataset", "mode") else None
        for key in ("top1", "top5", "agreement"):
            row[key] = acc.get(key) if role == "design" else None
        # against the fault-free dense network: a fault point's own figure, else the run's agreement (the same thing)
        faults = summary.get("faults") or {}
        row["agreement_fault_free"] = faults.get("agreement_fault_free", acc.get("agreement")) if role == "design" \
            else None
        rows.append(row)
    return rows


def failure_record(point: str, exc: BaseException, elapsed: float, host: str) -> PointRecord:
    from accelsim.errors import AccelsimError

    message = str(exc) if isinstance(exc, AccelsimError) else f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return PointRecord(point=point, status="failed", error=message, traceback=tb, elapsed_s=elapsed,
                       finished_at=_now(), host=host)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_task(task: Task) -> list[PointRecord]:
    """Run the points of `task` with one functional pass; a point's failure is its record, never an exception."""
    from accelsim.config import config_from_mapping, functional_key
    from accelsim.run import RunOutcome, run_group

    started = time.perf_counter()
    host = f"{socket.gethostname()}:{os.getpid()}"
    records: dict[str, PointRecord] = {}
    cfgs, ids = [], []
    for point, settings in task.points:
        try:
            cfgs.append(config_from_mapping(settings, f"sweep point {point}"))
            ids.append(point)
        except Exception as exc:  # a setting out of range: this point fails, the rest run
            records[point] = failure_record(point, exc, 0.0, host)
    groups: dict[Any, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(functional_key(cfg), []).append(i)
    for members in groups.values():
        group_started = time.perf_counter()
        try:
            outcomes: Sequence[Any] = run_group([cfgs[i] for i in members], isolate=True)
        except Exception as exc:  # the shared part failed (network, weights, images): every member fails
            outcomes = [exc] * len(members)
        elapsed = time.perf_counter() - group_started
        for i, outcome in zip(members, outcomes):
            point = ids[i]
            if isinstance(outcome, RunOutcome):
                records[point] = PointRecord(point=point, status="ok", layers=outcome.layers,
                                             totals=totals_rows(outcome.summary),
                                             functional_pass=outcome.functional is not None,
                                             elapsed_s=elapsed, finished_at=_now(), host=host)
            else:
                records[point] = failure_record(point, outcome, elapsed, host)
    log.debug("task of %d point(s) done in %.2f s", len(task.points), time.perf_counter() - started)
    return [records[p] for p, _ in task.points]
