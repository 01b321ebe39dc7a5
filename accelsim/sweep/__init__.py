"""Parameter sweeps: grids of run settings, run resumably on local processes or a Dask cluster (see README).

Points that differ only in their designs (architecture, energy table, baseline) share one functional pass: the
driver groups them by `accelsim.config.functional_key` and each group runs as one task with a timing model per point.
"""

from accelsim.sweep.driver import SweepDefinition, SweepResult, plan_tasks, sweep
from accelsim.sweep.grid import Axis, Point, expand, make_points, parse_sets
from accelsim.sweep.store import SweepStore

__all__ = ["Axis", "Point", "SweepResult", "SweepDefinition", "SweepStore", "expand", "make_points", "parse_sets",
           "plan_tasks", "sweep"]
