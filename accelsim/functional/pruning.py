"""Magnitude pruning (docs/formats.md B.9): weights of small magnitude set to 0 before the number format rounds them.

By threshold: |w| < t, with t absolute over the whole net (S0's rule) or, per layer, t times the standard deviation of
the layer's weights (the "quality parameter" of Han et al., which S0 and S3 cite). By target sparsity: the smallest
|w| of each layer (per layer) or of all pruned layers together (global) until that share is 0, ties broken by position
so the count is exact. Zeros then compose with SnaPEA through `skip_zero_weights` (not stored, not executed).
No retraining follows (training is out of scope): these are the accuracies of post-training pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from accelsim.nets.graph import FC, Conv
from accelsim.nets.network import Network
from accelsim.settings import Problems, declared, non_default, setting

PruneMethod = Literal["none", "threshold", "sparsity"]
PruneScope = Literal["global", "layer"]
PruneLayers = Literal["all", "conv", "fc"]


@declared
class PruningOptions:
    """Static magnitude pruning of the network's weights (before the number format rounds them)."""

    prune: PruneMethod = setting(
        default="none", help="magnitude pruning: none, threshold (|w| < --prune-threshold) or sparsity (the "
        "--prune-sparsity share of smallest |w|)", example="threshold", needs={"prune_threshold": 0.1})
    prune_threshold: float = setting(
        default=0.0, help="pruning threshold: absolute |w| (scope global, S0's rule) or a multiple of each layer's "
        "weight standard deviation (scope layer, Han et al.)", ge=0.0, allow_inf_nan=False, example=0.005,
        needs={"prune": "threshold"})
    prune_sparsity: float = setting(
        default=0.0, help="share of weights pruned (0..1) by --prune sparsity", ge=0.0, lt=1.0, allow_inf_nan=False,
        example=0.5, needs={"prune": "sparsity"})
    prune_scope: PruneScope = setting(
        default="global", help="one threshold / sparsity for all pruned layers together (global) or for each layer "
        "(layer)", example="layer", needs={"prune": "sparsity", "prune_sparsity": 0.5})
    prune_layers: PruneLayers = setting(
        default="all", help="which layers are pruned: all weight layers, conv or fc only", example="conv",
        needs={"prune": "sparsity", "prune_sparsity": 0.5})

    def __post_init__(self) -> None:
        changed = set(non_default(self))
        problems = []
        if self.prune == "none":
            others = sorted(changed - {"prune"})
            if others:
                problems.append(f"{', '.join(others)}: no effect without --prune threshold or --prune sparsity")
        elif self.prune == "threshold":
            if self.prune_threshold <= 0:
                problems.append("prune threshold needs prune_threshold > 0")
            if "prune_sparsity" in changed:
                problems.append("prune_sparsity applies to --prune sparsity; prune is threshold")
        else:
            if self.prune_sparsity <= 0:
                problems.append("prune sparsity needs 0 < prune_sparsity < 1")
            if "prune_threshold" in changed:
                problems.append("prune_threshold applies to --prune threshold; prune is sparsity")
        if problems:
            raise Problems(problems)

    @property
    def active(self) -> bool:
        return self.prune != "none"


@dataclass(frozen=True)
class PruneResult:
    """The pruned network and, per weight layer, the share of its weights pruning set to 0 (non-zero before)."""

    network: Network
    pruned_fraction: dict[str, float]


def _targets(network: Network, layers: str) -> list[str]:
    kinds = {"all": (Conv, FC), "conv": (Conv,), "fc": (FC,)}[layers]
    return [layer.name for layer in network.graph.layers if isinstance(layer, kinds)]


def prune_masks(weights: dict[str, np.ndarray], options: PruningOptions) -> dict[str, np.ndarray]:
    """Boolean masks (True = pruned) of the given weight tensors, by `options` (`prune` must not be none)."""
    names = list(weights)
    mags = {n: np.abs(np.asarray(weights[n], dtype=np.float64)) for n in names}
    if options.prune == "threshold":
        t = options.prune_threshold
        if options.prune_scope == "global":
            return {n: mags[n] < t for n in names}
        return {n: mags[n] < t * float(np.std(np.asarray(weights[n], dtype=np.float64))) for n in names}
    s = options.prune_sparsity
    if options.prune_scope == "layer":
        return {n: _smallest(mags[n].ravel(), s).reshape(mags[n].shape) for n in names}
    flat = np.concatenate([mags[n].ravel() for n in names]) if names else np.zeros(0)
    mask = _smallest(flat, s)
    out, start = {}, 0
    for n in names:
        size = mags[n].size
        out[n] = mask[start : start + size].reshape(mags[n].shape)
        start += size
    return out


def _smallest(a: np.ndarray, share: float) -> np.ndarray:
    """Mask of the round(share * n) smallest values of `a` (stable: the earlier of equal values first)."""
    k = int(round(share * a.size))
    mask = np.zeros(a.size, dtype=bool)
    if k:
        mask[np.argsort(a, kind="stable")[:k]] = True
    return mask


def prune_network(network: Network, options: PruningOptions) -> PruneResult:
    """`network` with its selected layers' weights pruned (biases untouched); the network itself when `prune` is
    none. Pruned shares are per weight layer (layers not pruned report 0)."""
    layers = [layer.name for layer in network.graph.weight_layers()]
    if not options.active or network.shape_only:
        return PruneResult(network, {name: 0.0 for name in layers})
    targets = _targets(network, options.prune_layers)
    weights = {name: np.asarray(network.tensor(f"{name}.weight")) for name in targets}
    masks = prune_masks(weights, options)
    new = dict(network.weights)
    fractions = {name: 0.0 for name in layers}
    for name in targets:
        w = weights[name]
        hit = masks[name] & (w != 0)
        fractions[name] = float(np.count_nonzero(hit)) / w.size if w.size else 0.0
        new[f"{name}.weight"] = np.where(masks[name], np.zeros((), dtype=w.dtype), w)
    return PruneResult(Network(network.graph, new, source=f"{network.source} (pruned)"), fractions)
