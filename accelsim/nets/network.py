"""A network with its weights: the graph plus one float32 tensor per `<layer>.<tensor>` key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import WeightError
from accelsim.nets.graph import Graph


@dataclass(frozen=True)
class Network:
    """A graph and its weights. `weights` is empty for a shape-only network (dense timing needs no values)."""

    graph: Graph
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "shape-only"  # where the weights came from, for reports

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def shape_only(self) -> bool:
        return not self.weights

    def __post_init__(self) -> None:
        if self.weights:
            check_weights(self.graph, self.weights, self.source)

    def tensor(self, key: str) -> np.ndarray:
        try:
            return self.weights[key]
        except KeyError:
            raise WeightError(f"network '{self.name}' has no tensor '{key}' (weights from {self.source})") from None


def check_weights(graph: Graph, weights: Mapping[str, np.ndarray], source: str) -> None:
    """Every tensor the graph needs is present with its exact shape, and nothing else is; errors name the tensor."""
    problems = shape_problems(graph, {k: tuple(np.shape(v)) for k, v in weights.items()})
    problems += [f"tensor '{k}' holds NaN or infinite values" for k, shape in graph.weight_shapes().items()
                 if k in weights and tuple(np.shape(weights[k])) == tuple(shape)
                 and not np.all(np.isfinite(weights[k]))]
    if problems:
        raise WeightError(f"weights from {source} do not match network '{graph.name}': " + "; ".join(problems))


def shape_problems(graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """What keeps tensors of these names and shapes from being `graph`'s weights (empty when they fit exactly)."""
    expected = graph.weight_shapes()
    missing = [k for k in expected if k not in shapes]
    extra = [k for k in shapes if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing tensor(s): {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected tensor(s) not used by any layer: {', '.join(extra)}")
    for k, shape in expected.items():
        if k in shapes and tuple(shapes[k]) != tuple(shape):
            problems.append(f"tensor '{k}' has shape {list(shapes[k])}, the graph expects {list(shape)}")
    return problems
