"""Integer arithmetic the models share: one ceiling division instead of `-(-a // b)` spelled inline everywhere."""

from __future__ import annotations

from typing import Any


def ceil_div(a: Any, b: Any) -> Any:
    """ceil(a / b) for non-negative integers, NumPy integer arrays or Fractions (exact: no float rounding)."""
    return -(-a // b)
