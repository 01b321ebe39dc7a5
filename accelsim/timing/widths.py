"""Bits per stored value of each data type: what a number format changes in the timing models.

A run's number format (accelsim.functional.formats.format_bits) decides how many bits a weight and an activation
occupy in every buffer, on the NoC and in DRAM; partial sums stay at the architecture's `word_bits` (the accumulator's
stored width is the hardware's, not the format's: the formats accumulate at full precision, B.2/B.3). Both timing
models take one `DataWidths` when they are built (`timing_model(arch, graph, batch, widths)`), because SnaPEA plans
and validates every layer's schedule before the first image; without one they use `word_bits` for everything, the
behaviour before formats reached the timing side. See docs/model.md ("Number formats in timing and energy").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from accelsim.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from accelsim.arch import ArchSpec

_MAX_BITS = 64


class _StoredBits(Protocol):
    """What `DataWidths.of_format` reads from a format's cost summary (accelsim.functional.formats.FormatBits, a
    frozen dataclass: read-only members)."""

    @property
    def weight_bits(self) -> int: ...

    @property
    def activation_bits(self) -> int: ...


@dataclass(frozen=True)
class DataWidths:
    """Stored bits per weight, per activation (layer inputs and outputs) and per partial sum.

    Buffer capacities in values are `bytes * 8 // bits` of the data type they hold; traffic is `values * bits`.
    MAC events are logged at `psum_bits` (the datapath word) and priced per format by `accelsim.energy.event_factors`.
    """

    weight_bits: int
    activation_bits: int
    psum_bits: int

    def __post_init__(self) -> None:
        for name in ("weight_bits", "activation_bits", "psum_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_BITS:
                raise ConfigError(f"data widths: {name} must be an integer in [1, {_MAX_BITS}], got {value!r}")

    @classmethod
    def words(cls, arch: ArchSpec) -> DataWidths:
        """Every value one `arch.word_bits` word (the timing models' default when no format is given)."""
        return cls(arch.word_bits, arch.word_bits, arch.word_bits)

    @classmethod
    def of_format(cls, arch: ArchSpec, fmt: _StoredBits) -> DataWidths:
        """The stored widths of a number format (`format_bits(nf)`) on `arch`: partial sums at `arch.word_bits`."""
        return cls(int(fmt.weight_bits), int(fmt.activation_bits), arch.word_bits)

    @classmethod
    def resolve(cls, arch: ArchSpec, widths: DataWidths | None) -> DataWidths:
        """`widths`, or `words(arch)` for None (checked to be a DataWidths)."""
        if widths is None:
            return cls.words(arch)
        if not isinstance(widths, DataWidths):
            raise ConfigError(f"data widths must be a DataWidths, got {type(widths).__name__}")
        return widths

    def as_dict(self) -> dict[str, int]:
        return {"weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
                "psum_bits": self.psum_bits}
