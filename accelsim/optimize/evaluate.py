"""True accuracy and MACs of speculation settings on the optimisation images, without re-running what cannot change.

One dense fixed-point pass caches, for every eligible conv layer, the blobs the rest of the network needs from before
it (its input, plus e.g. a residual shortcut); exact mode is bit-identical to dense, so these are the values every
setting that speculates only from that layer on sees. An evaluation re-runs the network from the earliest speculating
layer's cached blobs: that layer and those after it run in the MAC lanes with their (N, Th) per kernel, every other
layer runs dense (same outputs as exact, much faster).

The global pass needs only the top-1 of each setting, and each of its moves changes one layer: `accuracy` keeps the
blobs of the last setting it ran and re-runs from the first layer whose setting changed, with the speculating layers'
outputs from two exact GEMMs (`predictive_outputs`) instead of the lanes.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.forward import FunctionalConfig, PreparedNetwork, prepare
from accelsim.functional.lanes import LaneResult, run_lanes
from accelsim.functional.reorder import WeightStream, reorder_layer
from accelsim.nets.graph import Conv, Softmax
from accelsim.nets.network import Network

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
_STREAM_CACHE = 256  # weight streams kept (the passes revisit a layer's few candidates many times)


@dataclass(frozen=True)
class LayerSetting:
    """One conv layer's speculation parameters: N per kernel (0 = exact) and Th per kernel (activation units)."""

    n_spec: np.ndarray
    threshold: np.ndarray

    @property
    def speculates(self) -> bool:
        return bool(np.any(np.asarray(self.n_spec) > 0))

    def same_as(self, other: LayerSetting | None) -> bool:
        return other is not None and np.array_equal(self.n_spec, other.n_spec) and \
            np.array_equal(self.threshold, other.threshold)


@dataclass(frozen=True)
class Evaluation:
    """Accuracy of a setting on the optimisation images and the MACs its speculating layers performed (totals)."""

    top1: float
    err: float  # dense top-1 minus this top-1 (fraction; the quantity epsilon bounds)
    macs: dict[str, int]


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per row, KL(p || q) with probabilities floored at 1e-12 (a class the dense network rules out costs 0)."""
    p, q = np.maximum(p, 1e-12), np.maximum(q, 1e-12)
    return np.sum(p * (np.log(p) - np.log(q)), axis=1)


def frontiers(prepared: PreparedNetwork, layers: list[str]) -> dict[str, list[str]]:
    """For each named layer, the blobs written before it (or the input) that it or any later layer reads."""
    graph = prepared.network.graph
    index = {l.name: i for i, l in enumerate(graph.layers)}
    written = {graph.input_blob: -1, **{l.output: i for i, l in enumerate(graph.layers)}}
    out = {}
    for name in layers:
        i = index[name]
        out[name] = sorted({b for l in graph.layers[i:] for b in l.inputs if written[b] < i})
    return out


class SpeculationEvaluator:
    """The optimisation images, their dense reference and cached activations; evaluates speculation settings."""

    def __init__(
        self,
        network: Network,
        config: FunctionalConfig,
        images: np.ndarray,
        labels: np.ndarray,
        eval_batch: int = 128,
        progress: Progress | None = None,
        calibration: np.ndarray | None = None,
        keep_outputs: int = 0,
        stage: str = "dense pass",
    ) -> None:
        """`calibration`: the images the number formats come from (default: the first of `images`), so that
        evaluators of disjoint image sets share one format; `keep_outputs`: how many of the first images keep their
        dense output scores (for `damage`)."""
        if len(images) == 0:
            raise ConfigError("the optimisation needs at least one image")
        self.network, self.config, self.eval_batch = network, config, eval_batch
        cal = images[: config.calibration_images] if calibration is None else calibration[: config.calibration_images]
        self.prepared = prepare(network, config, cal)
        graph = network.graph
        self.eligible = [l.name for l in graph.layers if isinstance(l, Conv) and l.name in self.prepared.convs
                         and self.prepared.convs[l.name].eligibility.eligible]
        self.index = {l.name: i for i, l in enumerate(graph.layers)}
        self.frontier = frontiers(self.prepared, self.eligible)
        nf = config.number_format
        self._code_dtype = (np.int16 if nf.activation_bits <= 16 else np.int32) if self.prepared.fixed else np.float32
        cached = sorted({b for bs in self.frontier.values() for b in bs})
        self._cache: dict[str, np.ndarray] = {}
        self._writer = {graph.input_blob: -1, **{l.output: i for i, l in enumerate(graph.layers)}}
        self._streams: OrderedDict[tuple[str, bytes], WeightStream] = OrderedDict()
        # `accuracy`'s memory: the last setting it ran, the cached blobs under it that differ from dense, its top-1.
        self._last: dict[str, LayerSetting] = {}
        self._last_blobs: dict[str, np.ndarray] = {}
        self._last_top1: float | None = None
        self.last_predictions: np.ndarray | None = None  # `accuracy`'s top-1 class of every image, last setting
        preds = []
        n = len(images)
        kept = []
        for start in range(0, n, eval_batch):
            blobs = self.prepared.forward(images[start : start + eval_batch], policy=False, keep=cached)
            scores = self._scores(blobs[graph.output_blob])
            preds.append(scores.argmax(axis=1))
            if start < keep_outputs:
                kept.append(scores[: keep_outputs - start].astype(np.float64))
            for b in cached:
                self._store(b, blobs[b], start, n)
            if progress is not None:
                progress(stage, min(start + eval_batch, n), n)
        self.dense_pred = np.concatenate(preds)
        self.dense_outputs = np.concatenate(kept) if kept else np.zeros((0, 0))
        labels = np.asarray(labels, dtype=np.int64)
        # Unlabelled images (label < 0) count as correct when the dense network's answer is kept.
        self.labels = np.where(labels >= 0, labels, self.dense_pred)
        self.images = n
        self.dense_top1 = float(np.mean(self.dense_pred == self.labels))
        self.dense_correct = self.dense_pred == self.labels
        log.info("dense fixed-point top-1 on %d optimisation images: %.4f; cache %.1f MB of %d blobs", n,
                 self.dense_top1, sum(a.nbytes for a in self._cache.values()) / 2**20, len(cached))

    # -- the cache ----------------------------------------------------------------------------------------------------
    def _store(self, blob: str, value: np.ndarray, start: int, n: int) -> None:
        if blob not in self._cache:
            self._cache[blob] = np.empty((n, *value.shape[1:]), dtype=self._code_dtype)
        self._cache[blob][start : start + len(value)] = self._codes(blob, value)

    def _codes(self, blob: str, value: np.ndarray) -> np.ndarray:
        # Exact: values on the blob's grid times a power of two are the integer codes.
        return value * math.ldexp(1.0, self.prepared.blob_fl[blob]) if self.prepared.fixed else value

    def cached(self, blob: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cached blob values of images start..stop, as the forward pass holds them (float64 on the fixed grid)."""
        return self._decode(blob, self._cache[blob][start:stop])

    def _decode(self, blob: str, codes: np.ndarray) -> np.ndarray:
        if self.prepared.fixed:
            return codes * math.ldexp(1.0, -self.prepared.blob_fl[blob])  # float64, exact
        # minifloat values (<= 7 exponent bits, <= 22 mantissa bits) are exact in float32; the pass runs in float64
        return codes.astype(np.float64 if self.prepared.formats is not None else np.float32)

    def layer_input(self, layer: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        conv = self.conv(layer)
        return self.cached(conv.inputs[0], start, stop).astype(np.float64, copy=False)

    # -- per-layer facts ----------------------------------------------------------------------------------------------
    def conv(self, layer: str) -> Conv:
        return self.prepared.convs[layer].layer

    def weights(self, layer: str) -> np.ndarray:
        """The layer's weights as the datapath holds them (quantised)."""
        return self.prepared.convs[layer].weight

    def bias(self, layer: str) -> np.ndarray:
        return self.prepared.convs[layer].bias

    def acc_unit(self, layer: str) -> float | None:
        """Step of the accumulator grid of `layer` (thresholds are compared on it); None where it is not a fixed grid
        (float32, minifloat)."""
        fl = self.prepared.accumulator_fl(layer)
        return None if fl is None else float(np.ldexp(1.0, -fl))

    def quantize_threshold(self, layer: str, threshold: np.ndarray) -> np.ndarray:
        """Thresholds as the forward pass uses them: on the accumulator grid (exactly what `prepare` does)."""
        return self.prepared.threshold_on_format(layer, threshold)

    def stream(self, layer: str, n_spec: np.ndarray | None) -> WeightStream:
        """The layer's weight stream for `n_spec` (None: exact mode), built once and kept for the next requests."""
        key = (layer, b"" if n_spec is None else np.asarray(n_spec, dtype=np.int64).tobytes())
        got = self._streams.get(key)
        if got is None:
            got = reorder_layer(self.weights(layer), n_spec, self.config.reorder)
            self._streams[key] = got
            if len(self._streams) > _STREAM_CACHE:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(key)
        return got

    def exact_macs(self, layer: str) -> int:
        """MACs of the layer in exact mode over all optimisation images."""
        stream = self.stream(layer, None)
        total = 0
        for start in range(0, self.images, self.eval_batch):
            res = run_lanes(self.layer_input(layer, start, start + self.eval_batch), self.conv(layer), stream,
                            self.bias(layer), "exact", terminate_at_zero=self.config.terminate_at_zero)
            total += int(res.macs.sum(dtype=np.int64))
        return total

    # -- evaluation ---------------------------------------------------------------------------------------------------
    def _scores(self, out: np.ndarray) -> np.ndarray:
        return out.reshape(len(out), -1)

    def _plans(self, settings: Mapping[str, LayerSetting]) -> dict[str, tuple[WeightStream, np.ndarray]]:
        unknown = [l for l in settings if l not in self.frontier]
        if unknown:
            raise ConfigError(f"speculation settings name layer(s) {unknown} that are not eligible conv layers")
        return {name: (self.stream(name, np.asarray(s.n_spec, dtype=np.int64)),
                       self.quantize_threshold(name, s.threshold))
                for name, s in settings.items()}

    def evaluate(self, settings: Mapping[str, LayerSetting]) -> Evaluation:
        """Top-1 and per-layer MACs with the named layers speculating and every other layer exact."""
        if not settings:
            return Evaluation(top1=self.dense_top1, err=0.0, macs={})
        plans = self._plans(settings)
        first = min(settings, key=self.index.__getitem__)
        output = self.network.graph.output_blob
        macs = {name: 0 for name in settings}

        def count(layer: str, res: LaneResult) -> None:
            macs[layer] += int(res.macs.sum(dtype=np.int64))

        correct = 0
        for start in range(0, self.images, self.eval_batch):
            stop = min(start + self.eval_batch, self.images)
            blobs = {b: self.cached(b, start, stop) for b in self.frontier[first]}
            # Every layer not speculating runs dense: exact mode gives the same outputs, much slower.
            out = self.prepared.forward_from(self.index[first], blobs, policy=False, observer=count,
                                             speculate=plans)[output]
            pred = self._scores(out).argmax(axis=1)
            correct += int(np.count_nonzero(pred == self.labels[start:stop]))
        top1 = correct / self.images
        return Evaluation(top1=top1, err=self.dense_top1 - top1, macs=macs)

    def accuracy(self, settings: Mapping[str, LayerSetting]) -> Evaluation:
        """Top-1 of a setting (no MAC counts), equal to `evaluate(settings).top1`, re-running only from the first
        layer whose setting differs from the previous call's."""
        settings = {l: s for l, s in settings.items() if s.speculates}
        plans = self._plans(settings)
        changed = [l for l in set(settings) | set(self._last)
                   if l not in settings or not settings[l].same_as(self._last.get(l))]
        if not changed and self._last_top1 is not None:
            top1 = self._last_top1
        elif not settings and not self._last_blobs:
            top1 = self.dense_top1
            self.last_predictions = self.dense_pred
        else:
            first = min(changed, key=self.index.__getitem__) if changed else min(settings, key=self.index.__getitem__)
            top1 = self._rerun_from(first, settings, plans)
        self._last = dict(settings)
        self._last_top1 = top1
        return Evaluation(top1=top1, err=self.dense_top1 - top1, macs={})

    def correct(self, settings: Mapping[str, LayerSetting]) -> np.ndarray:
        """Per image, whether the network with `settings` gets its label right (as `accuracy`, incremental)."""
        self.accuracy(settings)
        assert self.last_predictions is not None
        return self.last_predictions == self.labels

    def damage(self, settings: Mapping[str, LayerSetting]) -> tuple[float, np.ndarray]:
        """Mean KL divergence of the output distribution with `settings` from the dense one, and the per-image top-1
        classes, on the first images whose dense outputs were kept (`keep_outputs`). A smooth measure of how much a
        setting disturbs the network, where top-1 on a few images moves in steps of whole images."""
        count = len(self.dense_outputs)
        if count == 0:
            raise ConfigError("damage needs the dense outputs of some images: build the evaluator with keep_outputs")
        settings = {l: s for l, s in settings.items() if s.speculates}
        if not settings:
            return 0.0, self.dense_outputs.argmax(axis=1)
        plans = self._plans(settings)
        first = min(settings, key=self.index.__getitem__)
        output = self.network.graph.output_blob
        outs = []
        for start in range(0, count, self.eval_batch):
            stop = min(start + self.eval_batch, count)
            blobs = {b: self.cached(b, start, stop) for b in self.frontier[first]}
            got = self.prepared.forward_from(self.index[first], blobs, policy=False, speculate=plans,
                                             outputs_only=True)
            outs.append(self._scores(got[output]).astype(np.float64))
        spec = np.concatenate(outs)
        return float(np.mean(_kl(self._probabilities(self.dense_outputs), self._probabilities(spec)))), \
            spec.argmax(axis=1)

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The network's output as a distribution over classes: as is after a softmax layer, else its softmax."""
        if isinstance(self.network.graph.layers[-1], Softmax):
            p = np.clip(scores, 0.0, None)
            return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
        z = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _rerun_from(self, first: str, settings: Mapping[str, LayerSetting],
                    plans: Mapping[str, tuple[WeightStream, np.ndarray]]) -> float:
        start_layer = self.index[first]
        redo = [b for b in self._cache if self._writer[b] >= start_layer]
        output = self.network.graph.output_blob
        preds = np.empty(self.images, dtype=np.int64)
        for start in range(0, self.images, self.eval_batch):
            stop = min(start + self.eval_batch, self.images)
            blobs = {b: self._last_value(b, start, stop) for b in self.frontier[first]}
            got = self.prepared.forward_from(start_layer, blobs, policy=False, keep=redo, speculate=plans,
                                             outputs_only=True)
            for b in redo:
                if b not in self._last_blobs:
                    self._last_blobs[b] = self._cache[b].copy()
                self._last_blobs[b][start:stop] = self._codes(b, got[b])
            preds[start:stop] = self._scores(got[output]).argmax(axis=1)
        if not settings:  # back to dense everywhere
            self._last_blobs.clear()
        self.last_predictions = preds
        return float(np.mean(preds == self.labels))

    def _last_value(self, blob: str, start: int, stop: int) -> np.ndarray:
        return self._decode(blob, self._last_blobs.get(blob, self._cache[blob])[start:stop])
