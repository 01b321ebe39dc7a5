"""Shift weights: power-of-two (Ristretto ch. 7, docs/formats.md B.4) and LightNN-1 / LightNN-2 (docs/formats.md B.6).

A power-of-two or LightNN-1 weight is +-2^e (one shift of the activation), a LightNN-2 weight +-(2^a + 2^b) (two
shifts and an add). The exponents come from a range of `n` values ending at the top exponent; `weight_bits` pays for
the sign and the exponent code(s): n = 2^(bits-1) for one shift, 2^((bits-1)//2) per shift for LightNN-2, so 4 bits
give Ristretto's 8 exponents [-8, -1] and LightNN-1's m = 0..7, 8 bits LightNN-2's two 3-bit fields. With underflow
`zero` one exponent code becomes the zero (and for LightNN-2 "no second shift"), so the range is one exponent
shorter. A weight that is exactly 0 (pruned) stays 0 in every case: it is not stored (see docs/formats.md).

Power-of-two weights round in the log domain as Ristretto's eq 7.2 and code do (e = round(log2|w|), ties away from
zero; stochastic: floor(log2|w| + u)); LightNN weights round in the linear domain to the nearest legal value (ties to
the larger magnitude) or stochastically between the legal values around |w| with LightNN's probabilities, which is
unbiased inside the range.
"""

from __future__ import annotations

import math

import numpy as np

# float64 cannot hold 2^e much below this; a range reaching further is cut here (its bottom values would be 0 anyway)
_LOWEST_EXPONENT = -1000


def exponent_count(kind: str, weight_bits: int, zero: bool) -> int:
    """Exponents available to one shift (per field for LightNN-2)."""
    code_bits = (weight_bits - 1) // 2 if kind == "lightnn2" else weight_bits - 1
    return 2**code_bits - (1 if zero else 0)


def default_top_exponent(kind: str) -> int:
    """The sources' top exponent: Ristretto's code fixes [-8, -1]; LightNN's legal weights are 2^-m, m = 0..7."""
    return -1 if kind == "power_of_two" else 0


def layer_top_exponent(kind: str, max_abs: float) -> int:
    """Top exponent that follows a layer's largest weight (shift_range per_layer): the exponent the largest weight
    rounds to (power-of-two: log domain; LightNN-1: linear domain), for LightNN-2 the smallest t with
    2^t + 2^t >= max."""
    if not (max_abs > 0 and math.isfinite(max_abs)):
        return default_top_exponent(kind)
    y = math.log2(max_abs)
    if kind == "power_of_two":
        return int(math.copysign(math.floor(abs(y) + 0.5), y))
    if kind == "lightnn1":
        e = math.floor(y)
        return e + 1 if max_abs >= 1.5 * math.ldexp(1.0, e) else e
    return int(math.ceil(y)) - 1


def exponent_range(kind: str, weight_bits: int, zero: bool, top: int) -> tuple[int, int]:
    """(lowest, top) exponent of a shift format (the lowest cut at float64's reach)."""
    return max(top - exponent_count(kind, weight_bits, zero) + 1, _LOWEST_EXPONENT), top


def legal_magnitudes(kind: str, low: int, top: int, zero: bool) -> np.ndarray:
    """Sorted distinct magnitudes a LightNN weight can take (0 first when the format has a zero)."""
    powers = np.ldexp(1.0, np.arange(low, top + 1))
    if kind == "lightnn1":
        mags = powers
    elif kind == "lightnn2":
        mags = (powers[:, None] + powers[None, :]).ravel()
        if zero:  # the zero code of the second field means "no second shift"
            mags = np.concatenate([mags, powers])
    else:
        raise ValueError(f"legal_magnitudes: {kind} is not a LightNN format")
    if zero:
        mags = np.concatenate([[0.0], mags])
    return np.unique(mags)


def quantize_power_of_two(w: np.ndarray, low: int, top: int, rounding: str, zero: bool,
                          u: np.ndarray | None = None) -> np.ndarray:
    """+-2^e with e = round(log2|w|) (eq 7.2) clamped to [low, top]; below `low`: +-2^low, or 0 with `zero`."""
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    with np.errstate(divide="ignore"):
        y = np.log2(np.where(a > 0, a, 1.0))
    if rounding == "nearest":
        e = np.copysign(np.floor(np.abs(y) + 0.5), y)
    elif rounding == "stochastic":
        if u is None or np.shape(u) != w.shape:
            raise ValueError("stochastic rounding needs one uniform number per weight")
        e = np.floor(y + u)
    else:
        raise ValueError(f"power-of-two weights round nearest or stochastic, got {rounding!r}")
    under = e < low
    v = np.ldexp(1.0, np.clip(e, low, top).astype(np.int64))
    if zero:
        v = np.where(under, 0.0, v)
    v = np.where(a == 0, 0.0, v)
    return np.copysign(v, w)


def quantize_to_set(w: np.ndarray, legal: np.ndarray, rounding: str, u: np.ndarray | None = None) -> np.ndarray:
    """Round |w| onto the sorted magnitudes `legal` (LightNN): nearest (ties up) or stochastic between the two legal
    values around it (the upper with probability (|w| - lower) / (upper - lower)); outside the set: its ends.
    Exact zeros stay 0."""
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    hi_i = np.clip(np.searchsorted(legal, a, side="left"), 0, len(legal) - 1)  # first legal >= a (or the last)
    lo_i = np.clip(hi_i - 1, 0, len(legal) - 1)
    lo_i = np.where(legal[hi_i] == a, hi_i, lo_i)  # exactly legal: both neighbours are the value
    lo, hi = legal[lo_i], legal[hi_i]
    gap = hi - lo
    if rounding == "nearest":
        v = np.where(a - lo >= hi - a, hi, lo)
    elif rounding == "stochastic":
        if u is None or np.shape(u) != w.shape:
            raise ValueError("stochastic rounding needs one uniform number per weight")
        p = np.divide(a - lo, gap, out=np.zeros_like(a), where=gap > 0)
        v = np.where(u < p, hi, lo)
    else:
        raise ValueError(f"LightNN weights round nearest or stochastic, got {rounding!r}")
    v = np.where(a >= legal[-1], legal[-1], v)
    v = np.where(a <= legal[0], legal[0], v)
    v = np.where(a == 0, 0.0, v)
    return np.copysign(v, w)
