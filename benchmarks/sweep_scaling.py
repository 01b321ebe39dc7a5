"""Wall time of a 20-point sweep on the embedded LeNet with 1 and 2 local workers (recorded in sweep_scaling.md).

The sweep: pe.lanes 1,2,4,8,16 x dram.bandwidth_gbps 9.6,19.2 x run.negative_order most/least negative first
= 20 points in 2 functional groups (negative_order changes the functional pass, the arch keys do not). Each
configuration runs into a fresh folder; with points sharing passes (the default) and with one pass per point
(--points-per-pass 1, what 20 separate `accelsim run` calls would cost), and checks that every table is identical.

    python benchmarks/sweep_scaling.py [--limit 200] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from accelsim.sweep import SweepDefinition, parse_sets, sweep

SETS = ["pe.lanes=1,2,4,8,16", "dram.bandwidth_gbps=9.6,19.2",
        "run.negative_order=most_negative_first,least_negative_first"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=200, help="images per point (default 200)")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    args = ap.parse_args()
    spec = SweepDefinition(base={"net": "lenet", "limit": args.limit}, axes=tuple(parse_sets(SETS)))
    assert len(spec.points()) == 20
    rows, tables = [], []
    with tempfile.TemporaryDirectory() as tmp:
        sweep(SweepDefinition(base={"net": "lenet", "limit": 4}, axes=()), Path(tmp) / "warm", workers=1)  # JIT caches
        for per_pass in (None, 1):
            for workers in (int(w) for w in args.workers.split(",")):
                load = os.getloadavg()[0]
                started = time.perf_counter()
                r = sweep(spec, Path(tmp) / f"w{workers}-{per_pass}", workers=workers, points_per_pass=per_pass)
                wall = time.perf_counter() - started
                assert not r.failed and r.ran == 20
                tables.append((r.results, r.totals))
                rows.append({"workers": workers, "executor": r.executor,
                             "points per pass": per_pass or "group (10)", "tasks": r.tasks,
                             "functional passes": r.functional_passes, "wall s": round(wall, 1),
                             "s per point": round(wall / 20, 2), "load avg before": round(load, 1)})
                print(rows[-1], flush=True)
    for results, totals in tables[1:]:
        pd.testing.assert_frame_equal(results, tables[0][0])
        pd.testing.assert_frame_equal(totals, tables[0][1])
    print(f"\n{args.limit} images per point, {os.cpu_count()} cores; every table identical\n")
    print(pd.DataFrame(rows).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(rows).to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
