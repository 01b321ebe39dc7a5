"""The event log: how often each hardware component did each kind of thing, the input of the energy model.

Every entry carries the bits one event moves or processes, so energy = count x bits x pJ/bit of the component's
energy class (see accelsim.energy). Events that cost no energy by themselves (stall cycles, idle lane cycles) have
bits = 0 unless the energy table gives their class a per-bit cost. An event kind that moves values of several widths
(a NoC carrying activations and weights of a number format whose widths differ, `add_mixed`) logs the count-weighted
mean width, so count x bits is still the bits moved and a per-event cost is still charged once per event; where the
widths agree the width is that integer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

EVENT_COLUMNS = ("design", "layer", "component", "event", "count", "bits")


@dataclass
class EventLog:
    """Counts per (component, event); `bits[(component, event)]` is the width of one event (the count-weighted mean
    where the event kind carries values of several widths, see `add_mixed`)."""

    counts: dict[tuple[str, str], float] = field(default_factory=dict)
    bits: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, component: str, event: str, count: float, bits: float = 0) -> None:
        key = (component, event)
        if key in self.bits and self.bits[key] != bits:
            raise ValueError(f"event {component}.{event} logged with {bits} bits, earlier with {self.bits[key]}")
        self.counts[key] = self.counts.get(key, 0.0) + float(count)
        self.bits[key] = bits

    def add_mixed(self, component: str, event: str, parts: Iterable[tuple[float, float]]) -> None:
        """Add events of one kind that carry values of different widths: `parts` are (count, bits) pairs (and the
        entry already logged, if any, is one more). The width becomes the count-weighted mean (`mixed_width`)."""
        key = (component, event)
        parts = list(parts)
        if key in self.bits:
            parts.insert(0, (self.counts[key], self.bits[key]))
        if not parts:
            return
        total = sum(c for c, _ in parts)
        self.counts[key] = float(total)
        self.bits[key] = mixed_width(parts)

    def merge(self, other: EventLog) -> None:
        for key, count in other.counts.items():
            if key in self.bits and self.bits[key] != other.bits[key]:
                self.add_mixed(key[0], key[1], [(count, other.bits[key])])
            else:
                self.add(key[0], key[1], count, other.bits[key])

    def scaled(self, factor: float) -> EventLog:
        """The same log with every count multiplied (e.g. by 1/images for per-image figures)."""
        return EventLog({k: v * factor for k, v in self.counts.items()}, dict(self.bits))

    def count(self, component: str, event: str) -> float:
        return self.counts.get((component, event), 0.0)

    def to_frame(self, design: str, layer: str) -> pd.DataFrame:
        rows = [(design, layer, c, e, n, self.bits[(c, e)]) for (c, e), n in sorted(self.counts.items())]
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def mixed_width(parts: Iterable[tuple[float, float]]) -> float:
    """The width of one event of a kind made of (count, bits) parts: the common width where every part with events
    has the same (an int stays an int), else sum(count x bits) / sum(count). With no events: the first part's."""
    parts = list(parts)
    live = [(c, b) for c, b in parts if c]
    widths = {b for _, b in live} or {parts[0][1]}
    if len(widths) == 1:
        return live[0][1] if live else parts[0][1]
    return math.fsum(c * b for c, b in live) / math.fsum(c for c, _ in live)


@dataclass
class LayerTiming:
    """What a timing model says about one layer, as per-image averages over the images simulated."""

    layer: str
    cycles: float
    events: EventLog
    macs_performed: float
    mac_units: int  # MAC units of the design (lanes x PEs), for utilisation
    active_pes: float  # average number of PEs doing useful work while the layer runs
    # cycle classes, e.g. busy / idle_lane / barrier / dram_stall
    breakdown: dict[str, float] = field(default_factory=dict)
    mapping: str = ""  # the schedule the model chose for the layer, as a short label ("" where a model has none)
    # the same layer on the same design without early termination (every window at its kernel's full stored
    # length, same mapper), for the split of the speedup; None where the model has no such counterpart
    dense: LayerTiming | None = None

    @property
    def dense_cycles(self) -> float:
        """Cycles of the dense counterpart (this layer's own cycles where there is none)."""
        return self.dense.cycles if self.dense is not None else self.cycles

    @property
    def utilization(self) -> float:
        """MACs performed / (MAC units x cycles): the share of MAC-unit cycles doing work."""
        return self.macs_performed / (self.mac_units * self.cycles) if self.cycles else float("nan")
