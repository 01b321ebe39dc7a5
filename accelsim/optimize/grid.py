"""The optimiser's settings: the (Th, N) grid of kernel profiling, the T levels, how the path of candidate specs is
built, and the promise the chosen spec must keep on new images.

The papers leave the grid and T open (spec A.7 item 11). N is given as fractions of the kernel length and/or as
absolute MAC counts; Th as multiples of each kernel's output scale (the standard deviation of its dense pre-ReLU
outputs on the profiling images), so one grid fits every layer. The t-th configuration of a layer is every kernel's
cheapest candidate whose proxy loss is at most `levels[t]` (see profiling.py). Every field has a type, a default,
validation and a one-line help (the comment), from which the command-line flags are generated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from accelsim.errors import ConfigError

DEFAULT_N_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
DEFAULT_TH_FRACTIONS = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LEVELS = (0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.0)
DEFAULT_ALGORITHM1_BUDGETS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06)
SEARCHES = ("knapsack", "algorithm1")


def _floats(value: Any, key: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"search setting '{key}' must be a list of numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"search setting '{key}' must hold finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class SearchSettings:
    """What Algorithm 1 searches over, and on how many images it profiles; validated when built."""

    n_fractions: tuple[float, ...] = DEFAULT_N_FRACTIONS  # N = round(fraction x kernel length), at least 1
    n_counts: tuple[int, ...] = ()  # absolute N values, clipped to the kernel length
    th_fractions: tuple[float, ...] = DEFAULT_TH_FRACTIONS  # Th = fraction x kernel output scale (activation units)
    levels: tuple[float, ...] = DEFAULT_LEVELS  # proxy-loss bounds of the T configurations per layer (T = len)
    profile_images: int = 0  # optimisation images kernel profiling looks at (the first ones); 0 = all of them
    eval_batch: int = 128  # images per batch when the passes evaluate the network (values do not depend on it)
    refine: bool = True  # algorithm1: after the global pass, step layers forward again while within budget (ours)
    search: str = "knapsack"  # how the path of candidate specs is built: knapsack (ours) or algorithm1 (the paper's)
    confidence: float = 0.9  # probability that the chosen spec keeps the promise on new images; 1 = exact mode
    validation_share: float = 0.5  # share of the optimisation images held back to check the promise (0: unchecked)
    promise_images: int = 0  # 0: promise the expected loss on new images; m > 0: the loss measured on m new images
    path_steps: int = 32  # knapsack: specs on the path the validation walks (finer choice, more validation passes)
    path_max_loss: float = 0.1  # knapsack: predicted top-1 loss (fraction) up to which the path is laid out
    sensitivity_images: int = 128  # knapsack: optimisation images each layer's damage is measured on
    sensitivity_columns: int = 2  # knapsack: configurations per layer whose damage is measured (others interpolated)
    algorithm1_budgets: tuple[float, ...] = DEFAULT_ALGORITHM1_BUDGETS  # algorithm1: loss budgets of the path's specs

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_fractions", _floats(self.n_fractions, "n_fractions"))
        object.__setattr__(self, "th_fractions", _floats(self.th_fractions, "th_fractions"))
        object.__setattr__(self, "levels", _floats(self.levels, "levels"))
        object.__setattr__(self, "algorithm1_budgets", _floats(self.algorithm1_budgets, "algorithm1_budgets"))
        counts = self.n_counts
        if isinstance(counts, int):
            counts = (counts,)
        if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
            raise ConfigError(f"search setting 'n_counts' must be positive integers, got {self.n_counts!r}")
        object.__setattr__(self, "n_counts", tuple(counts))
        if not all(0.0 < f <= 1.0 for f in self.n_fractions):
            raise ConfigError(f"search setting 'n_fractions' must lie in (0, 1], got {self.n_fractions!r}")
        if not self.n_fractions and not self.n_counts:
            raise ConfigError("search settings give no N values: set n_fractions and/or n_counts")
        if not self.th_fractions:
            raise ConfigError("search setting 'th_fractions' is empty: give at least one threshold")
        if not self.levels or any(v < 0.0 or v > 1.0 for v in self.levels):
            raise ConfigError(f"search setting 'levels' must be shares in [0, 1], got {self.levels!r}")
        if list(self.levels) != sorted(self.levels, reverse=True):
            raise ConfigError(f"search setting 'levels' must be decreasing (most aggressive first), got {self.levels!r}")
        if not isinstance(self.refine, bool):
            raise ConfigError(f"search setting 'refine' must be true or false, got {self.refine!r}")
        for key in ("eval_batch", "path_steps", "sensitivity_images", "sensitivity_columns"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"search setting '{key}' must be a positive integer, got {v!r}")
        for key in ("profile_images", "promise_images"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"search setting '{key}' must be a non-negative integer (0 = {'all' if key == 'profile_images' else 'expected loss'}), got {v!r}")
        if self.search not in SEARCHES:
            raise ConfigError(f"search setting 'search' must be one of {', '.join(SEARCHES)}, got {self.search!r}")
        for key, lo, hi in (("confidence", 0.5, 1.0), ("validation_share", 0.0, 0.95), ("path_max_loss", 1e-4, 1.0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"search setting '{key}' must be a number in [{lo}, {hi}], got {v!r}")
        if not self.algorithm1_budgets or any(not 0.0 <= b <= 1.0 for b in self.algorithm1_budgets) or \
                list(self.algorithm1_budgets) != sorted(set(self.algorithm1_budgets)):
            raise ConfigError("search setting 'algorithm1_budgets' must be distinct increasing losses in [0, 1], "
                              f"got {self.algorithm1_budgets!r}")

    @property
    def T(self) -> int:  # noqa: N802 - the paper's name
        return len(self.levels)

    def n_values(self, kernel_length: int) -> list[int]:
        """The distinct N of the grid for kernels of `kernel_length` stored weights (exact mode, N = 0, excluded)."""
        got = {max(1, round(f * kernel_length)) for f in self.n_fractions}
        got |= {c for c in self.n_counts}
        return sorted(n for n in got if 1 <= n <= kernel_length)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> "SearchSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown search setting(s) {unknown}; expected some of {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


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
