"""Predictive mode's parameters (docs/optimize.md): per-kernel (Th, N) that save MACs while keeping an accuracy promise.

`optimize` runs kernel profiling (profiling.py), lays out a path of candidate specs on the optimisation images
(path.py: our knapsack search, or Algorithm 1's local and global passes, passes.py) on cached activations
(evaluate.py), and walks it on the validation images with an exact paired test of the promise (stats.py), saving
its state (state.py) as it goes; `write_outputs` writes the spec for `accelsim run --spec` and the report beside it
(report.py). Decisions: docs/optimize.md.
"""

from accelsim.optimize.algorithm import OptimizeResult, Split, opt_val_counts, optimize
from accelsim.optimize.grid import SearchSettings
from accelsim.optimize.passes import EXACT, Candidate, GlobalState, adjust_param, global_pass, initial_state, merit
from accelsim.optimize.report import format_report, report_dict, write_outputs
from accelsim.optimize.stats import PairedCounts, Promise, fixed_sequence, interval, upper_bound

__all__ = [
    "EXACT", "Candidate", "GlobalState", "OptimizeResult", "PairedCounts", "Promise", "SearchSettings", "Split",
    "adjust_param", "fixed_sequence", "format_report", "global_pass", "initial_state", "interval", "merit",
    "opt_val_counts", "optimize", "report_dict", "upper_bound", "write_outputs",
]
