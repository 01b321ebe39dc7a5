"""A sweep end to end: expand the points, skip the finished ones, group the rest by functional pass, run the groups
on an executor, record each point as it comes back, rebuild the tables."""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import accelsim
from accelsim.errors import ConfigError
from accelsim.sweep.executors import make_executor
from accelsim.sweep.grid import Axis, Point, make_points
from accelsim.sweep.runner import PointRecord, Task, failure_record, run_task
from accelsim.sweep.store import SweepStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepDefinition:
    """What a sweep is: base run settings (flat RunConfig settings), the swept axes and how they combine."""

    base: Mapping[str, Any]
    axes: tuple[Axis, ...] = ()
    combine: str = "grid"  # "grid": cartesian product; "zip": element-wise

    @property
    def keys(self) -> tuple[str, ...]:
        """The swept keys (axes with more than one value): the point columns of the tables."""
        return tuple(a.key for a in self.axes if len(a.texts) > 1)

    def points(self) -> list[Point]:
        return make_points(self.base, self.axes, self.combine)

    def definition(self) -> dict[str, Any]:
        return {"base": dict(self.base), "axes": [{"key": a.key, "values": list(a.texts)} for a in self.axes],
                "combine": self.combine}


@dataclass
class SweepResult:
    """A sweep's outcome: the combined tables and what this invocation did."""

    folder: Path
    results: pd.DataFrame  # one row per (point, design, layer)
    totals: pd.DataFrame  # one row per (point, design); failed points one row with their error
    points: int
    skipped: int  # finished earlier, not recomputed
    ran: int
    failed: dict[str, str] = field(default_factory=dict)  # point id -> error, of every point not finished
    functional_passes: int = 0
    tasks: int = 0
    executor: str = ""
    workers: int = 0
    wall_s: float = 0.0


def plan_tasks(points: Sequence[Point], cfgs: Mapping[str, Any], points_per_pass: int | None = None) -> list[Task]:
    """Group points by the functional pass they need (`functional_key`), in order of first appearance; a group is
    one task, or chunks of `points_per_pass` points (more passes, more parallelism)."""
    from accelsim.config import functional_key

    if points_per_pass is not None and (not isinstance(points_per_pass, int) or points_per_pass < 1):
        raise ConfigError(f"--points-per-pass must be a positive number of points, got {points_per_pass!r}")
    groups: dict[Any, list[Point]] = {}
    for p in points:
        groups.setdefault(functional_key(cfgs[p.id]), []).append(p)
    tasks = []
    for members in groups.values():
        step = points_per_pass or len(members)
        for lo in range(0, len(members), step):
            tasks.append(Task(tuple((p.id, p.settings) for p in members[lo:lo + step])))
    return tasks


def check_points(points: Sequence[Point]) -> tuple[dict[str, Any], list[str]]:
    """Every point's RunConfig, and every problem of every point (settings, architectures, network, weights, images,
    speculation parameters, layers that do not fit a design), found before anything runs."""
    from accelsim.config import config_from_mapping, functional_key
    from accelsim.run import group_problems

    cfgs: dict[str, Any] = {}
    problems: list[str] = []
    for p in points:
        try:
            cfgs[p.id] = config_from_mapping(p.settings, f"point {p.id} ({_describe(p)})", label=_sweep_label)
        except ConfigError as exc:
            problems.append(str(exc))
    groups: dict[Any, list[Point]] = {}
    for p in points:
        if p.id in cfgs:
            groups.setdefault(functional_key(cfgs[p.id]), []).append(p)
    for members in groups.values():
        shared, own = group_problems([cfgs[p.id] for p in members])
        ids = ", ".join(p.id for p in members) if len(members) <= 3 else f"{members[0].id} and {len(members) - 1} more"
        problems += [f"point(s) {ids}: {problem}" for problem in shared]
        for p, mine in zip(members, own):
            problems += [f"point {p.id} ({_describe(p)}): {problem}" for problem in mine]
    return cfgs, problems


def _describe(p: Point) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.values.items()) or "the fixed settings"


def _sweep_label(key: str) -> str:
    return f"run.{key}"


def sweep(definition: SweepDefinition, out: str | Path, *, workers: int | None = None, scheduler: Any = None,
          points_per_pass: int | None = None, force: bool = False,
          progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run every point of `definition` not yet finished in `out`, and write the combined tables.

    Every point is checked first (`check_points`); any problem stops the sweep before anything is written.
    `workers`: local processes (default: one per core); `scheduler`: a Dask scheduler address, scheduler file or
    `distributed.Client` instead. `progress(done, total)` sees the points of this invocation as they are recorded.
    """
    started = time.perf_counter()
    points = definition.points()
    store = SweepStore(out)
    record_definition = {**definition.definition(), "points": [{"id": p.id, **p.values} for p in points]}
    cfgs, problems = check_points(points)
    problems = store.problems(record_definition, force=force) + problems
    if points_per_pass is not None and (not isinstance(points_per_pass, int) or points_per_pass < 1):
        problems.append(f"--points-per-pass must be a positive number of points, got {points_per_pass!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        problems.append(f"--workers must be a positive number of processes, got {workers!r}")
    if problems:
        shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
        raise ConfigError(f"sweep not started, {len(problems)} problem(s) (nothing was written):\n"
                          + "\n".join(f"  - {p}" for p in shown))
    store.open(record_definition, force=force)
    done = store.finished(points)
    pending = [p for p in points if p.id not in done]
    by_id = {p.id: p for p in points}
    log.info("sweep %s: %d point(s), %d finished earlier, %d to run", out, len(points), len(done), len(pending))

    recorded = 0
    total = len(pending)

    def record(rec: PointRecord) -> None:
        nonlocal recorded
        store.record(by_id[rec.point], rec)
        if rec.status != "ok":
            log.info("point %s %s failed: %s", rec.point, by_id[rec.point].values, rec.error)
        recorded += 1
        if progress is not None:
            progress(recorded, total)

    tasks = plan_tasks(pending, cfgs, points_per_pass)
    passes = 0
    executor_name, n_workers = "none", 0
    if tasks:
        executor = make_executor(workers, scheduler, tasks=len(tasks))
        executor_name, n_workers = executor.name, executor.workers
        log.info("running %d task(s) on %s (%d worker(s))", len(tasks), executor.name, executor.workers)
        interrupted = True
        try:
            for i, outcome in executor.submit_all(run_task, tasks):
                if isinstance(outcome, BaseException):  # the worker itself was lost: its points fail, not the sweep
                    records = [failure_record(pid, outcome, 0.0, executor.name) for pid, _ in tasks[i].points]
                else:
                    records = outcome
                    passes += any(r.functional_pass for r in records)
                for rec in records:
                    record(rec)
            interrupted = False
        finally:
            executor.close(wait=not interrupted)
    results, totals = store.rebuild(points, definition.keys)
    failed = {}  # every point whose latest record is a failure, from this invocation or an earlier one
    for p in points:
        latest = store.read_record(p.id)
        if latest is not None and latest.get("status") != "ok":
            failed[p.id] = latest.get("error") or "failed"
    wall = time.perf_counter() - started
    result = SweepResult(folder=Path(out), results=results, totals=totals, points=len(points), skipped=len(done),
                         ran=recorded, failed=failed, functional_passes=passes, tasks=len(tasks),
                         executor=executor_name, workers=n_workers, wall_s=wall)
    store.write_meta({
        "keys": list(definition.keys), "combine": definition.combine, "points": len(points),
        "ok": int(totals.loc[totals["status"] == "ok", "point"].nunique()) if len(totals) else 0,
        "failed": failed, "last_invocation": {
            "skipped": len(done), "ran": recorded, "tasks": len(tasks), "functional_passes": passes,
            "executor": executor_name, "workers": n_workers, "wall_s": round(wall, 3),
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "accelsim": accelsim.__version__},
        "tables": {"results.parquet": "one row per (point, design, layer); swept keys as columns",
                   "totals.parquet": "one row per (point, design): network totals, per image; failed points: one row "
                                     "with status and error"},
    })
    return result
