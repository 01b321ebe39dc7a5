"""The search space of Algorithm 1: the (Th, N) grid of kernel profiling and the T levels of the local pass.

The papers leave the grid and T open (spec A.7 item 11). N is given as fractions of the kernel length and/or as
absolute MAC counts; Th as multiples of each kernel's output scale (the standard deviation of its dense pre-ReLU
outputs on the profiling images), so one grid fits every layer. The local pass tries T configurations per layer; the
t-th is every kernel's cheapest candidate whose proxy loss is at most `levels[t]` (see profiling.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from accelsim.errors import ConfigError

DEFAULT_N_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
DEFAULT_TH_FRACTIONS = (-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0)
DEFAULT_LEVELS = (0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.0)


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
    levels: tuple[float, ...] = DEFAULT_LEVELS  # proxy-loss bounds of the T local-pass configurations (T = len)
    profile_images: int = 256  # optimisation images kernel profiling looks at (the first ones)
    eval_batch: int = 128  # images per batch when the passes evaluate the network (values do not depend on it)
    refine: bool = True  # after the global pass, step layers forward again while within epsilon (not in the paper)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_fractions", _floats(self.n_fractions, "n_fractions"))
        object.__setattr__(self, "th_fractions", _floats(self.th_fractions, "th_fractions"))
        object.__setattr__(self, "levels", _floats(self.levels, "levels"))
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
        for key in ("profile_images", "eval_batch"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"search setting '{key}' must be a positive integer, got {v!r}")

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


def fingerprint_fields(settings: SearchSettings) -> dict[str, Any]:
    """The settings that decide the profiling and local-pass results (eval_batch does not matter; refine only
    changes the global pass, which is redone when it differs)."""
    d = settings.to_dict()
    d.pop("eval_batch")
    d.pop("refine")
    return d
