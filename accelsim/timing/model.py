"""The one interface every timing model implements, and the choice of model by an architecture's dataflow.

A timing model observes the functional pass (per-window MAC counts of each conv layer, batch by batch) and, when the
pass is over, turns what it saw into per-layer cycles, cycle classes and an event log (`LayerTiming`). A dense
design (Eyeriss) ignores the MAC counts and times every costed layer from its shape, with the input zero shares of
the pass for zero gating.

The run's number format reaches a model as `DataWidths` (bits per stored weight, activation and partial sum) when it
is built, not in `PassFacts`: the widths are a setting known before any image, and SnaPEA validates and maps every
layer (buffer capacities, portion sizes) at construction and fixes schedules while it observes, before `finish`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from accelsim.arch import ArchSpec
from accelsim.nets.graph import Graph
from accelsim.timing.events import LayerTiming
from accelsim.timing.widths import DataWidths

if TYPE_CHECKING:  # pragma: no cover
    from accelsim.functional.reorder import WeightStream


@dataclass(frozen=True)
class PassFacts:
    """What the functional pass tells a timing model at the end besides the MAC counts it observed."""

    batch: int = 1  # images a design maps together (Eyeriss RS batch n; SnaPEA fc weights fetched once per batch)
    input_zero_fraction: Mapping[str, float] = field(default_factory=dict)  # layer -> share of zero input values


class MapperClock:
    """Wall seconds a timing model spends in its mapping search (`with clock: ...` around each search call; not
    re-entrant): the run reports them (summary.json `mapper_s`), so that what the search costs is visible per run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> MapperClock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


class TimingModel(Protocol):
    """observe(...) once per conv layer and batch of the functional pass, then finish(facts) once."""

    arch: ArchSpec
    widths: DataWidths  # the stored bits per weight, activation and partial sum the model was built with
    mapper_clock: MapperClock  # the time spent in the model's mapping search so far

    def observe(self, layer_name: str, macs: np.ndarray, pau: bool = True,
                stream: WeightStream | None = None) -> None:
        """Add one batch of per-window MAC counts (images, kernels, Ho, Wo) of a conv layer.

        `pau`: the layer ran with early termination; `stream`: its weight and index buffer contents (stored length
        and where the PAU checks start, per kernel), or None.
        """

    def finish(self, facts: PassFacts) -> dict[str, LayerTiming]:
        """Per-image LayerTiming of every layer the design spends time on, in network order."""


def timing_model(arch: ArchSpec, graph: Graph, batch: int = 1, widths: DataWidths | None = None) -> TimingModel:
    """The timing model of `arch`'s dataflow for `graph`, mapping `batch` images together, its data stored at
    `widths` (the run's number format, `DataWidths.of_format`; default `arch.word_bits` for every value). Validates
    every layer against the design up front."""
    return _REGISTRY[arch.dataflow]()(arch, graph, batch, widths)


def _snapea() -> Callable[..., Any]:
    from accelsim.timing.snapea import SnaPEATiming

    return SnaPEATiming


def _eyeriss() -> Callable[..., Any]:
    from accelsim.timing.eyeriss import EyerissTiming

    return EyerissTiming


_REGISTRY: dict[str, Callable[[], Callable[..., Any]]] = {"snapea": _snapea, "eyeriss": _eyeriss}
