"""Inference-time graph rewrites, applied at load time so a network is always held folded and fused.

- `fold_batchnorm`: a batch-norm right after a conv becomes part of that conv's weights and bias (the accelerator
  runs convolutions, not normalisations).
- `fuse_relu`: a standalone ReLU becomes the `relu` flag of the conv / fc / add before it, which is what makes a
  conv eligible for SnaPEA's early termination; dropout (identity at inference) is dropped.

Both are pure: they return a new Graph (and weights dict) and never modify their arguments. Layers keep their names,
so weight keys stay `<layer>.<tensor>`; consumers of a removed layer's blob are rewired to the surviving blob.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from accelsim.errors import NetworkError, WeightError
from accelsim.nets.graph import FC, Add, BatchNorm, Conv, Dropout, Graph, Layer, ReLU

log = logging.getLogger(__name__)

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def fold_batchnorm(graph: Graph, weights: Mapping[str, np.ndarray]) -> tuple[Graph, dict[str, np.ndarray]]:
    """Fold every batch-norm into the conv it follows: w' = w*s, b' = beta + (b - mean)*s, s = gamma/sqrt(var+eps).

    The conv must be the batch-norm's producer, have no other consumer and no fused ReLU; anything else is a
    NetworkError naming the batch-norm. With empty `weights` (a shape-only network) only the graph is rewritten.
    """
    producers = _producers(graph)
    consumers = graph.consumers()
    shape_only = not weights
    new_weights = dict(weights)
    rename: dict[str, str] = {}
    folded: dict[str, Conv] = {}  # conv name -> conv with bias
    dropped: set[str] = set()
    for bn in graph.layers:
        if not isinstance(bn, BatchNorm):
            continue
        src = bn.inputs[0]
        conv = producers.get(src)
        why = None
        if not isinstance(conv, Conv):
            what = f"{conv.type_name} '{conv.name}'" if conv is not None else "the network input"
            why = f"its input comes from {what}, not a conv"
        elif conv.name in folded:
            why = f"conv '{conv.name}' already has a batch-norm folded into it"
        elif conv.relu:
            why = f"conv '{conv.name}' applies a ReLU before it"
        elif [c.name for c in consumers.get(src, [])] != [bn.name] or src == graph.output_blob:
            others = [c.name for c in consumers.get(src, []) if c is not bn]
            why = f"the output of conv '{conv.name}' is also used by {others or 'the network output'}"
        if why:
            raise NetworkError(f"network '{graph.name}': cannot fold batchnorm '{bn.name}': {why}")
        assert isinstance(conv, Conv)
        if conv.out_channels != bn.channels:
            raise NetworkError(
                f"network '{graph.name}': cannot fold batchnorm '{bn.name}' ({bn.channels} channels) into conv "
                f"'{conv.name}' ({conv.out_channels} output channels)"
            )
        folded[conv.name] = replace(conv, bias=True)
        dropped.add(bn.name)
        rename[bn.output] = conv.output
        if not shape_only:
            _fold_tensors(conv, bn, new_weights)
    if not dropped:
        return graph, new_weights
    layers = [_rewire(folded.get(l.name, l), rename) for l in graph.layers if l.name not in dropped]
    log.debug("folded %d batch-norm layer(s) of %s", len(dropped), graph.name)
    return _rebuild(graph, layers, rename), new_weights


def fuse_relu(graph: Graph) -> Graph:
    """Turn each standalone ReLU into the `relu` flag of the conv / fc / add it follows, and drop dropout layers.

    A ReLU is fused only when that producer has no fused ReLU yet and the ReLU is the only reader of its output;
    other ReLUs stay as layers. Weights are unaffected (neither ReLU nor dropout owns any).
    """
    # 1. Dropout is the identity at inference: readers of its blob read its input instead.
    rename = {l.output: l.inputs[0] for l in graph.layers if isinstance(l, Dropout)}
    layers = [_rewire(l, rename) for l in graph.layers if not isinstance(l, Dropout)]
    output = _resolve(graph.output_blob, rename)
    # 2. ReLU after a single-use conv / fc / add becomes that layer's flag.
    producers = {l.output: l for l in layers}
    readers: dict[str, int] = {}
    for l in layers:
        for b in l.inputs:
            readers[b] = readers.get(b, 0) + 1
    fused: dict[str, Layer] = {}
    relu_rename: dict[str, str] = {}
    removed: set[str] = set()
    for l in layers:
        if not isinstance(l, ReLU):
            continue
        src = l.inputs[0]
        p = fused.get(producers[src].name, producers[src]) if src in producers else None
        if isinstance(p, (Conv, FC, Add)) and not p.relu and readers[src] == 1 and src != output:
            fused[p.name] = replace(p, relu=True)
            relu_rename[l.output] = p.output
            removed.add(l.name)
    if not removed and not rename:
        return graph
    layers = [_rewire(fused.get(l.name, l), relu_rename) for l in layers if l.name not in removed]
    rename.update(relu_rename)
    log.debug("%s: fused %d ReLU(s), dropped %d dropout layer(s)", graph.name, len(removed),
              len(graph.layers) - len(layers) - len(removed))
    return _rebuild(graph, layers, rename)


def fold_and_fuse(graph: Graph, weights: Mapping[str, np.ndarray]) -> tuple[Graph, dict[str, np.ndarray]]:
    """The form a network is held in: batch-norms folded, ReLUs fused, dropout removed."""
    graph, weights = fold_batchnorm(graph, weights)
    return fuse_relu(graph), weights


# -- helpers -----------------------------------------------------------------------------------------------------------
def _producers(graph: Graph) -> dict[str, Layer]:
    out: dict[str, Layer] = {}
    for layer in graph.layers:
        if layer.output in out or layer.output == graph.input_blob:
            raise NetworkError(
                f"network '{graph.name}': blob '{layer.output}' is written by more than one layer "
                f"('{out[layer.output].name if layer.output in out else 'input'}' and '{layer.name}'); "
                "graph rewrites need every layer to write its own blob"
            )
        out[layer.output] = layer
    return out


def _resolve(blob: str, rename: Mapping[str, str]) -> str:
    while blob in rename:
        blob = rename[blob]
    return blob


def _rewire(layer: Layer, rename: Mapping[str, str]) -> Layer:
    inputs = tuple(_resolve(b, rename) for b in layer.inputs)
    return layer if inputs == layer.inputs else replace(layer, inputs=inputs)


def _rebuild(graph: Graph, layers: list[Layer], rename: Mapping[str, str]) -> Graph:
    return Graph(
        name=graph.name,
        input_blob=graph.input_blob,
        input_shape=graph.input_shape,
        layers=tuple(layers),
        output_blob=_resolve(graph.output_blob, rename),
        preprocess=graph.preprocess,
        dataset=graph.dataset,
        num_classes=graph.num_classes,
    )


def _fold_tensors(conv: Conv, bn: BatchNorm, weights: dict[str, np.ndarray]) -> None:
    keys = [f"{conv.name}.weight"] + [f"{bn.name}.{t}" for t in _BN_TENSORS]
    missing = [k for k in keys if k not in weights]
    if conv.bias and f"{conv.name}.bias" not in weights:
        missing.append(f"{conv.name}.bias")
    if missing:
        raise WeightError(f"cannot fold batchnorm '{bn.name}' into conv '{conv.name}': missing tensor(s) "
                          f"{', '.join(missing)}")
    w = np.asarray(weights[f"{conv.name}.weight"])
    gamma, beta, mean, var = (np.asarray(weights[f"{bn.name}.{t}"], dtype=np.float64) for t in _BN_TENSORS)
    for t, v in zip(_BN_TENSORS, (gamma, beta, mean, var)):
        if v.shape != (bn.channels,):
            raise WeightError(f"tensor '{bn.name}.{t}' has shape {list(v.shape)}, expected [{bn.channels}]")
    if w.ndim != 4 or w.shape[0] != bn.channels:
        raise WeightError(f"tensor '{conv.name}.weight' has shape {list(w.shape)}, expected {bn.channels} kernels")
    if np.any(var + bn.eps <= 0):
        raise WeightError(f"batchnorm '{bn.name}': running_var + eps must be positive")
    b = np.asarray(weights[f"{conv.name}.bias"], dtype=np.float64) if conv.bias else np.zeros(bn.channels)
    scale = gamma / np.sqrt(var + bn.eps)
    dtype = w.dtype if np.issubdtype(w.dtype, np.floating) else np.float32
    weights[f"{conv.name}.weight"] = (w.astype(np.float64) * scale[:, None, None, None]).astype(dtype)
    weights[f"{conv.name}.bias"] = (beta + (b - mean) * scale).astype(dtype)
    for t in _BN_TENSORS:
        del weights[f"{bn.name}.{t}"]
    weights.pop(f"{bn.name}.num_batches_tracked", None)  # PyTorch bookkeeping, not a parameter
