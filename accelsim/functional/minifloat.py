"""Minifloat (Ristretto, docs/formats.md B.3): IEEE-like floats with few bits, no denormals, no INF/NaN (they saturate).

A minifloat with `e` exponent bits and `m` mantissa bits (plus the sign) holds 0 and +-(1 + k/2^m) * 2^E for
k = 0 .. 2^m - 1 and E = -bias .. bias + 1, bias = 2^(e-1) - 1 (eq 6.1): Ristretto's code uses every exponent code,
the all-ones one included, for normal numbers. As in that code (`Trim2MiniFloat`): a value whose exponent is below
-bias flushes to 0 (decided before the mantissa is rounded), a value above the largest saturates to it, and the
mantissa is rounded to nearest (ties away from zero, C's `round`), chopped (`floor`: towards zero) or stochastically.
Unlike that code the rounding starts from the float64 value (it first casts to float32) and a mantissa that rounds up
past the largest value saturates (its code wrapped the exponent past the top).
"""

from __future__ import annotations

import math

import numpy as np


def minifloat_limits(exponent_bits: int, mantissa_bits: int) -> tuple[int, int, float]:
    """(smallest exponent, largest exponent, largest value) of the format."""
    bias = 2 ** (exponent_bits - 1) - 1
    e_min, e_max = -bias, bias + 1
    return e_min, e_max, math.ldexp(2.0 - math.ldexp(1.0, -mantissa_bits), e_max)


def exponent_bits_for(max_abs: float) -> int:
    """Ristretto eq 6.2: exponent bits = ceil(lg2(lg2(max) - 1) + 1), at least 1 (the equation has no value below
    max = 2, where lg2(max) - 1 <= 0)."""
    if not math.isfinite(max_abs):
        raise ValueError(f"exponent_bits_for: non-finite maximum {max_abs}")
    inner = math.log2(max_abs) - 1.0 if max_abs > 0 else -1.0
    if inner <= 0:
        return 1
    return max(1, int(math.ceil(math.log2(inner) + 1.0)))


def quantize_minifloat(x: np.ndarray, exponent_bits: int, mantissa_bits: int, rounding: str = "nearest",
                       u: np.ndarray | None = None) -> np.ndarray:
    """Round `x` onto the minifloat (float64 result). `rounding`: nearest, floor (chop) or stochastic with `u`, one
    uniform number in [0, 1) per value (same shape as `x`). NaN stays NaN; +-inf saturate."""
    if exponent_bits < 1 or mantissa_bits < 0:
        raise ValueError(f"minifloat needs >= 1 exponent bit and >= 0 mantissa bits, got {exponent_bits}, "
                         f"{mantissa_bits}")
    x = np.asarray(x, dtype=np.float64)
    e_min, e_max, top = minifloat_limits(exponent_bits, mantissa_bits)
    a = np.abs(x)
    frac, exp = np.frexp(a)  # a = frac * 2^exp, frac in [0.5, 1)
    e = exp.astype(np.int64) - 1  # a = (2 frac) * 2^e
    t = np.ldexp(2.0 * frac - 1.0, mantissa_bits)  # mantissa in units of its last place, in [0, 2^m)
    if rounding == "nearest":
        k = np.floor(t + 0.5)
    elif rounding == "floor":
        k = np.floor(t)
    elif rounding == "stochastic":
        if u is None or np.shape(u) != x.shape:
            raise ValueError("stochastic minifloat rounding needs one uniform number per value")
        k = np.floor(t + u)
    else:
        raise ValueError(f"unknown minifloat rounding {rounding!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.ldexp(np.ldexp(1.0, mantissa_bits) + k, np.clip(e, -1100, 1100) - mantissa_bits)
    v = np.where((e > e_max) | (v > top) | np.isinf(a), top, v)
    v = np.where((a == 0) | (e < e_min), 0.0, v)
    out = np.copysign(v, x)
    return np.where(np.isnan(x), np.nan, out)
