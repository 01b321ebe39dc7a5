"""Algorithm 1 of SnaPEA (spec A.2.4): per-kernel speculation parameters (Th, N) under an accuracy budget.

`optimize` runs kernel profiling (profiling.py), the local and the global pass (passes.py) on cached activations
(evaluate.py), saving its state (state.py) as it goes; `write_outputs` writes the spec for `accelsim run --spec`
and the report beside it (report.py). Decisions: docs/optimize.md.
"""

from accelsim.optimize.algorithm import OptimizeResult, Split, optimize
from accelsim.optimize.grid import SearchSettings
from accelsim.optimize.passes import EXACT, Candidate, GlobalState, adjust_param, global_pass, initial_state, merit
from accelsim.optimize.report import format_report, report_dict, write_outputs

__all__ = [
    "EXACT", "Candidate", "GlobalState", "OptimizeResult", "SearchSettings", "Split", "adjust_param",
    "format_report", "global_pass", "initial_state", "merit", "optimize", "report_dict", "write_outputs",
]
