"""The forward pass: what the accelerator computes, image batch by image batch, with per-window MAC counts.

`prepare` fixes everything that does not depend on the images being run (number formats from calibration images,
quantised weights, the per-kernel weight streams of the weight/index buffers); `PreparedNetwork.forward` runs one
batch; `run` streams a dataset through it and aggregates per-layer statistics and the network's accuracy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args

import numpy as np
import pandas as pd

from accelsim.errors import ConfigError
from accelsim.functional import ops
from accelsim.functional.eligibility import Eligibility, early_termination_eligibility
from accelsim.functional.faults import FaultInjector, FaultSettings, add_fault_columns, build_injector
from accelsim.functional.fixedpoint import NumberFormat, integer_length
from accelsim.functional.formats import Formats, sums_exact
from accelsim.functional.lanes import LaneResult, predictive_outputs, run_lanes, window_stats
from accelsim.functional.pruning import PruningOptions, prune_network
from accelsim.functional.reorder import ReorderOptions, WeightStream, reorder_layer
from accelsim.nets.graph import (
    FC,
    LRN,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    ReLU,
    ShortcutSubsamplePad,
    Softmax,
)
from accelsim.nets.network import Network
from accelsim.settings import declared, group, setting

log = logging.getLogger(__name__)

Mode = Literal["dense", "exact", "predictive"]
MODES: tuple[str, ...] = get_args(Mode)

# Called once per eligible-or-not conv layer and batch with the lanes' result (for the timing model). The result is
# valid during the call only: a dense layer's ReLU then overwrites its `acc` in place. Copy what must outlive it.
WindowObserver = Callable[[str, LaneResult], None]


@declared
class FunctionalConfig:
    """Everything that decides what the MAC lanes compute (see docs/model.md for each choice)."""

    mode: Mode = setting(
        default="exact", help="SnaPEA mode: dense (no early termination), exact (sign checks, no accuracy change) or "
        "predictive (speculation with per-kernel (Th, N) from --spec)", commands=("run", "sweep"), example="dense")
    number_format: NumberFormat = group(default_factory=NumberFormat)
    reorder: ReorderOptions = group(default_factory=ReorderOptions)
    pruning: PruningOptions = group(default_factory=PruningOptions)
    terminate_at_zero: bool = setting(
        default=False, help="PAU stops when the partial sum is <= 0 instead of < 0 (the sign bit)",
        modes=("exact", "predictive"), example=True)
    batch_size: int = setting(
        default=16, help="images per functional batch (results do not depend on it; memory does)", gt=0, example=5)
    calibration_images: int = setting(
        default=32, help="images used to choose the number formats (ranges, exponent bits, the fixed-point split)",
        gt=0, example=4)
    float_reference: bool = setting(default=True, help="also run the float32 network to report its accuracy beside the "
                                    "fixed-point one", commands=("run", "sweep"), example=False)
    fault_injection: FaultSettings = group(default_factory=FaultSettings)


@dataclass(frozen=True)
class SpeculationParams:
    """Speculation parameters per kernel: N (speculation-set size, 0 = exact) and Th (activation units)."""

    n_spec: Mapping[str, np.ndarray]
    threshold: Mapping[str, np.ndarray]

    def for_layer(self, layer: Conv) -> tuple[np.ndarray, np.ndarray] | None:
        if layer.name not in self.n_spec:
            return None
        n_raw = np.asarray(self.n_spec[layer.name])
        th_raw = np.asarray(self.threshold[layer.name])
        if n_raw.shape != (layer.out_channels,) or th_raw.shape != (layer.out_channels,):
            raise ConfigError(
                f"predictive spec for layer '{layer.name}' has {n_raw.shape} N values and {th_raw.shape} thresholds; "
                f"the layer has {layer.out_channels} kernels"
            )
        # A cast would silently truncate N = 2.5 or pass a NaN threshold (which no partial sum is below).
        if n_raw.dtype.kind not in "iu" and not (n_raw.dtype.kind == "f" and np.all(n_raw == np.round(n_raw))):
            raise ConfigError(f"predictive spec for layer '{layer.name}': N must be whole numbers, got {n_raw.dtype} "
                              f"values such as {n_raw.ravel()[:3].tolist()}")
        if th_raw.dtype.kind not in "iuf" or not np.all(np.isfinite(th_raw)):
            raise ConfigError(f"predictive spec for layer '{layer.name}': thresholds must be finite numbers")
        n = n_raw.astype(np.int32)
        th = th_raw.astype(np.float64)
        if (n_raw < 0).any() or (n_raw > layer.kernel_size).any():
            raise ConfigError(f"predictive spec for layer '{layer.name}': N must lie in [0, {layer.kernel_size}]")
        return n, th


@dataclass
class _ConvPlan:
    layer: Conv
    weight: np.ndarray  # quantised (on the weight grid) or float
    bias: np.ndarray  # on the accumulator grid
    mode: str  # the mode this layer actually runs in
    eligibility: Eligibility
    stream: WeightStream | None = None
    threshold: np.ndarray | None = None  # on the accumulator grid
    fl_w: int | None = None
    walk_dense: bool = False  # dense values come from the stream-order walk (sums not provably exact in float64)
    weight_zero_fraction: float = 0.0  # share of zero weights after pruning and rounding


@dataclass
class PreparedNetwork:
    """A network made ready to run: formats chosen, weights quantised, weight streams built."""

    network: Network
    config: FunctionalConfig
    blob_fl: dict[str, int]  # fractional length of every blob (activations on a fixed-point grid; else empty)
    convs: dict[str, _ConvPlan]
    fcs: dict[str, tuple[np.ndarray, np.ndarray | None]]
    last_use: dict[str, int]
    formats: Formats | None = None  # None: float32
    pruned_fraction: dict[str, float] = field(default_factory=dict)  # per weight layer: share zeroed by pruning
    fc_zero_fraction: dict[str, float] = field(default_factory=dict)  # per fc layer: zero weights after rounding
    faults: Any = None  # memory faults of this image group (faults.BoundFaults, set by FaultInjector.view)

    @property
    def fixed(self) -> bool:
        """Activations lie on a per-blob fixed-point grid (`blob_fl`)."""
        return self.config.number_format.is_fixed

    def _grid(self, blob: str) -> ops.OutputGrid | None:
        """The grid the fused conv epilogue rounds `blob` onto (deterministic fixed-point rounding only)."""
        return self.formats.output_grid(blob) if self.formats is not None else None

    def _q(self, blob: str, x: np.ndarray) -> np.ndarray:
        return self.formats.blob(blob, x) if self.formats is not None else x

    def accumulator_fl(self, layer: str) -> int | None:
        """FL of conv `layer`'s accumulator (its bias and thresholds live there); None where it is not a fixed grid."""
        plan = self.convs[layer]
        return self.formats.accumulator_fl(plan.layer.inputs[0], plan.fl_w) if self.formats is not None else None

    def threshold_on_format(self, layer: str, threshold: np.ndarray) -> np.ndarray:
        """Predictive thresholds of conv `layer` as its PAU compares them: on the format's accumulator."""
        th = np.asarray(threshold, dtype=np.float64)
        if self.formats is None:
            return th
        plan = self.convs[layer]
        return self.formats.threshold(th, plan.layer.inputs[0], plan.fl_w)

    def forward(
        self,
        x: np.ndarray,
        policy: bool = True,
        observer: WindowObserver | None = None,
        keep: Iterable[str] = (),
        input_zeros: dict[str, list[int]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one batch. `policy=False` runs every layer dense (the reference the policy is compared with).

        Returns the output blob plus the blobs named in `keep`; other blobs are freed as soon as they are consumed.
        `input_zeros`, if given, accumulates [zero values, values] of every conv layer's input (for zero gating).
        """
        graph = self.network.graph
        dtype = np.float64 if self.formats is not None else np.float32
        x = self._q(graph.input_blob, x.astype(dtype))
        return self.forward_from(0, {graph.input_blob: x}, policy, observer, keep, input_zeros)

    def forward_from(
        self,
        start: int,
        blobs: Mapping[str, np.ndarray],
        policy: bool = True,
        observer: WindowObserver | None = None,
        keep: Iterable[str] = (),
        input_zeros: dict[str, list[int]] | None = None,
        speculate: Mapping[str, tuple[WeightStream, np.ndarray]] | None = None,
        outputs_only: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run layers `start`.. of the graph from `blobs`: the values (on their grids) written before layer `start`
        that it or a later layer reads, e.g. activations cached by a dense pass.

        `speculate` runs the named conv layers in the MAC lanes in predictive mode with the given weight stream and
        thresholds (accumulator grid) instead of their prepared plan, whatever `policy` says; `observer` sees them.
        With `outputs_only` they give the same outputs by `predictive_outputs` (no MAC counts, no observer).
        Otherwise as `forward`.
        """
        graph = self.network.graph
        if not 0 <= start < len(graph.layers):
            raise ConfigError(f"forward_from: layer index {start} is outside 0..{len(graph.layers) - 1}")
        speculate = speculate or {}
        keep = set(keep) | {graph.output_blob}
        blobs = dict(blobs)
        for i in range(start, len(graph.layers)):
            layer = graph.layers[i]
            missing = [b for b in layer.inputs if b not in blobs]
            if missing:
                raise ConfigError(f"forward_from({start}): layer '{layer.name}' reads blob(s) {missing}, "
                                  f"which were not given")
            ins = [blobs[b] for b in layer.inputs]
            if self.faults is not None:  # the feature map as the layer reads it from a faulty memory
                ins = self.faults.read(layer, ins)
            if input_zeros is not None and isinstance(layer, Conv):
                counts = input_zeros.setdefault(layer.name, [0, 0])
                counts[0] += int(ins[0].size - np.count_nonzero(ins[0]))
                counts[1] += int(ins[0].size)
            on_grid = False  # whether y is already rounded onto the output blob's grid
            if layer.name in speculate and not isinstance(layer, Conv):
                raise ConfigError(f"forward_from: speculate names '{layer.name}', a {type(layer).__name__} layer; "
                                  f"only conv layers speculate")
            if isinstance(layer, Conv) and layer.name in speculate and outputs_only:
                stream, threshold = speculate[layer.name]
                y = predictive_outputs(ins[0].astype(np.float64, copy=False), layer, stream,
                                       self.convs[layer.name].bias, threshold,
                                       self.config.terminate_at_zero).astype(ins[0].dtype, copy=False)
            elif isinstance(layer, Conv) and layer.name in speculate:
                stream, threshold = speculate[layer.name]
                res = run_lanes(ins[0].astype(np.float64, copy=False), layer, stream, self.convs[layer.name].bias,
                                "predictive", threshold=threshold, terminate_at_zero=self.config.terminate_at_zero)
                if observer is not None:
                    observer(layer.name, res)
                y = res.output.astype(ins[0].dtype, copy=False)
            elif self._fused_conv(layer, policy, observer):
                y = self._dense_conv_on_grid(layer, ins[0])
                on_grid = True
            else:
                y = self._layer(layer, ins, policy, observer)
            if not (on_grid or isinstance(layer, Softmax)):
                y = self._q(layer.output, y)
            blobs[layer.output] = y
            for b in set(layer.inputs):
                if self.last_use.get(b) == i and b not in keep:
                    del blobs[b]
        return blobs

    def _fused_conv(self, layer: Layer, policy: bool, observer: WindowObserver | None) -> TypeGuard[Conv]:
        """Whether `layer` is a dense fixed-point conv whose ReLU and rounding `ops.conv2d` does in its own pass
        (not when the lanes run it or an observer must see its accumulator values). True implies a Conv."""
        if not (isinstance(layer, Conv) and self._grid(layer.output) is not None):
            return False
        plan = self.convs[layer.name]
        return not (plan.walk_dense or policy and (plan.stream is not None or observer is not None))

    def _dense_conv_on_grid(self, layer: Conv, x: np.ndarray) -> np.ndarray:
        plan = self.convs[layer.name]
        return ops.conv2d(x, plan.weight, plan.bias, layer, relu=layer.relu, grid=self._grid(layer.output))

    def _dense_walk(self, layer: Conv, x: np.ndarray) -> np.ndarray:
        """Dense pre-ReLU values in the lanes' stream order (the GEMM where its sums are exact): the values exact
        mode compares against, for formats whose sums float64 may round (minifloat, wide words)."""
        plan = self.convs[layer.name]
        assert plan.stream is not None
        return run_lanes(x.astype(np.float64, copy=False), layer, plan.stream, plan.bias, "dense").acc

    def _out_hw(self, blob: str) -> tuple[int, int]:
        """(H, W) of a feature-map blob (shapes are per image, [C, H, W])."""
        _, h, w = self.network.graph.shapes[blob]
        return h, w

    def _layer(self, layer: Layer, ins: list[np.ndarray], policy: bool, observer: WindowObserver | None) -> np.ndarray:
        x = ins[0]
        if isinstance(layer, Conv):
            plan = self.convs[layer.name]
            if policy and plan.stream is not None:
                res = run_lanes(x.astype(np.float64, copy=False), layer, plan.stream, plan.bias, plan.mode,
                                threshold=plan.threshold, terminate_at_zero=self.config.terminate_at_zero)
                if observer is not None:
                    observer(layer.name, res)
                return res.output.astype(x.dtype, copy=False)
            watch = observer if policy else None  # the observer sees dense convs only under the policy
            # An observer sees a dense layer's LaneResult only during its call: the ReLU then runs in place.
            if plan.walk_dense and plan.stream is not None:
                acc = self._dense_walk(layer, x)
                if watch is not None:
                    watch(layer.name, LaneResult.of_dense(acc, layer.kernel_size))
                return (np.maximum(acc, 0, out=acc) if layer.relu else acc).astype(x.dtype, copy=False)
            acc = ops.conv2d(x, plan.weight, plan.bias, layer, relu=layer.relu and watch is None)
            if watch is not None:
                watch(layer.name, LaneResult.of_dense(acc, layer.kernel_size))
                return np.maximum(acc, 0, out=acc) if layer.relu else acc
            return acc
        if isinstance(layer, FC):
            w, b = self.fcs[layer.name]
            y = ops.fc(x, w, b)
            return np.maximum(y, 0, out=y) if layer.relu else y
        if isinstance(layer, ReLU):
            return np.maximum(x, 0)
        if isinstance(layer, MaxPool):
            return ops.maxpool(x, layer, self._out_hw(layer.output))
        if isinstance(layer, AvgPool):
            return ops.avgpool(x, layer, self._out_hw(layer.output))
        if isinstance(layer, GlobalAvgPool):
            return ops.global_avgpool(x)
        if isinstance(layer, LRN):
            return ops.lrn(x, layer)
        if isinstance(layer, Concat):
            return np.concatenate(ins, axis=1)
        if isinstance(layer, Add):
            y = ins[0] + sum(ins[1:])
            return np.maximum(y, 0, out=y) if layer.relu else y
        if isinstance(layer, Flatten):
            return x.reshape(x.shape[0], -1)
        if isinstance(layer, Softmax):
            return ops.softmax(x)
        if isinstance(layer, Dropout):
            return x
        if isinstance(layer, ShortcutSubsamplePad):
            return ops.shortcut_subsample_pad(x, layer)
        if isinstance(layer, BatchNorm):
            raise ConfigError(f"batchnorm '{layer.name}' was not folded into a conv at load time")
        raise ConfigError(f"layer '{layer.name}' of type {layer.type_name} cannot be executed")


_FLOAT_CONFIG = FunctionalConfig(mode="dense", number_format=NumberFormat(kind="float32"), float_reference=False)


def _take_images(batches: Iterator[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    got, total = [], 0
    for x, _ in batches:
        got.append(x)
        total += len(x)
        if total >= n:
            break
    if not got:
        raise ConfigError("calibration needs at least one image, and the dataset yielded none")
    return np.concatenate(got)[:n]


def calibrate(network: Network, images: np.ndarray) -> dict[str, float]:
    """Largest |value| of every blob over a float pass of `images` (the ranges the formats must cover)."""
    return _float_pass(network, images)[0]


def _float_pass(network: Network, images: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """(largest |value| of every blob, the network's output) of a float pass of `images`."""
    plan = _build(network, _FLOAT_CONFIG, None, None)
    graph = network.graph
    blobs = plan.forward(images.astype(np.float64), policy=False,
                         keep=[graph.input_blob] + [l.output for l in graph.layers])
    ranges = {b: float(np.max(np.abs(v))) if v.size else 0.0 for b, v in blobs.items()}
    return ranges, blobs[graph.output_blob]


def prepare(
    network: Network,
    config: FunctionalConfig,
    calibration: np.ndarray | Iterator[tuple[np.ndarray, np.ndarray]],
    spec: SpeculationParams | None = None,
) -> PreparedNetwork:
    """Prune, choose the number formats from calibration images and build the per-layer execution plans."""
    if network.shape_only:
        raise ConfigError(f"network '{network.name}' has no weights: the functional model needs real values")
    if config.mode == "predictive" and spec is None:
        raise ConfigError("predictive mode needs a speculation spec (per-kernel N and Th): give --spec")
    pruned = prune_network(network, config.pruning)
    network = pruned.network
    nf = config.number_format
    formats = None
    if nf.quantised:
        images = (calibration if isinstance(calibration, np.ndarray)
                  else _take_images(calibration, config.calibration_images))
        images = images[: config.calibration_images]
        ranges, float_out = _float_pass(network, images)
        il = None
        if nf.kind == "fixed" and nf.fixed_integer_bits is None:
            il = _search_fixed_split(network, config, ranges, images, float_out)
        formats = Formats.choose(nf, ranges, network.graph.input_blob, il)
    prepared = _build(network, config, formats, spec)
    prepared.pruned_fraction = pruned.pruned_fraction
    return prepared


def _search_fixed_split(network: Network, config: FunctionalConfig, ranges: Mapping[str, float], images: np.ndarray,
                        float_out: np.ndarray) -> int:
    """The [IL.FL] split of `fixed` found as Ristretto's ch. 4 does, by trying partitions jointly over weights and
    outputs: the IL whose dense network agrees most with the float network's top-1 on the calibration images
    (ties: the smaller squared error of the outputs, then the smaller IL). Candidates run from the IL that fits the
    narrowest group (a weight tensor or blob) to the one that fits the widest."""
    nf = config.number_format
    fits = [integer_length(m) for m in ranges.values()]
    for layer in network.graph.layers:
        if isinstance(layer, (Conv, FC)):
            w = np.asarray(network.tensor(f"{layer.name}.weight"))
            fits.append(integer_length(float(np.max(np.abs(w))) if w.size else 0.0))
    lo = max(min(fits), 1 - max(nf.weight_bits, nf.activation_bits))
    hi = min(max(fits), max(nf.weight_bits, nf.activation_bits) + 8)
    ref = float_out.reshape(len(images), -1)
    best: tuple[float, float, int] | None = None
    dense = FunctionalConfig(mode="dense", number_format=nf, float_reference=False)
    for il in range(lo, hi + 1):
        plan = _build(network, dense, Formats.choose(nf, ranges, network.graph.input_blob, il), None)
        out = plan.forward(images, policy=False)[network.graph.output_blob].reshape(len(images), -1)
        agree = float(np.count_nonzero(out.argmax(axis=1) == ref.argmax(axis=1)))
        err = float(np.mean((out - ref) ** 2))
        key = (-agree, err if math.isfinite(err) else math.inf, il)
        log.debug("fixed split IL=%d: agreement %d/%d, output MSE %.3g", il, agree, len(images), err)
        if best is None or key < best:
            best = key
    assert best is not None
    log.info("number_format fixed: chose %d integer bits (agreement with float %d/%d)", best[2], -best[0], len(images))
    return best[2]


def _build(network: Network, config: FunctionalConfig, formats: Formats | None,
           spec: SpeculationParams | None) -> PreparedNetwork:
    graph = network.graph
    eligibility = early_termination_eligibility(graph)
    convs: dict[str, _ConvPlan] = {}
    fcs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    fc_zero: dict[str, float] = {}
    last_use: dict[str, int] = {}
    for i, layer in enumerate(graph.layers):
        for blob in layer.inputs:
            last_use[blob] = i
        if not isinstance(layer, (Conv, FC)):
            continue
        w = np.asarray(network.tensor(f"{layer.name}.weight"), dtype=np.float64)
        b = np.asarray(network.tensor(f"{layer.name}.bias"), dtype=np.float64) if layer.bias else None
        fl_w = None
        if formats is not None:
            w, fl_w = formats.weights(layer.name, w)
            b = formats.bias(layer.name, b, layer.inputs[0], fl_w) if b is not None else None
        zero_share = float(np.count_nonzero(w == 0)) / w.size if w.size else 0.0
        if isinstance(layer, FC):
            fcs[layer.name] = (w, b)
            fc_zero[layer.name] = zero_share
            continue
        bias = b if b is not None else np.zeros(layer.out_channels)
        elig = eligibility[layer.name]
        mode = config.mode if elig.eligible else "dense"
        plan = _ConvPlan(layer=layer, weight=w, bias=bias, mode=mode, eligibility=elig, fl_w=fl_w,
                         weight_zero_fraction=zero_share)
        if mode != "dense":
            n_spec = None
            if mode == "predictive":
                assert spec is not None
                got = spec.for_layer(layer)
                if got is None or not np.any(got[0]):  # no kernel speculates: exactly exact mode
                    plan.mode = "exact"
                else:
                    n_spec, th = got
                    if formats is not None:
                        th = formats.threshold(th, layer.inputs[0], fl_w)
                    plan.threshold = th
            plan.stream = reorder_layer(w, n_spec, config.reorder)
            if plan.mode == "predictive" and plan.threshold is None:
                plan.threshold = np.zeros(layer.out_channels)
            plan.walk_dense = formats is None or not (
                formats.fixed and sums_exact(w, bias, formats.blob_fl[layer.inputs[0]],
                                             config.number_format.activation_bits, fl_w))
        convs[layer.name] = plan
    return PreparedNetwork(network=network, config=config, blob_fl=dict(formats.blob_fl) if formats else {},
                           convs=convs, fcs=fcs, last_use=last_use, formats=formats, fc_zero_fraction=fc_zero)


# Dense positive outputs of predictive layers are histogrammed on a log2 grid of this many bins per octave (relative
# resolution 1.1%) over 2^-64..2^64, so the layer's median positive output can be found without keeping the values.
_BINS_PER_OCTAVE = 64
_OCTAVES = 64


def _log_bins(values: np.ndarray) -> np.ndarray:
    b = np.floor(np.log2(values) * _BINS_PER_OCTAVE).astype(np.int64) + _OCTAVES * _BINS_PER_OCTAVE
    return np.clip(b, 0, 2 * _OCTAVES * _BINS_PER_OCTAVE - 1)


@dataclass
class SmallPositiveErrors:
    """Where speculation's errors fall: the dense values of all positive outputs and of the zeroed ones (FN).

    "Small" means below the layer's median positive dense output (pre-ReLU value, accumulator grid), the median taken
    on the log2 histogram grid; outputs in the median's own bin are not small.
    """

    positive: np.ndarray = field(default_factory=lambda: np.zeros(2 * _OCTAVES * _BINS_PER_OCTAVE, np.int64))
    positive_mass: float = 0.0
    fn: np.ndarray = field(default_factory=lambda: np.zeros(2 * _OCTAVES * _BINS_PER_OCTAVE, np.int64))
    fn_mass: np.ndarray = field(default_factory=lambda: np.zeros(2 * _OCTAVES * _BINS_PER_OCTAVE))

    def add(self, acc: np.ndarray, pos: np.ndarray, fn: np.ndarray) -> None:
        values = acc[pos]
        self.positive += np.bincount(_log_bins(values), minlength=len(self.positive))
        self.positive_mass += float(values.sum())
        zeroed = acc[fn]
        bins = _log_bins(zeroed)
        self.fn += np.bincount(bins, minlength=len(self.fn))
        self.fn_mass += np.bincount(bins, weights=zeroed, minlength=len(self.fn_mass))

    def median_bin(self) -> int:
        """The bin holding the median positive output (lower median)."""
        total = int(self.positive.sum())
        return int(np.searchsorted(np.cumsum(self.positive), (total + 1) // 2)) if total else 0

    def shares(self) -> dict[str, float]:
        """fn_small_share: of the zeroed positive outputs, the share below the median positive output;
        fn_small_mass_share: the share of the zeroed positive mass those carry; fn_mass_share: the zeroed positive
        mass over all positive mass (the output mass speculation loses)."""
        n_fn, mass = int(self.fn.sum()), float(self.fn_mass.sum())
        m = self.median_bin()
        return {
            "fn_small_share": int(self.fn[:m].sum()) / n_fn if n_fn else math.nan,
            "fn_small_mass_share": float(self.fn_mass[:m].sum()) / mass if mass > 0 else math.nan,
            "fn_mass_share": mass / self.positive_mass if self.positive_mass > 0 else math.nan,
        }


@dataclass
class _ConvStats:
    windows: int = 0
    macs_performed: int = 0
    neg: int = 0
    pos: int = 0
    zero_out: int = 0
    tn_spec: int = 0
    tn_any: int = 0
    fn: int = 0
    mismatches: int = 0
    small: SmallPositiveErrors | None = None  # kept for predictive layers only

    def add(self, res: LaneResult, terminate_at_zero: bool) -> None:
        c = window_stats(res, terminate_at_zero)  # one pass over the windows
        self.windows += res.acc.size
        self.macs_performed += c["macs"]
        self.neg += c["neg"]
        self.pos += c["pos"]
        self.zero_out += c["zero_out"]
        self.tn_spec += c["tn_spec"]
        self.tn_any += c["tn_any"]
        self.fn += c["fn"]
        # Windows cut short without speculation whose dense output is not 0: must never happen.
        self.mismatches += c["mismatches"]
        if self.small is not None:
            pos = res.acc > 0
            self.small.add(res.acc, pos, res.spec_stop & pos)


@dataclass(frozen=True)
class FunctionalResult:
    """Per-layer statistics (`layers`, per-image averages) and network accuracy of one functional run."""

    network: str
    mode: str
    images: int
    layers: pd.DataFrame
    accuracy: dict[str, float]
    blob_fl: dict[str, int]
    batches: int = 0  # functional batches run (the batch_size setting at work)
    calibration_images: int = 0  # images the number formats were chosen from (0 for float32)
    formats: dict = field(default_factory=dict)  # what the formats chose (Formats.describe), for the summary
    predictions: np.ndarray | None = None  # top-1 class per image, in stream order
    reference_predictions: np.ndarray | None = None  # the dense fixed-point network's top-1 class per image
    labels: np.ndarray | None = None  # label per image (negative: unlabelled)
    faults: dict[str, Any] | None = None  # memory-fault record (faults.FaultInjector.summary); None without faults

    def correct(self) -> tuple[np.ndarray, np.ndarray]:
        """Per image: (dense network right, this run right), for paired accuracy statistics. An unlabelled image
        counts as right when the dense network's answer is kept (the optimiser's convention)."""
        assert self.predictions is not None and self.reference_predictions is not None and self.labels is not None
        target = np.where(self.labels >= 0, self.labels, self.reference_predictions)
        return self.reference_predictions == target, self.predictions == target


def _topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int(np.count_nonzero((top == labels[:, None]).any(axis=1)))


def run(
    network: Network,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    config: FunctionalConfig,
    spec: SpeculationParams | None = None,
    calibration: np.ndarray | None = None,
    observer: WindowObserver | None = None,
    progress: Callable[[int], None] | None = None,
    on_prepare: Callable[[PreparedNetwork], None] | None = None,
    faults: FaultInjector | None = None,
    fault_table: Any = None,
) -> FunctionalResult:
    """Stream `batches` of (images, labels) through the accelerator's functional model.

    Calibration uses `calibration` images if given, else the first `config.calibration_images` images of the stream
    (they are also evaluated: the format only needs their ranges). Memory stays flat in the number of images.
    `on_prepare` sees the prepared network (formats, layer modes, weight streams) before the first batch runs.
    Memory faults come from `config.fault_injection` (voltages become rates by the voltage models of `fault_table`,
    the design's EnergyTable; default the built-in table's), or from `faults`, an injector built by the caller; see
    accelsim.functional.faults.
    """
    batches = iter(batches)
    buffered: list[tuple[np.ndarray, np.ndarray]] = []
    if config.number_format.quantised and calibration is None:
        got = 0
        for xb, yb in batches:
            buffered.append((xb, yb))
            got += len(xb)
            if got >= config.calibration_images:
                break
        if not buffered:
            raise ConfigError("the dataset yielded no images")
        calibration = np.concatenate([b[0] for b in buffered])[: config.calibration_images]
    prepared = prepare(network, config, calibration if calibration is not None else np.zeros((0,)), spec)
    n_calibration = 0
    if config.number_format.quantised:
        assert calibration is not None  # given, or taken from the stream above
        n_calibration = len(calibration)
    if on_prepare is not None:
        on_prepare(prepared)
    injector = faults if faults is not None else build_injector(config.fault_injection, prepared, table=fault_table)
    float_net = None
    if config.float_reference and config.number_format.quantised:  # the float network with the same pruning
        float_net = _build(prepared.network, _FLOAT_CONFIG, None, None)
    graph = network.graph
    stats = {name: _ConvStats(small=SmallPositiveErrors() if plan.mode == "predictive" else None)
             for name, plan in prepared.convs.items()}

    # In exact mode the outputs are the dense ones whenever the lanes summed exactly and cut no positive window (the
    # exactness guard): then a batch's dense reference answers are its own, and the reference pass is skipped.
    lane_layers = {name for name, plan in prepared.convs.items() if plan.stream is not None}
    skip_reference = config.mode == "exact" and config.number_format.is_fixed
    batch_exact = [True]

    def observe(name: str, res: LaneResult) -> None:
        st = stats[name]
        before = st.mismatches
        st.add(res, config.terminate_at_zero)
        if name in lane_layers and (st.mismatches != before or not res.exact_sums):
            batch_exact[0] = False
        if observer is not None:
            observer(name, res)

    input_zeros: dict[str, list[int]] = {}
    n_images = 0
    hits = {"top1": 0, "top5": 0, "agree": 0, "top1_float": 0, "top5_float": 0, "agree_float": 0}
    labelled = 0
    n_batches = 0
    reference_runs = 0
    per_image: dict[str, list[np.ndarray]] = {"pred": [], "ref": [], "label": []}
    stream = _chain(buffered, batches)
    for xb, yb in (injector.rechunk(stream) if injector else stream):
        n_batches += 1
        batch_exact[0] = True
        net = injector.view(prepared, n_images, len(xb)) if injector else prepared
        out = net.forward(xb, policy=True, observer=observe, input_zeros=input_zeros)[graph.output_blob]
        scores = out.reshape(len(xb), -1)
        pred = scores.argmax(axis=1)
        if config.mode == "dense" or (skip_reference and batch_exact[0]):
            ref_pred = pred
        else:
            ref = net.forward(xb, policy=False)[graph.output_blob].reshape(len(xb), -1)
            ref_pred = ref.argmax(axis=1)
            reference_runs += 1
        hits["agree"] += int(np.count_nonzero(pred == ref_pred))
        per_image["pred"].append(pred)
        per_image["ref"].append(ref_pred)
        per_image["label"].append(np.asarray(yb, dtype=np.int64))
        valid = yb >= 0
        labelled += int(np.count_nonzero(valid))
        hits["top1"] += _topk_hits(scores[valid], yb[valid], 1)
        hits["top5"] += _topk_hits(scores[valid], yb[valid], 5)
        if float_net is not None:
            fs = float_net.forward(xb, policy=False)[graph.output_blob].reshape(len(xb), -1)
            hits["top1_float"] += _topk_hits(fs[valid], yb[valid], 1)
            hits["top5_float"] += _topk_hits(fs[valid], yb[valid], 5)
            hits["agree_float"] += int(np.count_nonzero(fs.argmax(axis=1) == ref_pred))
        if injector:  # the fault-free dense network's answers: what the faults changed, image by image
            fault_free = prepared.forward(xb, policy=False)[graph.output_blob].reshape(len(xb), -1).argmax(axis=1)
            injector.record(0, scores, yb, fault_free)
            injector.run_repeats(prepared, xb, yb, n_images, fault_free)
        n_images += len(xb)
        if progress is not None:
            progress(len(xb))
    if n_images == 0:
        raise ConfigError("the dataset yielded no images")
    log.debug("%s: dense reference pass run on %d batch(es)", network.name, reference_runs)

    accuracy = {
        "top1": hits["top1"] / labelled if labelled else math.nan,
        "top5": hits["top5"] / labelled if labelled else math.nan,
        "agreement": hits["agree"] / n_images,
    }
    if float_net is not None:
        accuracy.update(
            top1_float=hits["top1_float"] / labelled if labelled else math.nan,
            top5_float=hits["top5_float"] / labelled if labelled else math.nan,
            agreement_float=hits["agree_float"] / n_images,
        )
    rows = []
    for layer in graph.layers:
        if isinstance(layer, Conv):
            plan, st = prepared.convs[layer.name], stats[layer.name]
            windows = st.windows / n_images
            macs_dense = graph.macs(layer)
            rows.append(dict(
                layer=layer.name, type="conv", mode=plan.mode, relu=layer.relu, eligible=plan.eligibility.eligible,
                reason=plan.eligibility.reason, images=n_images, windows=windows, kernel_size=layer.kernel_size,
                macs_dense=float(macs_dense), macs_performed=st.macs_performed / n_images,
                mac_reduction=macs_dense * n_images / st.macs_performed if st.macs_performed else math.nan,
                neg_fraction=st.neg / st.windows if st.windows else math.nan,
                input_zero_fraction=input_zeros[layer.name][0] / input_zeros[layer.name][1],
                zero_fraction=st.zero_out / st.windows if st.windows else math.nan,
                tn_rate=st.tn_spec / st.neg if plan.mode == "predictive" and st.neg else math.nan,
                tn_rate_any=st.tn_any / st.neg if plan.mode != "dense" and st.neg else math.nan,
                fn_rate=st.fn / st.pos if plan.mode == "predictive" and st.pos else math.nan,
                pos_fraction=st.pos / st.windows if st.windows else math.nan,
                **(st.small.shares() if st.small is not None else
                   {"fn_small_share": math.nan, "fn_small_mass_share": math.nan, "fn_mass_share": math.nan}),
                exact_violations=st.mismatches,
                fl_in=prepared.blob_fl.get(layer.inputs[0]), fl_w=plan.fl_w, fl_out=prepared.blob_fl.get(layer.output),
                pruned_fraction=prepared.pruned_fraction.get(layer.name, 0.0),
                weight_zero_fraction=plan.weight_zero_fraction,
            ))
            if st.mismatches and not injector:  # faulty weights break the sign premise: counted, not a bug
                log.error("layer %s: %d windows were cut short although their sum was positive", layer.name,
                          st.mismatches)
        elif isinstance(layer, FC):
            macs = graph.macs(layer)
            rows.append(dict(layer=layer.name, type="fc", mode="dense", relu=layer.relu, eligible=False,
                             reason="fully connected layers run dense (docs/model.md A.7-12)", images=n_images,
                             windows=float(layer.out_features), kernel_size=layer.in_features, macs_dense=float(macs),
                             macs_performed=float(macs), mac_reduction=1.0, neg_fraction=math.nan,
                             input_zero_fraction=math.nan,
                             zero_fraction=math.nan, tn_rate=math.nan, tn_rate_any=math.nan, fn_rate=math.nan,
                             pos_fraction=math.nan, fn_small_share=math.nan, fn_small_mass_share=math.nan,
                             fn_mass_share=math.nan,
                             exact_violations=0, fl_in=prepared.blob_fl.get(layer.inputs[0]),
                             fl_w=prepared.formats.layer_weights[layer.name].fl if prepared.formats else None,
                             fl_out=prepared.blob_fl.get(layer.output),
                             pruned_fraction=prepared.pruned_fraction.get(layer.name, 0.0),
                             weight_zero_fraction=prepared.fc_zero_fraction.get(layer.name, 0.0)))
    fault_record = None
    if injector:  # with several draws, top-1 and top-5 are their means (the rest is draw 0's)
        fault_record = injector.summary(n_images)
        accuracy.update(top1=fault_record["top1_mean"], top5=fault_record["top5_mean"])
    return FunctionalResult(network=network.name, mode=config.mode, images=n_images,
                            layers=add_fault_columns(pd.DataFrame(rows), injector, n_images),
                            accuracy=accuracy, blob_fl=prepared.blob_fl, batches=n_batches,
                            calibration_images=n_calibration,
                            formats=prepared.formats.describe() if prepared.formats is not None else {},
                            predictions=np.concatenate(per_image["pred"]),
                            reference_predictions=np.concatenate(per_image["ref"]),
                            labels=np.concatenate(per_image["label"]), faults=fault_record)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest
