"""Fixed point (Ristretto, docs/formats.md B.1/B.2): the grids of the accelerator's default datapath format.

Every blob (layer output) and every layer's weights get their own fractional length FL, chosen from the largest
magnitude seen on calibration data. Values are kept as float64 numbers that lie exactly on the format's grid
(`code * 2**-FL`), so a float64 accumulation of 16-bit x 16-bit products is exact (53-bit mantissa) and the sign
decisions of the PAU are the ones integer hardware would make.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.numberformat import (  # noqa: F401  (re-exported: the declaration used to live here)
    NUMBER_FORMATS,
    ROUNDINGS,
    NumberFormat,
    NumberFormatKind,
    Rounding,
)


def integer_length(max_abs: float, rule: str = "fit", role: str = "weights") -> int:
    """Bits left of the binary point, sign included, of a group whose largest magnitude is `max_abs`.

    `rule` (docs/formats.md): `fit` = floor(log2 max) + 2, the smallest IL with no saturation (accelsim's default);
    `thesis` = Ristretto eq 5.2, ceil(log2(max + 1)) magnitude bits plus the sign, one fewer for layer outputs;
    `tool` = Ristretto's released code, ceil(log2 max) + 1 for weights and ceil(log2 max) for every blob (input
    included), which saturates the top of a blob's range. `role`: "weights", "output" (a layer's output blob) or
    "input" (the network's input blob). A zero or empty range gets IL = 1 (only the sign bit).
    """
    if not np.isfinite(max_abs):
        raise ConfigError(f"cannot choose a fixed-point format for a range with non-finite maximum {max_abs}")
    if role not in ("weights", "output", "input"):
        raise ValueError(f"integer_length: role must be weights, output or input, got {role!r}")
    if max_abs <= 0:
        return 1
    if rule == "fit":
        return int(math.floor(math.log2(max_abs))) + 2
    if rule == "thesis":
        il = int(math.ceil(math.log2(max_abs + 1.0))) + 1
        return il - 1 if role == "output" else il
    if rule == "tool":
        il = int(math.ceil(math.log2(max_abs)))
        return il + 1 if role == "weights" else il
    raise ConfigError(f"unknown integer-length rule {rule!r}; expected fit, thesis or tool")


def fractional_length(max_abs: float, bits: int, il_offset: int = 0, rule: str = "fit", role: str = "weights") -> int:
    """FL of a `bits`-wide dynamic fixed-point group whose largest magnitude is `max_abs` (IL by `rule`)."""
    return bits - (integer_length(max_abs, rule, role) + il_offset)


# Below this many values the NumPy path is about as fast, and a short call need not load the compiled kernel.
_NUMBA_MIN_SIZE = 4096


def quantize(x: np.ndarray, fl: int, bits: int, rounding: str = "nearest") -> np.ndarray:
    """Round `x` to the grid 2**-fl and saturate to a `bits`-wide two's complement code; returns float64 values.

    NaN stays NaN and +-inf saturate, as `np.clip` does. Large C-contiguous float arrays take one fused Numba pass
    (the forward pass quantises every blob, and the four NumPy passes were a third of its time); anything else the
    NumPy expression, which defines the result.
    """
    scale, lo, hi = grid_constants(fl, bits)
    if (
        type(x) is np.ndarray
        and x.dtype in (np.float64, np.float32)
        and x.size >= _NUMBA_MIN_SIZE
        and x.flags.c_contiguous
    ):
        out = np.empty(x.shape, dtype=np.float64)
        _quantize_flat(x.reshape(-1), out.reshape(-1), scale, lo, hi, rounding == "nearest")
        return out
    return _quantize_numpy(x, scale, hi, rounding)


def grid_constants(fl: int, bits: int) -> tuple[float, float, float]:
    """(scale, lowest code, highest code) of the grid 2**-fl with `bits`-wide two's complement codes."""
    hi = float(2 ** (bits - 1) - 1)
    return math.ldexp(1.0, fl), -hi - 1.0, hi


def _quantize_numpy(x: np.ndarray, scale: float, hi: float, rounding: str) -> np.ndarray:
    codes = np.asarray(x, dtype=np.float64) * scale
    codes = np.floor(codes + 0.5) if rounding == "nearest" else np.floor(codes)
    np.clip(codes, -hi - 1.0, hi, out=codes)
    return codes / scale


@numba.njit(cache=True)
def _quantize_flat(x, out, scale, lo, hi, nearest):  # pragma: no cover - compiled
    """`_quantize_numpy` element by element: the same IEEE operations in the same order, so the same bits.

    One thread: the pass is memory bound, and on the shared 2-core machine a parallel region was slower (each launch
    waits for a busy core).
    """
    for i in range(x.size):
        out[i] = round_onto_grid(np.float64(x[i]), scale, lo, hi, nearest)


@numba.njit(inline="always")
def round_onto_grid(v, scale, lo, hi, nearest):  # pragma: no cover - compiled
    """One value of `_quantize_numpy`, in its IEEE operations and order; for compiled loops (also ops' conv)."""
    c = v * scale
    c = np.floor(c + 0.5) if nearest else np.floor(c)
    if c > hi:  # comparisons are false for NaN, which passes through as in np.clip
        c = hi
    elif c < lo:
        c = lo
    return c / scale


def saturation_fraction(x: np.ndarray, fl: int, bits: int) -> float:
    """Share of values that the format clips (a calibration health figure for reports)."""
    if x.size == 0:
        return 0.0
    limit = (2 ** (bits - 1)) * math.ldexp(1.0, -fl)
    return float(np.count_nonzero(np.abs(x) >= limit)) / x.size
