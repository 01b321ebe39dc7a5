"""Seeded stochastic rounding (Ristretto eq 2.8, LightNN's weight rounding) whose random numbers never depend on how
the images are batched or shared between workers.

Each rounded value gets its own uniform number from a counter-based generator: u = mix(key + i * golden), where i is
the value's position inside its image (or weight tensor) and `key` mixes the seed, the tensor's name and, for
activations, a digest of that image's values before rounding. The same image therefore sees the same numbers
whatever batch it is in and whichever process runs it, and exact mode (whose outputs equal dense mode's bit for bit)
rounds the next layer exactly as dense mode does. `mix` is the SplitMix64 finaliser (Steele et al., OOPSLA 2014):
well spread 64-bit outputs from consecutive counters.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

from accelsim.functional.fixedpoint import grid_constants

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0**-53


def name_key(seed: int, *names: str) -> np.uint64:
    """A 64-bit key from a seed and names (blake2b: stable across processes, unlike Python's salted hash)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(int(seed).to_bytes(8, "little", signed=False))
    for name in names:
        h.update(b"\0" + name.encode())
    return np.uint64(int.from_bytes(h.digest(), "little"))


@numba.njit(inline="always")
def _mix(z):  # pragma: no cover - compiled
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(inline="always")
def _uniform(key, i):  # pragma: no cover - compiled
    """The uniform number in [0, 1) of counter i under `key` (53 random bits)."""
    return np.float64(_mix(key + np.uint64(i) * _GOLDEN) >> _S11) * _TO_UNIT


@numba.njit(cache=True)
def _uniforms(key, n, out):  # pragma: no cover - compiled
    for i in range(n):
        out[i] = _uniform(key, i)


def uniforms(key: np.uint64, n: int) -> np.ndarray:
    """The first `n` uniform numbers of `key` (for tests and for rounding small tensors in NumPy)."""
    out = np.empty(n)
    _uniforms(np.uint64(key), n, out)
    return out


@numba.njit(cache=True)
def _digests(rows, key, out):  # pragma: no cover - compiled
    """out[r] = a 64-bit digest of row r's float64 bit patterns and positions, under `key`."""
    for r in range(rows.shape[0]):
        acc = np.uint64(0)
        row = rows[r]
        for i in range(row.size):
            acc += _mix(row[i] ^ (np.uint64(i) * _GOLDEN))
        out[r] = _mix(acc ^ key)


def image_keys(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """One key per image (the leading axis of `x`): `key` mixed with a digest of that image's values.

    -0.0 and 0.0 digest alike (a zero's sign changes no rounding), so does every NaN.
    """
    rows = np.ascontiguousarray(x, dtype=np.float64).reshape(len(x), -1).copy()
    rows[rows == 0] = 0.0
    rows[np.isnan(rows)] = np.nan
    out = np.empty(len(x), dtype=np.uint64)
    _digests(rows.view(np.uint64), np.uint64(key), out)
    return out


@numba.njit(cache=True)
def _stochastic_rows(rows, keys, scale, lo, hi, out):  # pragma: no cover - compiled
    for r in range(rows.shape[0]):
        k = keys[r]
        for i in range(rows.shape[1]):
            c = np.floor(rows[r, i] * scale + _uniform(k, i))
            if c > hi:
                c = hi
            elif c < lo:
                c = lo
            out[r, i] = c / scale


def stochastic_fixed(x: np.ndarray, fl: int, bits: int, keys: np.ndarray) -> np.ndarray:
    """Stochastic rounding onto the grid 2**-fl with `bits`-wide two's complement codes (Ristretto eq 2.8), then
    saturation; `keys` holds one key per row of `x` (per image, or one for a weight tensor). float64 result.

    Code = floor(x * 2**fl + u) with u uniform in [0, 1): the upper neighbour with probability equal to the distance
    from the lower one, in steps, so the expected code is x * 2**fl (unbiased) wherever no saturation happens.
    """
    scale, lo, hi = grid_constants(fl, bits)
    rows = np.ascontiguousarray(x, dtype=np.float64).reshape(len(keys), -1)
    out = np.empty_like(rows)
    _stochastic_rows(rows, np.asarray(keys, dtype=np.uint64), scale, lo, hi, out)
    return out.reshape(np.shape(x))


def row_uniforms(keys: np.ndarray, n: int) -> np.ndarray:
    """(len(keys), n) uniform numbers: row r holds the first n numbers of keys[r] (the numbers the kernels use)."""
    keys = np.asarray(keys, dtype=np.uint64)
    out = np.empty((len(keys), n))
    for r, k in enumerate(keys):
        _uniforms(k, n, out[r])
    return out
