"""The search space of Algorithm 1: the (Th, N) grid of kernel profiling and the T levels of the local pass.

The papers leave the grid and T open (spec A.7 item 11). N is given as fractions of the kernel length and/or as
absolute MAC counts; Th as multiples of each kernel's output scale (the standard deviation of its dense pre-ReLU
outputs on the profiling images), so one grid fits every layer. The local pass tries T configurations per layer; the
t-th is every kernel's cheapest candidate whose proxy loss is at most `levels[t]` (see profiling.py).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from accelsim.settings import Problems, build, declared, flatten, setting

DEFAULT_N_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
DEFAULT_TH_FRACTIONS = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LEVELS = (0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.0)


_SEARCH = ("optimize", "tradeoff")


def _finite(values: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"must hold finite numbers, got {list(values)}")
    return values


@declared
class SearchSettings:
    """What Algorithm 1 searches over, and on how many images it profiles; validated when built."""

    n_fractions: tuple[float, ...] = setting(
        DEFAULT_N_FRACTIONS, "N grid as fractions of the kernel length (N = round(fraction x length), at least 1)",
        commands=_SEARCH, strict=False, example=(0.25,), metavar="F1,F2,...")
    n_counts: tuple[int, ...] = setting((), "N grid as absolute MAC counts, clipped to the kernel length",
                                        commands=_SEARCH, strict=False, example=(4,), metavar="N1,N2,...")
    th_fractions: tuple[float, ...] = setting(
        DEFAULT_TH_FRACTIONS, "Th grid as multiples of each kernel's output scale (std of its pre-ReLU outputs)",
        commands=_SEARCH, strict=False, min_length=1, example=(0.0,), metavar="F1,F2,...")
    levels: tuple[float, ...] = setting(
        DEFAULT_LEVELS, "proxy-loss bounds of the T local-pass configurations, decreasing (T = their count)",
        commands=_SEARCH, strict=False, min_length=1, example=(0.1, 0.0), metavar="L1,L2,...")
    profile_images: int = setting(256, "optimisation images kernel profiling looks at (the first ones)", gt=0,
                                  commands=_SEARCH, metavar="N", example=32)
    eval_batch: int = setting(128, "images per batch when the passes evaluate the network (values do not depend "
                              "on it)", gt=0, commands=_SEARCH, metavar="N", example=64)
    refine: bool = setting(True, "after the global pass, step layers forward again while the network stays within "
                           "epsilon (--no-refine: Algorithm 1 as printed)", commands=_SEARCH, example=False)

    def __post_init__(self) -> None:
        problems = []
        for key in ("n_fractions", "th_fractions", "levels"):
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
    def from_mapping(cls, d: Mapping[str, Any], where: str = "search settings") -> "SearchSettings":
        return build(cls, d, where)


def fingerprint_fields(settings: SearchSettings) -> dict[str, Any]:
    """The settings that decide the profiling and local-pass results (eval_batch does not matter; refine only
    changes the global pass, which is redone when it differs)."""
    d = settings.to_dict()
    d.pop("eval_batch")
    d.pop("refine")
    return d
