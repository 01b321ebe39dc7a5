"""Content digests of arrays, fast enough to key caches on large ones (a layer's MAC profile: megabytes per layer).

blake2b alone runs at about 1 GB/s here; the mapper hashes 14.8 MiB of profiles per SqueezeNet v1.1 run (2 profile
images), which took 24 ms with blake2b over a copy of each, 11 ms this way (benchmarks/snapea_mapping.md, stop 24).
Here an array of 1 MiB or more is first reduced, chunk by chunk, to 128 bits per MiB by four xxHash64-style lanes in
compiled code (about 7 GB/s on one core; one core, because a parallel kernel costs more to load in a fresh process
than it saves here), and blake2b digests those values in order with the shapes and dtypes; smaller arrays go to
blake2b as they are (a run of small layers never loads the compiled code). Not for adversarial input (the chunk
reduction is not a cryptographic hash): for cache keys of data the program made.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

_P1 = np.uint64(11400714785074694791)  # xxHash64's primes
_P2 = np.uint64(14029467366897019727)
_P3 = np.uint64(1609587929392839161)
_P4 = np.uint64(9650029242287828579)
CHUNK_WORDS = 1 << 17  # 64-bit words per chunk (1 MiB)


@numba.njit(inline="always")
def _rotl(x, r):  # pragma: no cover - compiled
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _round(acc, w):  # pragma: no cover - compiled
    return _rotl(acc + w * _P2, 31) * _P1


@numba.njit(cache=True)
def _chunk_values(words, chunk, out):  # pragma: no cover - compiled
    """out[c] = two 64-bit values of words[c x chunk : (c + 1) x chunk]: four interleaved xxHash64 lanes, combined
    two ways, then the last words (fewer than four) folded into both."""
    n = words.shape[0]
    for c in range(out.shape[0]):
        lo = c * chunk
        hi = min(n, lo + chunk)
        a1 = _P1 + _P2
        a2 = _P2
        a3 = np.uint64(0)
        a4 = np.uint64(0) - _P1
        i = lo
        while i + 4 <= hi:
            a1 = _round(a1, words[i])
            a2 = _round(a2, words[i + 1])
            a3 = _round(a3, words[i + 2])
            a4 = _round(a4, words[i + 3])
            i += 4
        h = _rotl(a1, 1) + _rotl(a2, 7) + _rotl(a3, 12) + _rotl(a4, 18)
        g = _rotl(a1, 5) ^ _rotl(a2, 23) ^ _rotl(a3, 41) ^ _rotl(a4, 53)
        while i < hi:
            h = _rotl(h ^ _round(np.uint64(0), words[i]), 27) * _P1 + _P4
            g = _rotl(g + words[i] * _P3, 29) * _P2
            i += 1
        out[c, 0] = h
        out[c, 1] = g


def array_digest(*arrays: np.ndarray | None, size: int = 16) -> bytes:
    """A `size`-byte digest of the arrays' contents, shapes and dtypes, in order (None counts as a value)."""
    h = hashlib.blake2b(digest_size=size)
    for a in arrays:
        if a is None:
            h.update(b"None;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        raw = a.reshape(-1).view(np.uint8)
        if len(raw) < 8 * CHUNK_WORDS:
            h.update(raw.data)
            continue
        whole = len(raw) // 8 * 8
        words = raw[:whole].view(np.uint64)
        values = np.zeros((-(-len(words) // CHUNK_WORDS), 2), np.uint64)
        _chunk_values(words, CHUNK_WORDS, values)
        h.update(values.tobytes())
        h.update(raw[whole:].tobytes())  # the last bytes (fewer than eight) as they are
    return h.digest()
