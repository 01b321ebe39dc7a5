"""The words a datapath stores: the bit patterns of a number format, for fault injection and anything else that
works on stored bits.

A `StoredWord` knows its width, where its sign bit is, how values become bit patterns (`encode`) and back
(`decode`), and how to draw a value uniformly over its representable range (B.13's DRAM error model). Bit patterns
are `uint64` arrays holding the word in their low `bits` bits. A number format joins fault injection by implementing
this protocol and returning it from `stored_word` (below); nothing else in accelsim.functional.faults depends on the
format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from accelsim.errors import InternalError
from accelsim.functional.numberformat import NumberFormat


@runtime_checkable
class StoredWord(Protocol):
    """How one number format stores a value in memory."""

    @property
    def bits(self) -> int:
        """Width of the stored word (<= 64)."""

    @property
    def sign_bit(self) -> int | None:
        """Position of the sign bit (0 = least significant), None for formats without one."""

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values (on the format's grid) -> uint64 bit patterns; a value the format cannot hold is an InternalError."""

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """uint64 bit patterns (low `bits` bits) -> float64 values."""

    def random_codes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` bit patterns of values drawn uniformly over the format's representable range."""


@dataclass(frozen=True)
class FixedPointWord:
    """Two's complement `bits`-wide code of a value on the grid 2**-fl (dynamic fixed point, B.1/B.2)."""

    bits: int
    fl: int

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 62:
            raise InternalError(f"fixed-point word of {self.bits} bits (expected 2..62)")

    @property
    def sign_bit(self) -> int:
        return self.bits - 1

    def encode(self, values: np.ndarray) -> np.ndarray:
        scaled = np.asarray(values, dtype=np.float64) * math.ldexp(1.0, self.fl)
        codes = np.rint(scaled)
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        if codes.size and (not np.array_equal(codes, scaled) or codes.min() < lo or codes.max() > hi):
            raise InternalError(f"values are not {self.bits}-bit codes on the grid 2^-{self.fl} (a fault model was "
                                "given the wrong word format)")
        return codes.astype(np.int64).astype(np.uint64) & np.uint64((1 << self.bits) - 1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        c = np.asarray(codes, dtype=np.uint64).astype(np.int64)
        c = np.where(c >= 2 ** (self.bits - 1), c - 2**self.bits, c)
        return c.astype(np.float64) * math.ldexp(1.0, -self.fl)

    def random_codes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # Every pattern is a valid code: uniform patterns are uniform over the representable range.
        return rng.integers(0, 2**self.bits, size=n, dtype=np.uint64)


@dataclass(frozen=True)
class Float32Word:
    """IEEE-754 binary32: sign bit 31, exponent bits 30..23, mantissa 22..0."""

    @property
    def bits(self) -> int:
        return 32

    @property
    def sign_bit(self) -> int:
        return 31

    def encode(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values)
        f = v.astype(np.float32)
        if v.dtype != np.float32 and not np.array_equal(f.astype(v.dtype), v, equal_nan=True):
            raise InternalError("values are not float32 numbers (a fault model was given the wrong word format)")
        return f.view(np.uint32).astype(np.uint64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, dtype=np.uint64).astype(np.uint32).view(np.float32).astype(np.float64)

    def random_codes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        top = float(np.finfo(np.float32).max)
        return self.encode(rng.uniform(-top, top, size=n).astype(np.float32))


WORD_FORMATS = ("dynamic_fixed", "fixed", "float32")  # number formats with a stored-word model


def has_stored_word(nf: NumberFormat) -> bool:
    """Whether faults can be injected into this format's stored words."""
    return nf.kind in WORD_FORMATS


def stored_word(nf: NumberFormat, data: str, fl: int | None) -> StoredWord:
    """The stored word of `data` ("weight" or "activation") in number format `nf`, for a group of values with
    fractional length `fl` (before truncation: a word that drops k LSBs stores bits - k bits on the grid 2^-(fl-k))."""
    if nf.kind in ("dynamic_fixed", "fixed"):
        if fl is None:
            raise InternalError("a fixed-point word needs its fractional length")
        bits = nf.stored_weight_bits if data == "weight" else nf.stored_activation_bits
        lsbs = nf.truncate_lsbs if nf.rounding == "truncate" else 0
        return FixedPointWord(bits, fl - lsbs)
    if nf.kind == "float32":
        return Float32Word()
    raise InternalError(f"number format '{nf.kind}' has no stored-word model; implement accelsim.functional.words."
                        "StoredWord for it and return it from stored_word()")
