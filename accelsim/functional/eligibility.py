"""Which layers may terminate early: inputs provably non-negative and a ReLU right after (docs/model.md A.7-8, 12)."""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.nets.graph import (
    FC,
    Conv,
    Graph,
)


# Layers whose output is non-negative whenever all their inputs are.
@dataclass(frozen=True)
class Eligibility:
    """Whether a layer's windows may be cut short, and if not, why (shown in the run's report)."""

    eligible: bool
    reason: str = ""


def nonnegative_blobs(graph: Graph) -> dict[str, bool]:
    """For every blob, whether its values are provably >= 0 (ReLU outputs and what only pools/concats them)."""
    nonneg = {graph.input_blob: graph.preprocess.nonnegative}
    for layer in graph.layers:
        inputs_nonneg = all(nonneg[b] for b in layer.inputs)
        if layer.output_nonnegative or getattr(layer, "relu", False):
            nonneg[layer.output] = True
        elif layer.keeps_sign:
            nonneg[layer.output] = inputs_nonneg
        else:  # conv / fc without ReLU, batch-norm: signed
            nonneg[layer.output] = False
    return nonneg


def early_termination_eligibility(graph: Graph) -> dict[str, Eligibility]:
    """Eligibility of every conv and fc layer of `graph`, keyed by layer name."""
    nonneg = nonnegative_blobs(graph)
    out: dict[str, Eligibility] = {}
    for layer in graph.layers:
        if isinstance(layer, FC):
            out[layer.name] = Eligibility(False, "fully connected layers run dense (docs/model.md A.7-12)")
        elif isinstance(layer, Conv):
            if not nonneg[layer.inputs[0]]:
                why = (
                    "its input is the preprocessed image, which can be negative (mean subtraction)"
                    if layer.inputs[0] == graph.input_blob
                    else f"its input '{layer.inputs[0]}' can be negative (no ReLU before it)"
                )
                out[layer.name] = Eligibility(False, why)
            elif not layer.relu:
                out[layer.name] = Eligibility(False, "no ReLU follows it, so a negative sum is not known to become 0")
            else:
                out[layer.name] = Eligibility(True)
    return out
