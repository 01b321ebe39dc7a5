"""The optimiser's settings: the (Th, N) grid of kernel profiling, the T levels, how the path of candidate specs is
built, and the promise the chosen spec must keep on new images.

The papers leave the grid and T open (docs/model.md A.7-11). N is given as fractions of the kernel length and/or
as absolute MAC counts; Th as multiples of each kernel's output scale (the standard deviation of its dense pre-ReLU
outputs on the profiling images), so one grid fits every layer. The t-th configuration of a layer is every kernel's
cheapest candidate whose proxy loss is at most `levels[t]` (see profiling.py). Every field has a type, a default,
validation and a one-line help (the comment), from which the command-line flags are generated.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any, Literal

from accelsim.settings import Problems, build, declared, flatten, setting

DEFAULT_N_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
DEFAULT_TH_FRACTIONS = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LEVELS = (0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.0)
DEFAULT_ALGORITHM1_BUDGETS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06)
Search = Literal["knapsack", "algorithm1"]
SEARCHES: tuple[str, ...] = typing.get_args(Search)


_SEARCH = ("optimize", "tradeoff")


def _finite(values: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"must hold finite numbers, got {list(values)}")
    return values


@declared
class SearchSettings:
    """What Algorithm 1 searches over, and on how many images it profiles; validated when built."""

    n_fractions: tuple[float, ...] = setting(
        default=DEFAULT_N_FRACTIONS, help="N grid as fractions of the kernel length (N = round(fraction x length), at "
        "least 1)", commands=_SEARCH, strict=False, example=(0.25,), metavar="F1,F2,...")
    n_counts: tuple[int, ...] = setting(default=(), help="N grid as absolute MAC counts, clipped to the kernel length",
                                        commands=_SEARCH, strict=False, example=(4,), metavar="N1,N2,...")
    th_fractions: tuple[float, ...] = setting(
        default=DEFAULT_TH_FRACTIONS, help="Th grid as multiples of each kernel's output scale (std of its pre-ReLU "
        "outputs)", commands=_SEARCH, strict=False, min_length=1, example=(0.0,), metavar="F1,F2,...")
    levels: tuple[float, ...] = setting(
        default=DEFAULT_LEVELS, help="proxy-loss bounds of the T local-pass configurations, decreasing (T = their "
        "count)", commands=_SEARCH, strict=False, min_length=1, example=(0.1, 0.0), metavar="L1,L2,...")
    profile_images: int = setting(
        default=0, help="optimisation images kernel profiling looks at (the first ones); 0: all of them", ge=0,
        commands=_SEARCH, metavar="N", example=32)
    eval_batch: int = setting(
        default=128, help="images per batch when the passes evaluate the network (values do not depend on it)", gt=0,
        commands=_SEARCH, metavar="N", example=64)
    refine: bool = setting(
        default=True, help="algorithm1: after the global pass, step layers forward again while the network stays "
        "within its budget (--no-refine: Algorithm 1 as printed)", commands=_SEARCH, example=False,
        needs={"search": "algorithm1"})
    search: Search = setting(
        default="knapsack", help="how the path of candidate specs is built: knapsack (from each layer's measured "
        "damage) or algorithm1 (the paper's passes at several budgets)", commands=_SEARCH, example="algorithm1")
    confidence: float = setting(
        default=0.9, help="probability that the chosen spec keeps the promise on new images (1: exact mode only)",
        ge=0.5, le=1.0, commands=_SEARCH, example=0.8, strict=False)
    validation_share: float = setting(
        default=0.5, help="share of the optimisation images held back to check the promise (0: unchecked)", ge=0.0,
        le=0.95, commands=_SEARCH, example=0.4, strict=False)
    promise_images: int = setting(
        default=0, help="0: promise the expected top-1 loss on new images; m > 0: the loss measured on m new images",
        ge=0, commands=_SEARCH, metavar="M", example=500)
    path_steps: int = setting(default=32, help="knapsack: specs on the path the validation walks (finer choice, more "
                              "validation passes)", gt=0, commands=_SEARCH, metavar="N", example=8)
    path_max_loss: float = setting(
        default=0.1, help="knapsack: predicted top-1 loss (fraction) up to which the path is laid out", ge=1e-4, le=1.0,
        commands=_SEARCH, example=0.05, strict=False)
    sensitivity_images: int = setting(
        default=128, help="knapsack: optimisation images each layer's damage is measured on", gt=0, commands=_SEARCH,
        metavar="N", example=64)
    sensitivity_columns: int = setting(
        default=2, help="knapsack: configurations per layer whose damage is measured (others interpolated)", gt=0,
        commands=_SEARCH, metavar="N", example=3)
    algorithm1_budgets: tuple[float, ...] = setting(
        default=DEFAULT_ALGORITHM1_BUDGETS, help="algorithm1: loss budgets of the path's specs (distinct, increasing, "
        "in [0, 1])", commands=_SEARCH, strict=False, min_length=1, example=(0.0, 0.01), metavar="B1,B2,...",
        needs={"search": "algorithm1"})

    def __post_init__(self) -> None:
        problems = []
        for key in ("n_fractions", "th_fractions", "levels", "algorithm1_budgets"):
            try:
                _finite(getattr(self, key))
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        if not all(0.0 < f <= 1.0 for f in self.n_fractions):
            problems.append(f"n_fractions: must lie in (0, 1], got {list(self.n_fractions)}")
        if not all(c > 0 for c in self.n_counts):
            problems.append(f"n_counts: must be positive integers, got {list(self.n_counts)}")
        if not self.n_fractions and not self.n_counts:
            problems.append("no N values: set n_fractions and/or n_counts")
        if any(v < 0.0 or v > 1.0 for v in self.levels):
            problems.append(f"levels: must be shares in [0, 1], got {list(self.levels)}")
        if list(self.levels) != sorted(self.levels, reverse=True):
            problems.append(f"levels: must be decreasing (most aggressive first), got {list(self.levels)}")
        budgets = list(self.algorithm1_budgets)
        if any(not 0.0 <= b <= 1.0 for b in budgets) or budgets != sorted(set(budgets)):
            problems.append(f"algorithm1_budgets: must be distinct increasing losses in [0, 1], got {budgets}")
        if problems:
            raise Problems(problems)

    @property
    def T(self) -> int:  # noqa: N802 - the paper's name
        return len(self.levels)

    def n_values(self, kernel_length: int) -> list[int]:
        """The distinct N of the grid for kernels of `kernel_length` stored weights (exact mode, N = 0, excluded)."""
        got = {max(1, round(f * kernel_length)) for f in self.n_fractions}
        got |= {c for c in self.n_counts}
        return sorted(n for n in got if 1 <= n <= kernel_length)

    def to_dict(self) -> dict[str, Any]:
        return flatten(self)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], where: str = "search settings") -> SearchSettings:
        return build(cls, d, where)


# Settings that only decide how the path is built or how the promise is checked: a state made with other values
# resumes, and the stages they decide are redone (stage keys in state.py); the rest must match to resume.
STAGE_FIELDS = ("eval_batch", "refine", "search", "confidence", "promise_images", "path_steps", "path_max_loss",
                "sensitivity_images", "sensitivity_columns", "algorithm1_budgets")


def fingerprint_fields(settings: SearchSettings) -> dict[str, Any]:
    """The settings that decide the profiles, the split and the images (a state must match them to resume)."""
    d = settings.to_dict()
    for key in STAGE_FIELDS:
        d.pop(key)
    return d
