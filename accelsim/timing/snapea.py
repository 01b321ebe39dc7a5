"""The SnaPEA PE-array timing model: per-window MAC counts -> cycles and an event log, per layer.

Work mapping (docs/model.md A.3, A.7-3 and 4; docs/timing_snapea.md): a conv layer's output windows are cut into input
portions (`snapea_map.Mapping`: bands of output rows, 2-D tiles or runs of windows); portions go to the PE rows
(statically, or dynamically from a queue), each broadcast to its row; kernels are split into partitions, each held
by one or more PE columns (columns of one partition split a portion's lane groups between them); a PE runs each of
its kernels over its share of the portion (portions outer, kernels inner), its lanes taking lane groups of adjacent
windows of one kernel. A group costs its slowest lane (the broadcast weight stream stops only when every lane is
done); a PE's time on a portion is the sum of its groups; the PEs of a row meet at a barrier after every portion.
Kernels that fit a PE's buffers are kept for the layer; the others stream, once per portion step, broadcast down the
columns, so with streamed kernels all rows advance step by step. Each step ends when both the compute and the step's
DMA are done (double buffering). Fully connected layers put one output neuron on each lane (dense), optionally over
a batch of images per weight fetch. The mapper (`snapea_mapper`) picks each layer's schedule; the model here times
the schedule it is given. Everything is vectorised over windows and images (Numba for the lane-group reduction);
Python loops run over PE rows and portion steps only. `accelsim.timing.reference` steps the same machine one cycle
at a time and must agree exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, NamedTuple

import numba
import numpy as np

from accelsim.arch import ArchSpec
from accelsim.errors import ConfigError
from accelsim.intmath import ceil_div
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
    Graph,
    Layer,
    MaxPool,
    ReLU,
    Softmax,
)
from accelsim.timing import snapea_map
from accelsim.timing.events import EventLog, LayerTiming
from accelsim.timing.model import MapperClock
from accelsim.timing.snapea_map import KERNEL_DEALINGS, LANE_ASSIGNMENTS, PORTIONS, ROW_DEALINGS
from accelsim.timing.snapea_map import Mapping as ConvMapping
from accelsim.timing.widths import DataWidths

log = logging.getLogger(__name__)

DEALINGS = ("round_robin", "block")  # the static dealings of both tiles and kernels (the options before the mapper)
MAPPERS = ("search", "fixed")
MAPPER_SCORES = ("dense", "profile")
MAPPER_OBJECTIVES = ("edp", "fastest", "energy")
__all__ = ["LANE_ASSIGNMENTS", "PORTIONS", "ROW_DEALINGS", "KERNEL_DEALINGS", "DEALINGS", "ConvMapping",
           "SnaPEAOptions", "LayerPlan", "ConvContext", "SnaPEATiming", "plan_layer", "layer_totals",
           "simulate_layer", "timing_from_totals", "costed_layers"]

# Layers that cost nothing on their own: fused into their producer (ReLU, LRN in the PE's output path), pure
# addressing (Flatten, Concat: producers write straight into the concatenated blob), identities at inference
# (Dropout; BatchNorm is folded at load time) or left to the host (Softmax over the class scores).
_FREE = (ReLU, LRN, Dropout, BatchNorm, Flatten, Concat, Softmax)
_POOLS = (MaxPool, AvgPool)


def _opt_int(options: dict[str, Any], key: str) -> None:
    if isinstance(options.get(key), str) and options[key].strip().isdigit():
        options[key] = int(options[key])


@dataclass(frozen=True)
class SnaPEAOptions:
    """Modelling options of the SnaPEA timing model (`options.<key>` in the arch file or `--set`).

    With `mapper: search` (default) every key left unset is searched per layer and a key that is set pins that
    dimension; `mapper: fixed` is the schedule of accelsim before the mapper (unset keys take its defaults: 'auto'
    bands dealt round robin, kernels round robin over all columns, lanes along rows), which reproduces its numbers.
    """

    mapper: str = "search"  # search | fixed
    mapper_score: str = "profile"  # profile: layers with early termination ranked on their first images; dense
    mapper_objective: str = "edp"  # edp: least energy x cycles, no slower than the fixed schedule | fastest | energy
    profile_images: int = 2  # images the profile score uses (the first ones the layer sees, whatever the batches)
    lane_assignment: str | None = None  # row | flat | interleaved | block (see snapea_map)
    tile_rows: int | str | None = None  # output rows per band/tile; "auto": the band rule of the fixed schedule
    tile_cols: int | None = None  # output columns per tile (pins portion: tile)
    portion: str | None = None  # band | tile | range
    tile_dealing: str | None = None  # portions -> PE rows: round_robin | block | dynamic
    kernel_dealing: str | None = None  # kernels -> kernel partitions: round_robin | block | balanced
    kernel_columns: int | None = None  # kernel partitions over the PE columns (the rest of a column split is windows)
    array_shape: str | None = None  # logical PE groups: 'physical' or 'RxC' (e.g. 4x16); unset: searched
    fc_batch: str = "auto"  # fc layers: auto (the mapper picks 1 or the run's batch) | image (1) | batch
    portion_lookahead: int = 0  # 0: the paper's barrier per portion; 1: the mapper may let PEs run one portion ahead

    def __post_init__(self) -> None:
        choices = (("mapper", MAPPERS), ("mapper_score", MAPPER_SCORES),
                   ("mapper_objective", MAPPER_OBJECTIVES), ("lane_assignment", LANE_ASSIGNMENTS),
                   ("portion", PORTIONS), ("tile_dealing", ROW_DEALINGS), ("kernel_dealing", KERNEL_DEALINGS),
                   ("fc_batch", ("auto", "image", "batch")))
        for key, allowed in choices:
            value = getattr(self, key)
            if value is not None and value not in allowed:
                raise ConfigError(f"options.{key} must be one of {', '.join(allowed)}, got {value!r}")
        if self.tile_rows is not None and self.tile_rows != "auto" and (
                isinstance(self.tile_rows, bool) or not isinstance(self.tile_rows, int) or self.tile_rows < 1):
            raise ConfigError(f"options.tile_rows must be 'auto' or an integer >= 1, got {self.tile_rows!r}")
        for key in ("tile_cols", "kernel_columns", "profile_images"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"options.{key} must be an integer >= 1, got {value!r}")
        if self.tile_cols is not None and self.portion not in (None, "tile"):
            raise ConfigError(f"options.tile_cols sets the width of 2-D tiles; it cannot go with "
                              f"options.portion={self.portion!r}")
        if isinstance(self.portion_lookahead, bool) or self.portion_lookahead not in (0, 1):
            raise ConfigError(f"options.portion_lookahead must be 0 (a barrier after every portion, the paper) or 1 "
                              f"(a second portion slot per PE), got {self.portion_lookahead!r}")
        if self.lane_assignment == "block" and self.portion == "range":
            raise ConfigError("options.lane_assignment=block needs rectangular portions (band or tile), not range")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> SnaPEAOptions:
        """Validate `arch.options`: unknown keys are errors naming the allowed ones; integers may come as strings."""
        options = dict(options or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(k for k in options if k not in allowed)
        if unknown:
            raise ConfigError(f"unknown SnaPEA timing option(s) {', '.join('options.' + k for k in unknown)}; "
                              f"allowed: {', '.join('options.' + k for k in allowed)}")
        for key in ("tile_rows", "tile_cols", "kernel_columns", "profile_images", "portion_lookahead"):
            _opt_int(options, key)
        return cls(**options)


# -- the static plan of a layer (shared with the reference simulator) --------------------------------------------------
@dataclass(frozen=True)
class DMA:
    """DRAM transfer timing: `latency` cycles, then `rate` bytes per cycle (a row's share; `rate * rows` for all)."""

    latency: int
    rate: Fraction  # bytes per cycle of one PE row's share of the DRAM channel

    def cycles(self, nbytes: int, rows_sharing: int = 1) -> int:
        if nbytes <= 0:
            return 0
        rate = self.rate * rows_sharing
        return self.latency + ceil_div(nbytes * rate.denominator, rate.numerator)

    def cycles_array(self, nbytes: np.ndarray, rows_sharing: int = 1) -> np.ndarray:
        nbytes = np.asarray(nbytes, dtype=np.int64)
        rate = self.rate * rows_sharing
        num, den = rate.numerator, rate.denominator
        return np.where(nbytes > 0, self.latency + (nbytes * den + num - 1) // num, 0)


def _empty(dtype: Any = np.int64) -> Any:
    return field(default_factory=lambda: np.zeros(0, dtype))


@dataclass(frozen=True)
class LayerPlan:
    """Everything about a layer's schedule that does not depend on the MAC counts."""

    name: str
    kind: str  # "conv", "fc" or "eltwise"
    kernel_len: int  # K: weights per kernel (conv) or inputs per neuron (fc)
    kernels: int  # F: kernels (conv) or output neurons (fc)
    out_hw: tuple[int, int]  # (Ho, Wo); (1, 1) for fc
    rows: int
    cols: int
    lanes: int
    tile_rows: int  # rows of a band / tile (conv; 0 for window runs)
    tile_row: np.ndarray  # (P,) PE row of each portion (conv, static dealing); -1 everywhere with dynamic dealing
    kernel_pe: np.ndarray  # (F,) kernel partition of each kernel (conv) or flat PE index r*cols + c of a neuron (fc)
    resident: bool  # every PE's kernels fit its weight (and index) buffer: loaded once per layer
    chunk: int  # the largest entry of kernel_chunk (conv) / 0: streamed kernels longer than half a buffer
    stream_bytes: np.ndarray  # fc: (rows,) bytes of weights a row streams from DRAM per batch; conv: zeros
    prologue_bytes: int  # bytes loaded at full bandwidth before any row starts (resident weights; fc input)
    in_bytes: np.ndarray  # (P,) input bytes of each portion that come from DRAM (conv)
    out_bytes: np.ndarray  # (P,) conv: output bytes of each portion that go to DRAM; fc: (rows,) per PE row
    dma: DMA
    pau: bool
    static: Mapping[tuple[str, str, int], int]  # data-independent events per unit: (component, event, bits) -> count
    eltwise_cycles: int = 0  # eltwise layers only
    mapping: ConvMapping | None = None  # conv: the schedule's shape
    label: str = ""  # a short description of the schedule (the `mapping` column)
    fits: bool = True  # every portion's input (and saved partial sums) fits a PE's input half
    portions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))  # (P, 4), snapea_map
    split: int = 1  # columns per kernel partition (they split each portion's lane groups)
    kcols: int = 1  # kernel partitions
    dynamic: bool = False  # portions are claimed from a queue by the next row to start one
    lookahead: int = 0  # portions a PE may run ahead of its row's slowest PE (static dealing, kept kernels, no spills)
    seg_groups: np.ndarray = _empty()  # (P * split,) lane groups of each (portion, column slice)
    group_win: np.ndarray = _empty(np.int32)  # (G, lanes) windows of every lane group (-1 = empty lane)
    group_seg: np.ndarray = _empty(np.int32)  # (G,) segment p * split + s of every lane group
    # (F,) stored entries per kernel (< K when zero weights are skipped)
    kernel_lengths: np.ndarray = _empty()
    # (F,) chunk of a streamed kernel longer than half a buffer (partial sums saved at each chunk start); 0 for
    # kernels that sit whole in the buffer
    kernel_chunk: np.ndarray = _empty()
    # (F,) kernels loaded once per layer (the rest stream every portion step)
    pinned: np.ndarray = _empty(bool)
    step_weight_bytes: int = 0  # bytes of the streamed kernels, fetched once per portion step and broadcast down the
    # columns; > 0 makes the rows advance in lockstep (one step barrier over the whole array)
    neg_start: np.ndarray | None = None  # (F,) where each kernel's PAU sign checks begin; None: a check per MAC
    n_spec: np.ndarray | None = None  # (F,) speculation-set size (a check after N MACs when > 0)
    batch: int = 1  # fc: images that share one weight fetch (the unit of `static` and of the totals)
    park_bytes: int = 0  # fc over a batch: each image's input, written to DRAM by its producer and read back here
    widths: DataWidths | None = None  # bits per weight / activation / partial sum (None: the arch's word_bits)

    @property
    def lockstep(self) -> bool:
        return self.step_weight_bytes > 0

    @property
    def tiles(self) -> int:
        """Portions per image (the name is from before the mapper, when every portion was a band of rows)."""
        return len(self.tile_row)

    @property
    def steps(self) -> int:
        """Portion steps: the most portions any PE row takes (dynamic dealing: the rounds of the queue)."""
        if not self.tiles:
            return 0
        if self.dynamic:
            return ceil_div(self.tiles, self.rows)
        return int(np.bincount(self.tile_row, minlength=self.rows).max())

    def row_tiles(self, r: int) -> list[int]:
        return [int(t) for t in np.flatnonzero(self.tile_row == r)]

    def partition_kernels(self) -> list[np.ndarray]:
        """Kernels of each partition that has any, in processing order (the used kernel partitions)."""
        return [k for k in (np.flatnonzero(self.kernel_pe == p) for p in range(self.kcols)) if len(k)]

    @property
    def active_cols(self) -> int:
        return len(self.partition_kernels()) * self.split


def costed_layers(graph: Graph) -> list[Layer]:
    """Layers that take time on the PE array: conv, fc, and pooling / add layers not fused into a conv."""
    fused = set(_fused_pools(graph).values())
    return [l for l in graph.layers if l.runs_on_array and (l.has_weights or l.name not in fused)]


def _fused_pools(graph: Graph) -> dict[str, str]:
    """conv name -> name of the pooling layer it feeds through a single-consumer chain of free layers."""
    consumers = graph.consumers()
    out: dict[str, str] = {}
    for conv in graph.conv_layers():
        blob = conv.output
        while True:
            users = consumers.get(blob, [])
            if len(users) != 1 or blob == graph.output_blob:
                break
            nxt = users[0]
            if isinstance(nxt, _POOLS):
                out[conv.name] = nxt.name
                break
            if not nxt.on_the_fly:
                break
            blob = nxt.output
    return out


def _aliases_of_output(graph: Graph) -> set[str]:
    """Blobs whose values end up in the network output through free layers only (written to DRAM)."""
    producer = {l.output: l for l in graph.layers}
    out, todo = set(), [graph.output_blob]
    while todo:
        blob = todo.pop()
        out.add(blob)
        layer = producer.get(blob)
        if layer is not None and isinstance(layer, _FREE):
            todo.extend(layer.inputs)
    return out


def _aliases_of_input(graph: Graph) -> set[str]:
    """Blobs that are the network input seen through free layers (they come from DRAM)."""
    out = {graph.input_blob}
    for layer in graph.layers:
        if isinstance(layer, _FREE) and all(b in out for b in layer.inputs):
            out.add(layer.output)
    return out




def _stream_arrays(layer: Conv, f_count: int, stream: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length, neg_start, n_spec) of a WeightStream, checked against the layer; ConfigError names what is wrong."""
    k = layer.kernel_size
    out = []
    for name in ("length", "neg_start", "n_spec"):
        arr = getattr(stream, name, None)
        arr = None if arr is None else np.asarray(arr)
        if arr is None or arr.shape != (f_count,) or arr.dtype.kind not in "iu":
            raise ConfigError(f"layer '{layer.name}': stream.{name} must hold one integer per kernel, shape "
                              f"({f_count},); got {None if arr is None else (arr.shape, str(arr.dtype))}")
        out.append(arr.astype(np.int64))
    length, neg_start, n_spec = out
    if length.size and (length.min() < 0 or length.max() > k):
        raise ConfigError(f"layer '{layer.name}': stream.length must lie in [0, {k}] (the kernel size), got "
                          f"[{length.min()}, {length.max()}]")
    for name, arr in (("neg_start", neg_start), ("n_spec", n_spec)):
        if np.any(arr < 0) or np.any(arr > length):
            raise ConfigError(f"layer '{layer.name}': stream.{name} must lie in [0, length] for every kernel")
    return length, neg_start, n_spec



def _deal(n: int, parts: int, how: str) -> np.ndarray:
    if how == "round_robin":
        return np.arange(n) % parts
    return np.arange(n) // max(1, ceil_div(n, parts))


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` bytes in proportion to integer `weights`, exactly (the parts sum to total)."""
    cum = np.concatenate(([0], np.cumsum(weights, dtype=np.int64)))
    edges = (total * cum) // max(int(cum[-1]), 1)
    return np.diff(edges).astype(np.int64)


def dma_of(arch: ArchSpec, rows: int | None = None) -> DMA:
    """A PE row's share of the DRAM channel: bandwidth / rows (default: the physical rows), latency rounded up to
    whole cycles."""
    rate = Fraction(arch.dram_bytes_per_cycle).limit_denominator(10**6) / (rows or arch.array.rows)
    latency = math.ceil(round(arch.dram.latency_ns * arch.clock_mhz / 1e3, 9))
    return DMA(latency=latency, rate=rate)


def kernel_partition(lengths: np.ndarray, kcols: int, how: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Partition (0..kcols-1) of every kernel: round robin, contiguous blocks, or balanced (longest processing time
    first on `weights`, default the stored lengths: each kernel in turn, heaviest first, to the lightest partition;
    ties by kernel and partition index, so the result is deterministic)."""
    n = len(lengths)
    if how != "balanced":
        return _deal(n, kcols, how)
    w = np.asarray(lengths if weights is None else weights, np.float64)
    part = np.zeros(n, np.int64)
    _longest_first(np.argsort(-w, kind="stable"), w, int(kcols), part)
    return part


@numba.njit(cache=True)
def _longest_first(order, w, kcols, part):  # pragma: no cover - compiled
    """Each kernel of `order` to the lightest partition (the lowest index among equal loads); the mapper deals
    every kernel partitioning this way (1,000 kernels x 64 partitions on SqueezeNet's conv10)."""
    load = np.zeros(kcols, np.float64)
    for f in order:
        p = 0
        for q in range(1, kcols):
            if load[q] < load[p]:
                p = q
        part[f] = p
        load[p] += w[f]


def _weight_residency(lengths: np.ndarray, kernel_col: np.ndarray, cols: int, cap: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Which kernels a PE keeps for the whole layer (pinned) and the chunk of each streamed one.

    A PE whose kernels fit its `cap` buffer entries keeps them all. Otherwise it reserves a double-buffered stream
    slot (2 x the longest of its kernels, at most the whole buffer) and pins whole kernels, in processing order, in
    the rest; the others are fetched again every portion step (they cannot stay: the portion loop is outside the
    kernel loop). A streamed kernel longer than half the buffer goes through it in chunks of cap // 2 entries.
    """
    pinned = np.zeros(len(lengths), np.bool_)
    chunk = np.zeros(len(lengths), np.int64)
    _residency(np.asarray(lengths, np.int64), np.asarray(kernel_col, np.int64), int(cols), int(cap), pinned, chunk)
    return pinned, chunk


@numba.njit(cache=True)
def _residency(lengths, kernel_col, cols, cap, pinned, chunk):  # pragma: no cover - compiled
    """`_weight_residency` in two passes over the kernels (each column's load and longest kernel, then first fit per
    column); the mapper calls it for every kernel partitioning."""
    half = cap // 2
    total = np.zeros(cols, np.int64)
    longest = np.zeros(cols, np.int64)
    for f in range(len(lengths)):
        c = kernel_col[f]
        if 0 <= c < cols:
            total[c] += lengths[f]
            longest[c] = max(longest[c], lengths[f])
    used = np.zeros(cols, np.int64)
    for f in range(len(lengths)):  # first fit, in processing order, per column
        c = kernel_col[f]
        if c < 0 or c >= cols:
            continue
        if total[c] <= cap:
            pinned[f] = True
            continue
        budget = cap - 2 * min(longest[c], half)
        if lengths[f] <= budget and used[c] + lengths[f] <= budget:
            pinned[f] = True
            used[c] += lengths[f]
        elif lengths[f] > half:
            chunk[f] = half


def _portions(layer: Conv, in_shape: tuple[int, ...], ho: int, tile_rows: int, activation_bits: int) -> np.ndarray:
    """Bytes of the input portion of every band of `tile_rows` output rows (halo included, padding not)."""
    c_in, h_in, w_in = in_shape
    y0 = np.arange(0, ho, tile_rows)
    rows = snapea_map.input_span(y0, np.minimum(y0 + tile_rows, ho), layer.stride[0], layer.pad[0], layer.kernel[0],
                                 h_in)
    return ceil_div(c_in * rows * w_in * activation_bits, 8)


def auto_tile_rows(layer: Conv, in_shape: tuple[int, ...], out_hw: tuple[int, int], rows: int, cap_bytes: int,
                   psum_bytes_per_window: int, activation_bits: int) -> int:
    """`tile_rows: auto` (the fixed schedule): the fewest band steps whose portions fit a PE's input half, then the
    smallest even bands.

    r_max = the largest band whose input portion (halo included) plus the saved partial sums of a chunked kernel's
    windows fits `cap_bytes` (1 if even one row does not fit); steps = ceil(ceil(Ho / r_max) / rows); the band is
    then ceil(Ho / (rows x steps)) rows, so every PE row gets about the same share in the same number of steps.
    """
    ho, wo = out_hw
    r_max = 1
    for r in range(2, ho + 1):
        if int(_portions(layer, in_shape, ho, r, activation_bits).max()) + r * wo * psum_bytes_per_window > cap_bytes:
            break
        r_max = r
    if (r_max == 1 and int(_portions(layer, in_shape, ho, 1, activation_bits).max()) + wo * psum_bytes_per_window
            > cap_bytes):
        log.debug("layer %s: one output row's input portion exceeds the PE's input half (%d B)", layer.name, cap_bytes)
    steps = ceil_div(ceil_div(ho, r_max), rows)
    return ceil_div(ho, rows * steps)


# -- conv layers: the context a schedule is planned in, and the plan of one mapping -----------------------------------
class Spatial(NamedTuple):
    """A conv layer's map sizes, kernel, stride and padding: the same for every layer whose portions read the same
    input boxes (per channel), whatever its channels."""

    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]


@dataclass(frozen=True)
class ConvContext:
    """Everything a conv layer's schedule depends on apart from its mapping; hashable, so the mapper caches its
    search per context (two layers of the same shape in the same surroundings share one search)."""

    arch: ArchSpec
    shape: Conv  # the layer with its names blanked
    in_shape: tuple[int, int, int]
    out_hw: tuple[int, int]
    kernels: int
    lengths: tuple[int, ...]  # stored entries per kernel
    in_dram: int  # bytes of the layer's input that come from DRAM (per image)
    out_words: int  # words the layer writes (after a fused pool)
    out_dram: int  # bytes of its output that go to DRAM (per image)
    pool_events: int  # mac.pool events per image (a fused pool sees every conv output)
    widths: DataWidths  # bits per stored weight, activation and partial sum

    @property
    def lengths_array(self) -> np.ndarray:
        return np.array(self.lengths, np.int64)

    @property
    def spatial(self) -> Spatial:
        """What the input under a box of output windows depends on, per input channel."""
        layer = self.shape
        return Spatial(self.in_shape[1:], self.out_hw, layer.kernel, layer.stride, layer.pad)

    @property
    def cap(self) -> int:
        """Entries of the smaller of the weight and index buffers (weights of `widths.weight_bits` each)."""
        a = self.arch
        return min(a.pe.weight_buffer_bytes * 8 // self.widths.weight_bits,
                   a.pe.index_buffer_bytes * 8 // a.pe.index_bits)


def _check_conv(arch: ArchSpec, layer: Conv, widths: DataWidths | None = None) -> None:
    """Index width and the smallest buffers a conv layer can stream through (ConfigError naming what is short)."""
    k, wb, ib = layer.kernel_size, DataWidths.resolve(arch, widths).weight_bits, arch.pe.index_bits
    if k > 2**ib:
        raise ConfigError(f"layer '{layer.name}': pe.index_bits = {ib} addresses {2**ib} kernel positions, but its "
                          f"kernels have {k} weights (need index_bits >= {math.ceil(math.log2(k))})")
    for buf, nbytes, bits in (("weight buffer", arch.pe.weight_buffer_bytes, wb),
                              ("index buffer", arch.pe.index_buffer_bytes, ib)):
        cap = nbytes * 8 // bits
        if cap < 2:
            raise ConfigError(f"layer '{layer.name}': the {buf} ({nbytes} B = {cap} entries of {bits} bits) is "
                              f"too small for a kernel of {k} weights: streaming one lane group's kernel needs "
                              "2 entries (double buffering)")


def conv_context(arch: ArchSpec, graph: Graph, layer: Conv, lengths: np.ndarray,
                 widths: DataWidths | None = None) -> ConvContext:
    """The planning context of a conv layer of `graph` whose kernels store `lengths` entries, its data stored at
    `widths` (default: `arch.word_bits` for everything)."""
    widths = DataWidths.resolve(arch, widths)
    _check_conv(arch, layer, widths)
    ab = widths.activation_bits
    half = arch.array.rows * arch.array.cols * arch.pe.io_buffer_bytes // 2  # one I/O RAM half (docs/model.md A.7-5)
    f_count, ho, wo = graph.out_shape(layer)
    in_words = sum(math.prod(graph.shapes[b]) for b in layer.inputs)
    in_total = ceil_div(in_words * ab, 8)
    from_dram = all(b in _aliases_of_input(graph) for b in layer.inputs)
    pool_name = _fused_pools(graph).get(layer.name)
    out_shape = graph.out_shape(graph.layer(pool_name)) if pool_name else (f_count, ho, wo)
    out_blob = graph.layer(pool_name).output if pool_name else layer.output
    out_words = math.prod(out_shape)
    out_total = ceil_div(out_words * ab, 8)
    out_dram = out_total if out_blob in _aliases_of_output(graph) else max(0, out_total - half)
    shape = dataclasses.replace(layer, name="", inputs=(), output="")
    c, h, w = graph.in_shapes(layer)[0]
    return ConvContext(arch=arch, shape=shape, in_shape=(int(c), int(h), int(w)), out_hw=(int(ho), int(wo)),
                       kernels=int(f_count), lengths=tuple(int(v) for v in lengths),
                       in_dram=in_total if from_dram else max(0, in_total - half), out_words=int(out_words),
                       out_dram=int(out_dram), pool_events=int(f_count * ho * wo) if pool_name else 0, widths=widths)


def box_words(sp: Spatial, boxes: np.ndarray, channels: int) -> np.ndarray:
    """Input words under output boxes [ya, yb) x [xa, xb) (`boxes[..., :4]`; halo included, padding not sent; 0 for
    empty boxes) of a layer with these `Spatial` facts, over `channels` input channels."""
    ya, yb, xa, xb = (boxes[..., i] for i in range(4))
    h_in, w_in = sp.in_hw
    rows = snapea_map.input_span(ya, yb, sp.stride[0], sp.pad[0], sp.kernel[0], h_in)
    cols = np.where((xa == 0) & (xb == sp.out_hw[1]), w_in,
                    snapea_map.input_span(xa, xb, sp.stride[1], sp.pad[1], sp.kernel[1], w_in))
    return np.where((yb > ya) & (xb > xa), channels * rows * cols, 0).astype(np.int64)


_HOW_CODES = {"row": 0, "flat": 1, "block": 2, "interleaved": 3}  # lane assignments as `_slice_words` reads them


def slice_channel_words(sp: Spatial, lanes: int, portions: np.ndarray, how: str, split: int) -> np.ndarray:
    """(P, split) input words per input channel under each column slice's windows: the words of the boxes of
    `snapea_map.slice_parts` (at most three per slice; halos of two boxes count twice), in one compiled pass."""
    p = np.ascontiguousarray(portions, dtype=np.int64).reshape(-1, 4)
    out = np.zeros((len(p), split), np.int64)
    if len(p):
        (ho, wo), (h_in, w_in) = sp.out_hw, sp.in_hw
        counts = np.asarray(snapea_map.group_counts(p, wo, lanes, how), np.int64)
        bh, bw = snapea_map.block_shape(lanes)
        _slice_words(p, counts, ho, wo, lanes, _HOW_CODES[how], split, bh, bw, h_in, w_in, sp.stride[0],
                     sp.stride[1], sp.pad[0], sp.pad[1], sp.kernel[0], sp.kernel[1], out)
    return out


@numba.njit(cache=True)
def _span(lo, hi, stride, pad, kernel, size):  # pragma: no cover - compiled
    """`snapea_map.input_span` of one interval."""
    return max(0, min(size, (hi - 1) * stride - pad + kernel) - max(0, lo * stride - pad))


@numba.njit(cache=True)
def _box_words_at(ya, yb, xa, xb, wo, h_in, w_in, sy, sx, py, px, ky, kx):  # pragma: no cover - compiled
    """`box_words` of one box, per channel."""
    if yb <= ya or xb <= xa:
        return 0
    cols = w_in if xa == 0 and xb == wo else _span(xa, xb, sx, px, kx, w_in)
    return _span(ya, yb, sy, py, ky, h_in) * cols


@numba.njit(cache=True)
def _interval_words(u, v, line_len, line_h, unit_w, y0, x0, y_end, x_end, wo, h_in, w_in, sy, sx, py, px, ky,
                    kx):  # pragma: no cover - compiled
    """Words under the boxes of `snapea_map._interval_parts` for units [u, v) of a layout of lines."""
    if v <= u:
        return 0
    l0, l1 = u // line_len, (v - 1) // line_len
    p0, p1 = u % line_len, (v - 1) % line_len + 1
    if l0 == l1:
        return _box_words_at(y0 + l0 * line_h, min(y0 + (l0 + 1) * line_h, y_end), x0 + p0 * unit_w,
                             min(x0 + p1 * unit_w, x_end), wo, h_in, w_in, sy, sx, py, px, ky, kx)
    head, tail = p0 > 0, p1 < line_len
    f0, f1 = l0 + (1 if head else 0), l1 + 1 - (1 if tail else 0)
    total = 0
    if head:  # the partial first line
        total += _box_words_at(y0 + l0 * line_h, min(y0 + (l0 + 1) * line_h, y_end), x0 + p0 * unit_w,
                               min(x0 + line_len * unit_w, x_end), wo, h_in, w_in, sy, sx, py, px, ky, kx)
    if f1 > f0:  # the whole lines
        total += _box_words_at(y0 + f0 * line_h, min(y0 + f1 * line_h, y_end), x0,
                               min(x0 + line_len * unit_w, x_end), wo, h_in, w_in, sy, sx, py, px, ky, kx)
    if tail:  # the partial last line
        total += _box_words_at(y0 + l1 * line_h, min(y0 + (l1 + 1) * line_h, y_end), x0,
                               min(x0 + p1 * unit_w, x_end), wo, h_in, w_in, sy, sx, py, px, ky, kx)
    return total


@numba.njit(cache=True)
def _slice_words(portions, counts, ho, wo, lanes, how, split, bh, bw, h_in, w_in, sy, sx, py, px, ky, kx,
                 out):  # pragma: no cover - compiled
    """`slice_channel_words`: each portion's lane groups cut into `split` near-equal runs (`slice_counts`), each
    run an interval of a layout of lines (`snapea_map.slice_parts`, case by case), its boxes' words summed."""
    for q in range(portions.shape[0]):
        a, b, c, d = portions[q, 0], portions[q, 1], portions[q, 2], portions[q, 3]
        run = c < 0
        base, extra = counts[q] // split, counts[q] % split
        g = 0
        for s in range(split):
            g0 = g
            g1 = g + base + (1 if s < extra else 0)
            g = g1
            flat = how == 1
            if how == 3:  # interleaved: a slice with groups spreads over its whole portion
                n = (b - a) if run else (b - a) * (d - c)
                g0, g1 = 0, ((n + lanes - 1) // lanes if g1 > g0 else 0)
                flat = True
            if not run:
                if flat:
                    out[q, s] = _interval_words(g0 * lanes, min(g1 * lanes, (b - a) * (d - c)), d - c, 1, 1, a, c,
                                                b, d, wo, h_in, w_in, sy, sx, py, px, ky, kx)
                else:
                    lh, lw = (1, lanes) if how == 0 else (bh, bw)
                    out[q, s] = _interval_words(g0, g1, (d - c + lw - 1) // lw, lh, lw, a, c, b, d, wo, h_in, w_in,
                                                sy, sx, py, px, ky, kx)
                continue
            if flat:
                u, v = a + g0 * lanes, min(a + g1 * lanes, b)
            else:  # row lanes: groups restart at every output row
                g_first = (min(b, (a // wo + 1) * wo) - a + lanes - 1) // lanes
                per_row = (wo + lanes - 1) // lanes
                u = _run_start(g0, a, wo, lanes, g_first, per_row)
                if g1 > g0:
                    last = _run_start(g1 - 1, a, wo, lanes, g_first, per_row)
                    v = min(min(last + lanes, (last // wo + 1) * wo), b)
                else:
                    v = u
            out[q, s] = _interval_words(u, v, wo, 1, 1, 0, 0, ho, wo, wo, h_in, w_in, sy, sx, py, px, ky, kx)


@numba.njit(cache=True)
def _run_start(g, a, wo, lanes, g_first, per_row):  # pragma: no cover - compiled
    """First window of lane group g of a run of windows from `a` with row lanes (groups restart at every row)."""
    if g < g_first:
        return a + g * lanes
    later = g - g_first
    return (a // wo + 1 + later // per_row) * wo + (later % per_row) * lanes


def portion_input_words(ctx: ConvContext, portions: np.ndarray) -> np.ndarray:
    """Input words of each portion (its windows' inputs, halo included): what the row's broadcast carries."""
    return ctx.in_shape[0] * portion_channel_words(ctx.spatial, ctx.arch.pe.lanes, portions)


def portion_channel_words(sp: Spatial, lanes: int, portions: np.ndarray) -> np.ndarray:
    """`portion_input_words` per input channel (every box holds the same rows and columns of each channel)."""
    if len(portions) and portions[0, 2] >= 0:  # rectangles: one box each
        return box_words(sp, portions, 1)
    return slice_channel_words(sp, lanes, portions, "flat", 1)[:, 0]


def partition_channels(ctx: ConvContext, part: np.ndarray) -> int:
    """Input channels the busiest kernel partition reads: a grouped conv's kernel reads only its group's channels,
    so a partition whose kernels sit in g groups needs g x C_in / groups of them (all channels when ungrouped)."""
    groups = ctx.shape.groups
    c_in = ctx.in_shape[0]
    if groups == 1 or not len(part):
        return c_in
    group_of = np.arange(len(part)) // (ctx.kernels // groups)
    touched = max(len(np.unique(group_of[part == p])) for p in np.unique(part))
    return touched * (c_in // groups)


def portion_need_bytes(ctx: ConvContext, portions: np.ndarray, how: str, split: int, chunked: bool,
                       whole: np.ndarray | None = None, channels: int | None = None) -> np.ndarray:
    """(P,) bytes of a PE's input half each portion needs (its largest column slice): the input the PE's lane
    groups read, or the whole portion where that is less (a split column keeps only what its own lane groups read:
    it filters the row's broadcast by address), over the `channels` its kernels read (default all; see
    `partition_channels`), plus one saved partial sum per window of the slice when a kernel runs in chunks.
    `whole`: the portions' input words over all channels, if already known."""
    lanes, ab, pb = ctx.arch.pe.lanes, ctx.widths.activation_bits, ctx.widths.psum_bits
    c_in = ctx.in_shape[0]
    channels = c_in if channels is None else channels
    whole = portion_input_words(ctx, portions) if whole is None else whole
    whole = whole * channels // c_in
    psum = 0
    if chunked:
        groups = snapea_map.slice_counts(snapea_map.group_counts(portions, ctx.out_hw[1], lanes, how), split)
        windows = np.diff(_window_bounds(portions, ctx.out_hw), axis=1)
        psum = np.minimum(groups * lanes, windows).max(1) * ceil_div(pb, 8)
    need = ceil_div(whole * ab, 8) + psum
    if split > 1 and need.max(initial=0) > ctx.arch.pe.io_buffer_bytes // 2:
        words = np.minimum(channels * slice_channel_words(ctx.spatial, lanes, portions, how, split), whole[:, None])
        slice_need = ceil_div(words * ab, 8)
        if chunked:
            slice_need = slice_need + np.minimum(groups * lanes, windows) * ceil_div(pb, 8)
        need = slice_need.max(1)
    return need


def portion_need_floor(ctx: ConvContext, portions: np.ndarray, split: int, chunked: bool, whole: np.ndarray,
                       channels: int | None = None) -> int | None:
    """A lower bound on `portion_need_bytes(...).max()` that costs no slicing (None where none is proven): the
    slices of a rectangular portion tile its windows, so with kernel >= stride on both axes their input boxes
    cover the portion's input box (every input word under it is read by some window) and hold at least `whole` /
    `split` words on average, and their windows' saved partial sums at least the portion's windows / `split`.
    The mapper rejects most candidates with it (most fail the input half)."""
    bits = portion_need_floor_bits(ctx, portions, chunked, whole, channels)
    return None if bits is None else ceil_div(bits, 8 * split)


def portion_need_floor_bits(ctx: ConvContext, portions: np.ndarray, chunked: bool, whole: np.ndarray,
                            channels: int | None = None) -> int | None:
    """`portion_need_floor` x 8 x split before rounding (the same for every split: ceil is monotone)."""
    layer = ctx.shape
    if (not len(portions) or portions[0, 2] < 0 or layer.kernel[0] < layer.stride[0]
            or layer.kernel[1] < layer.stride[1]):
        return None
    ab, pb = ctx.widths.activation_bits, ctx.widths.psum_bits
    c_in = ctx.in_shape[0]
    bits = (whole * (c_in if channels is None else channels) // c_in) * ab
    if chunked:
        bits = bits + 8 * ceil_div(pb, 8) * np.diff(_window_bounds(portions, ctx.out_hw), axis=1)[:, 0]
    return int(bits.max())


def spill_bytes(ctx: ConvContext, portions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P,) spilled input and output bytes of each portion: the layer's DRAM traffic split in proportion to the
    portions' windows (exactly: the parts sum to the totals)."""
    windows = np.diff(_window_bounds(portions, ctx.out_hw), axis=1)[:, 0]
    return _split(ctx.in_dram, windows), _split(ctx.out_dram, windows)


def _window_bounds(portions: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(P, 2) [0, windows) of each portion, for the proportional split of spilled bytes."""
    a, b, c, d = (portions[:, i] for i in range(4))
    n = np.where(c < 0, b - a, (b - a) * (d - c))
    return np.stack([np.zeros_like(n), n], 1)


def grid_of(arch: ArchSpec, m: ConvMapping) -> tuple[int, int]:
    """The logical (rows, cols) of PE groups a mapping uses; ConfigError if it does not use exactly the array's PEs."""
    if m.grid == (0, 0):
        return arch.array.rows, arch.array.cols
    rows, cols = m.grid
    if rows < 1 or cols < 1 or rows * cols != arch.array.rows * arch.array.cols:
        raise ConfigError(f"a logical array of {rows} x {cols} PE groups does not use the {arch.array.rows} x "
                          f"{arch.array.cols} PEs of the array")
    return rows, cols


def parse_grid(value: str | None, arch: ArchSpec) -> tuple[int, int] | None:
    """`options.array_shape`: None (searched), 'physical' -> (0, 0), 'RxC' -> (R, C)."""
    if value is None:
        return None
    if value == "physical":
        return (0, 0)
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"options.array_shape must be 'physical' or 'RxC' (e.g. 4x16), got {value!r}") from None
    try:
        grid_of(arch, ConvMapping(grid=(rows, cols)))
    except ConfigError as exc:
        raise ConfigError(f"options.array_shape = {value!r}: {exc}") from None
    return rows, cols


def fixed_mapping(ctx: ConvContext, opts: SnaPEAOptions) -> ConvMapping:
    """The schedule before the mapper (`options.mapper: fixed`), with every pinned option applied."""
    arch = ctx.arch
    grid = parse_grid(opts.array_shape, arch) or (0, 0)
    rows, cols = grid_of(arch, ConvMapping(grid=grid))
    kcols = min(opts.kernel_columns or cols, cols)
    kdeal = opts.kernel_dealing or "round_robin"
    portion = opts.portion or ("tile" if opts.tile_cols else "band")
    th = opts.tile_rows
    if th is None or th == "auto":
        lengths = ctx.lengths_array
        _, chunk = _weight_residency(lengths, kernel_partition(lengths, kcols, kdeal), kcols, ctx.cap)
        psum = ceil_div(ctx.widths.psum_bits, 8) if chunk.any() else 0
        th = auto_tile_rows(ctx.shape, ctx.in_shape, ctx.out_hw, rows, arch.pe.io_buffer_bytes // 2, psum,
                            ctx.widths.activation_bits)
    tw = opts.tile_cols or (ctx.out_hw[1] if portion == "tile" else 0)
    pieces = rows if portion == "range" else 0
    return ConvMapping(portion=portion, th=int(th) if portion != "range" else 0, tw=int(tw) if portion == "tile"
                       else 0, pieces=pieces, dealing=opts.tile_dealing or "round_robin", kcols=kcols,
                       kernel_dealing=kdeal, lanes=opts.lane_assignment or "row", grid=grid)


def plan_conv(ctx: ConvContext, m: ConvMapping, name: str = "", pau: bool = True,
              neg_start: np.ndarray | None = None, n_spec: np.ndarray | None = None,
              kernel_weights: np.ndarray | None = None, groups: bool = True) -> LayerPlan:
    """The static plan of a conv layer under mapping `m` (`groups=False` skips the lane-group table, which only
    the data path needs). `kernel_weights` drives `balanced` kernel dealing (default: the stored lengths)."""
    arch = ctx.arch
    rows, cols = grid_of(arch, m)
    lanes, ib = arch.pe.lanes, arch.pe.index_bits
    wb, ab = ctx.widths.weight_bits, ctx.widths.activation_bits
    if not 1 <= m.kcols <= cols:
        raise ConfigError(f"layer '{name}': {m.kcols} kernel partitions do not fit {cols} PE columns")
    if m.lanes == "block" and m.portion == "range":
        raise ConfigError(f"layer '{name}': block lanes need rectangular portions (band or tile)")
    if m.dealing == "dynamic":
        pass  # checked below, once the DMA and the residency are known
    ho, wo = ctx.out_hw
    lengths = ctx.lengths_array
    f_count = ctx.kernels
    split = cols // m.kcols
    part = kernel_partition(lengths, m.kcols, m.kernel_dealing, kernel_weights)
    pinned, kernel_chunk = _weight_residency(lengths, part, m.kcols, ctx.cap)
    portions = snapea_map.portions_of(m, (ho, wo), lanes)
    n_p = len(portions)
    gcount = snapea_map.group_counts(portions, wo, lanes, m.lanes)
    seg_groups = snapea_map.slice_counts(gcount, split).ravel()
    need = portion_need_bytes(ctx, portions, m.lanes, split, bool(kernel_chunk.any()),
                              channels=partition_channels(ctx, part))
    fits = bool((1 + m.lookahead) * need.max(initial=0) <= arch.pe.io_buffer_bytes // 2)
    in_bytes, out_bytes = spill_bytes(ctx, portions)
    kept, streamed = int(lengths[pinned].sum()), int(lengths[~pinned].sum())
    kept_bytes, step_bytes = ceil_div(kept * (wb + ib), 8), ceil_div(streamed * (wb + ib), 8)
    dynamic = m.dealing == "dynamic"
    if dynamic and (step_bytes > 0 or in_bytes.any() or out_bytes.any()):
        raise ConfigError(f"layer '{name}': dynamic dealing needs every kernel kept in the PEs and no spilled "
                          "activations (a row cannot prefetch a portion it has not claimed yet)")
    if m.lookahead and (dynamic or step_bytes > 0 or in_bytes.any() or out_bytes.any()):
        raise ConfigError(f"layer '{name}': a portion lookahead needs static dealing, every kernel kept in the PEs and "
                          "no spilled activations (the second portion slot is filled from the I/O RAM while the row "
                          "works; streamed kernels keep the rows in step)")
    if m.lookahead not in (0, 1):
        raise ConfigError(f"layer '{name}': a portion lookahead is 0 or 1, got {m.lookahead}")
    tile_row = np.full(n_p, -1, np.int64) if dynamic else _deal(n_p, rows, m.dealing)
    steps = ceil_div(n_p, rows) if dynamic else int(np.bincount(tile_row, minlength=rows).max(initial=0))
    static: dict[tuple[str, str, int], int] = {}

    def add(component: str, event: str, bits: int, count: int) -> None:
        if count:
            static[(component, event, bits)] = static.get((component, event, bits), 0) + int(count)

    fetched = kept + steps * streamed  # entries read from DRAM and broadcast down the columns
    add("noc", "transfer", ab, int(portion_input_words(ctx, portions).sum()))  # inputs broadcast to the rows
    add("noc", "transfer", wb, fetched)  # weights broadcast down the columns
    add("noc", "index_transfer", ib, fetched)
    add("weight_buffer", "write", wb, split * (rows * kept + n_p * streamed))
    add("index_buffer", "write", ib, split * (rows * kept + n_p * streamed))
    add("io_buffer", "write", ab, ctx.out_words)
    add("mac", "pool", ab, ctx.pool_events)
    add("dram", "read", 8, kept_bytes + steps * step_bytes + ctx.in_dram)
    add("dram", "write", 8, ctx.out_dram)
    win, seg = snapea_map.group_table(portions, wo, lanes, m.lanes, split) if groups else (
        np.zeros((0, lanes), np.int32), np.zeros(0, np.int32))
    label = m.describe(cols, lanes, n_p) + ("" if fits else ", !io")
    log.debug("plan %s: %s, pinned %d/%d kernels, chunk %d", name, label, int(pinned.sum()), f_count,
              int(kernel_chunk.max(initial=0)))
    return LayerPlan(name=name, kind="conv", kernel_len=ctx.shape.kernel_size, kernels=f_count, out_hw=(ho, wo),
                     rows=rows, cols=cols, lanes=lanes, tile_rows=m.th if m.portion != "range" else 0,
                     tile_row=tile_row, kernel_pe=part, resident=bool(pinned.all()),
                     chunk=int(kernel_chunk.max(initial=0)), stream_bytes=np.zeros(rows, np.int64),
                     prologue_bytes=kept_bytes, in_bytes=in_bytes, out_bytes=out_bytes, dma=dma_of(arch, rows), pau=pau,
                     static=static, mapping=m, label=label, fits=fits, portions=portions, split=split,
                     kcols=m.kcols, dynamic=dynamic, lookahead=m.lookahead, seg_groups=seg_groups, group_win=win,
                     group_seg=seg, kernel_lengths=lengths, kernel_chunk=kernel_chunk, pinned=pinned,
                     step_weight_bytes=step_bytes,
                     neg_start=neg_start, n_spec=n_spec, widths=ctx.widths)


def _fc_from_fc(graph: Graph, layer: FC) -> bool:
    """Whether an fc layer's input is produced by another fc layer (through free layers only)."""
    producer = {l.output: l for l in graph.layers}
    blob = layer.inputs[0]
    while blob in producer and isinstance(producer[blob], _FREE) and producer[blob].inputs:
        blob = producer[blob].inputs[0]
    return isinstance(producer.get(blob), FC)


def plan_fc(arch: ArchSpec, graph: Graph, layer: FC, batch: int = 1, rows_first: bool = False,
            widths: DataWidths | None = None) -> LayerPlan:
    """One output neuron per lane, neurons dealt round robin over all PEs (PE by PE along the rows, or with
    `rows_first` over the PE rows first, so that every row, and its share of the DRAM channel, streams weights),
    the input broadcast; `batch` images share one weight fetch (each streamed chunk serves every image of the
    batch, partial sums parked in the I/O RAM). Weights and activations are stored at `widths`."""
    widths = DataWidths.resolve(arch, widths)
    rows, cols, lanes = arch.array.rows, arch.array.cols, arch.pe.lanes
    wb, ab = widths.weight_bits, widths.activation_bits
    pes = rows * cols
    half = pes * arch.pe.io_buffer_bytes // 2
    wcap = arch.pe.weight_buffer_bytes * 8 // wb
    k, f_count = layer.in_features, layer.out_features
    if wcap < 2 * lanes:
        raise ConfigError(f"layer '{layer.name}': the weight buffer ({arch.pe.weight_buffer_bytes} B = {wcap} "
                          f"entries of {wb} bits) is too small for a fully connected layer: its {lanes} lanes "
                          f"take one weight each per cycle, and streaming needs 2 x {lanes} = {2 * lanes} entries")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    in_words = sum(math.prod(graph.shapes[b]) for b in layer.inputs)
    in_total = ceil_div(in_words * ab, 8)
    from_dram = all(b in _aliases_of_input(graph) for b in layer.inputs)
    neuron_pe = _deal(f_count, pes, "round_robin")
    if rows_first:  # neuron n -> row n % rows, column (n // rows) % cols
        neuron_pe = (neuron_pe % rows) * cols + (neuron_pe // rows) % cols
    per_pe = np.bincount(neuron_pe, minlength=pes)
    resident = int(per_pe.max()) * k <= wcap
    row_neurons = per_pe.reshape(rows, cols).sum(1)
    stream = np.zeros(rows, np.int64) if resident else ceil_div(row_neurons * k * wb, 8)
    entries = f_count * k
    w_bytes = ceil_div(entries * wb, 8)
    out_blob_dram = layer.output in _aliases_of_output(graph)
    out_total = ceil_div(f_count * ab, 8)
    out_row = ceil_div(row_neurons * ab, 8) if out_blob_dram else np.zeros(rows, np.int64)
    if not out_blob_dram and batch * out_total > half:
        out_row = ceil_div(row_neurons * ab, 8)  # the whole vector spills (it cannot be split across the halves)
    in_read, in_write = (in_total if (from_dram or in_total > half) else 0), 0
    if batch > 1 and not from_dram:
        if _fc_from_fc(graph, layer):  # the previous fc ran over the same batch: its outputs are on chip if they fit
            in_read = in_total if batch * in_total > half else 0
        else:  # the batch's inputs were produced image by image, between other layers: parked in DRAM
            in_read, in_write = in_total, in_total
    static: dict[tuple[str, str, int], int] = {}
    for key, count in ((("noc", "transfer", ab), batch * in_words), (("noc", "transfer", wb), entries),
                       (("weight_buffer", "write", wb), entries), (("io_buffer", "write", ab), batch * f_count),
                       (("dram", "read", 8), batch * in_read + w_bytes),
                       (("dram", "write", 8), batch * (int(out_row.sum()) + in_write))):
        if count:
            static[key] = static.get(key, 0) + int(count)
    chunk = wcap // (2 * lanes) if (batch > 1 and not resident) else 0
    label = (f"fc: neuron/lane{' rows-first' if rows_first else ''}, batch {batch}"
             + (", resident" if resident else ", streamed"))
    return LayerPlan(name=layer.name, kind="fc", tile_rows=1, kernel_len=k, kernels=f_count, out_hw=(1, 1),
                     rows=rows, cols=cols, lanes=lanes, tile_row=np.zeros(1, np.int64), kernel_pe=neuron_pe,
                     resident=resident, chunk=chunk, stream_bytes=stream.astype(np.int64),
                     prologue_bytes=(w_bytes if resident else 0) + batch * in_read, in_bytes=np.zeros(1, np.int64),
                     out_bytes=(batch * out_row).astype(np.int64), dma=dma_of(arch), pau=False, static=static,
                     label=label, batch=batch, park_bytes=in_write, widths=widths)


def plan_eltwise(arch: ArchSpec, graph: Graph, layer: Layer, widths: DataWidths | None = None) -> LayerPlan:
    """Unfused pooling, global pooling and residual adds: spread over every lane of the array, no DRAM."""
    widths = DataWidths.resolve(arch, widths)
    rows, cols, lanes, ab = arch.array.rows, arch.array.cols, arch.pe.lanes, widths.activation_bits
    in_words = sum(math.prod(graph.shapes[b]) for b in layer.inputs)
    out_words = math.prod(graph.out_shape(layer))
    static = {("io_buffer", "read", ab): in_words, ("io_buffer", "write", ab): out_words,
              ("mac", "add" if isinstance(layer, Add) else "pool", ab): in_words}
    return LayerPlan(name=layer.name, kind="eltwise", tile_rows=1, kernel_len=0, kernels=0, out_hw=(1, 1),
                     rows=rows, cols=cols, lanes=lanes, tile_row=np.zeros(0, np.int64),
                     kernel_pe=np.zeros(0, np.int64), resident=True, chunk=0, stream_bytes=np.zeros(rows, np.int64),
                     prologue_bytes=0, in_bytes=np.zeros(0, np.int64), out_bytes=np.zeros(0, np.int64),
                     dma=dma_of(arch), pau=False, static={k: v for k, v in static.items() if v},
                     eltwise_cycles=ceil_div(in_words, rows * cols * lanes), label="eltwise", widths=widths)


def plan_layer(arch: ArchSpec, graph: Graph, layer: Layer, options: SnaPEAOptions | None = None,
               pau: bool = True, stream: Any = None, mapping: ConvMapping | None = None,
               kernel_weights: np.ndarray | None = None, batch: int = 1,
               widths: DataWidths | None = None) -> LayerPlan:
    """The static schedule of one layer on `arch` (raises ConfigError if the layer cannot run there), its weights
    and activations stored at `widths` (default: `arch.word_bits` for everything).

    Conv: `mapping` None asks the mapper (`options.mapper`: the dense-cycle search, or the fixed schedule); `stream`
    (an `accelsim.functional.reorder.WeightStream` or anything with `length`, `neg_start` and `n_spec` arrays of
    shape (F,)) gives each kernel's stored length (buffer footprint and DRAM traffic when zero weights are skipped)
    and where its PAU checks happen; None = full kernels, one check per MAC. Fc: `batch` images the design maps
    together (`options.fc_batch` says whether their weights are fetched once per batch).
    """
    opts = options or SnaPEAOptions.from_mapping(arch.options)
    if stream is not None and not isinstance(layer, Conv):
        raise ConfigError(f"layer '{layer.name}': a weight stream belongs to a conv layer, not {layer.type_name}")
    if isinstance(layer, Conv):
        f_count = graph.out_shape(layer)[0]
        _check_conv(arch, layer, widths)
        if stream is None:
            lengths, neg_start, n_spec = np.full(f_count, layer.kernel_size, np.int64), None, None
        else:
            lengths, neg_start, n_spec = _stream_arrays(layer, f_count, stream)
        ctx = conv_context(arch, graph, layer, lengths, widths)
        if mapping is None:
            from accelsim.timing import snapea_mapper

            mapping = snapea_mapper.dense_choice(ctx, opts).mapping
        return plan_conv(ctx, mapping, layer.name, pau, neg_start, n_spec, kernel_weights)
    if isinstance(layer, FC):
        if opts.mapper == "fixed":
            return plan_fc(arch, graph, layer, batch if opts.fc_batch == "batch" else 1, widths=widths)
        from accelsim.timing import snapea_mapper

        batches = {"image": (1,), "batch": (batch,)}.get(opts.fc_batch, (1, batch))
        return snapea_mapper.choose_fc(arch, graph, layer, batches, widths)
    if isinstance(layer, (*_POOLS, GlobalAvgPool, Add)):
        return plan_eltwise(arch, graph, layer, widths)
    raise ConfigError(f"layer '{layer.name}' ({layer.type_name}) takes no time of its own on the SnaPEA array "
                      "(it is fused into its producer or is pure addressing)")


# -- totals -> LayerTiming (shared with the reference simulator) ------------------------------------------------------
# Integer totals over the images simulated; both models fill the same keys.
TOTAL_KEYS = ("images", "cycles", "macs", "gated", "weight_reads", "index_reads", "input_reads", "psum_swaps",
              "pau_checks", "compute_pe", "barrier_pe", "dram_pe", "tail_pe", "unused_pe", "dram_read", "dram_write")


def timing_from_totals(arch: ArchSpec, plan: LayerPlan, totals: Mapping[str, int]) -> LayerTiming:
    """Per-image LayerTiming from integer totals; the breakdown's cycle classes add up to `cycles`."""
    n = totals["images"]
    lanes, units, ib = arch.pe.lanes, arch.mac_units, arch.pe.index_bits
    widths = DataWidths.resolve(arch, plan.widths)
    wb, ab, pb = widths.weight_bits, widths.activation_bits, widths.psum_bits
    parts: dict[tuple[str, str], list[tuple[int, int]]] = {}  # (component, event) -> (count, bits) in log order

    def add(component: str, event: str, count: int, bits: int) -> None:
        parts.setdefault((component, event), []).append((count, bits))

    for (component, event, bits), count in plan.static.items():
        if (component, event) not in (("dram", "read"), ("dram", "write")):
            add(component, event, count * n // plan.batch, bits)
    add("dram", "read", totals["dram_read"], 8)
    add("dram", "write", totals["dram_write"], 8)
    add("mac", "mac", totals["macs"], pb)  # the datapath word; a format's MAC cost is an energy factor
    add("mac", "gated", totals["gated"], 0)
    add("weight_buffer", "read", totals["weight_reads"], wb)
    add("index_buffer", "read", totals["index_reads"], ib)
    add("io_buffer", "read", totals["input_reads"], ab)
    add("io_buffer", "read", totals["psum_swaps"], pb)
    add("io_buffer", "write", totals["psum_swaps"], pb)
    add("pau", "check", totals["pau_checks"] if plan.pau else 0, pb)
    add("pe", "barrier_stall_cycle", totals["barrier_pe"], 0)
    add("dram", "stall_cycle", totals["dram_pe"], 0)
    add("lane", "idle_cycle", totals["gated"] + lanes * (totals["barrier_pe"] + totals["dram_pe"]
                                                         + totals["tail_pe"]), 0)
    ev = EventLog()
    for (component, event), items in parts.items():
        if len({bits for _, bits in items}) == 1:
            ev.add(component, event, sum(count for count, _ in items), items[0][1])
        else:  # values of different widths in one event kind (e.g. activations and weights on the NoC)
            ev.add_mixed(component, event, items)
    cycles = totals["cycles"]
    if plan.kind == "eltwise":
        breakdown = {"eltwise": cycles / n}
    else:
        breakdown = {
            "busy": totals["macs"] / (units * n),
            "idle_lane": totals["gated"] / (units * n),
            "barrier": lanes * totals["barrier_pe"] / (units * n),
            "dram_stall": lanes * totals["dram_pe"] / (units * n),
            "tail": lanes * totals["tail_pe"] / (units * n),
            "unused_pe": lanes * totals["unused_pe"] / (units * n),
        }
    return LayerTiming(layer=plan.name, cycles=cycles / n, events=ev.scaled(1.0 / n), macs_performed=totals["macs"] / n,
                       mac_units=units, active_pes=totals["compute_pe"] / cycles if cycles else 0.0,
                       breakdown=breakdown, mapping=plan.label)


def _dram_totals(plan: LayerPlan, units: int) -> tuple[int, int]:
    read = sum(c for (comp, ev, _), c in plan.static.items() if (comp, ev) == ("dram", "read"))
    write = sum(c for (comp, ev, _), c in plan.static.items() if (comp, ev) == ("dram", "write"))
    return read * units, write * units


# -- the fast model ---------------------------------------------------------------------------------------------------
# The two passes over every window's MAC count run in parallel over (image, kernel): each writes only its own
# entries (integer sums, so the result does not depend on the threads); serial, they were 4 % of an exact run.
@numba.njit(cache=True, nogil=True, inline="always")
def _group_max(macs, b, f, win, g):  # pragma: no cover - compiled
    """MACs of the slowest lane of lane group g (window indices `win[g]`, -1 for none) of kernel f in image b."""
    mx = 0
    for j in range(win.shape[1]):
        w = win[g, j]
        if w >= 0:
            m = macs[b, f, w]
            if m > mx:
                mx = m
    return mx


@numba.njit(cache=True, parallel=True)
def _group_sums(macs, win, seg, kt):  # pragma: no cover - compiled
    """kt[b, f, s] += the slowest lane of every lane group of segment s (portion x column slice) of kernel f."""
    n_img, n_f = macs.shape[0], macs.shape[1]
    for item in numba.prange(n_img * n_f):
        b = item // n_f
        f = item - b * n_f
        for g in range(win.shape[0]):
            kt[b, f, seg[g]] += _group_max(macs, b, f, win, g)


@numba.njit(cache=True, parallel=True)
def _window_sums(macs, chunk, neg_start, n_spec, macs_tot, swaps_tot, checks_tot):  # pragma: no cover - compiled
    """Per image: MACs, partial-sum swaps (chunk[f] > 0) and PAU checks (MACs at stream positions >= neg_start[f],
    + 1 at N = n_spec[f]) over every window, whatever the mapping."""
    n_img, n_f, n_w = macs.shape
    part = np.zeros((3, n_img, n_f), dtype=np.int64)
    for item in numba.prange(n_img * n_f):
        b = item // n_f
        f = item - b * n_f
        c = chunk[f]
        ns = neg_start[f]
        nn = n_spec[f]
        s = 0
        sw = 0
        ck = 0
        for w in range(n_w):
            m = macs[b, f, w]
            s += m
            if c > 0 and m > 0:
                sw += (m - 1) // c
            if m > ns:
                ck += m - ns
            if nn > 0 and m >= nn:
                ck += 1
        part[0, b, f] = s
        part[1, b, f] = sw
        part[2, b, f] = ck
    for b in range(n_img):
        macs_tot[b] = part[0, b].sum()
        swaps_tot[b] = part[1, b].sum()
        checks_tot[b] = part[2, b].sum()


@numba.njit(cache=True)
def _claim_queue(tt, rows, row_time):  # pragma: no cover - compiled
    """Dynamic dealing: at time 0 rows 0..R-1 start portions 0..R-1, each claiming the next portion of the queue
    as it starts one; a row that finishes starts the portion it claimed (and claims the next). Starts are taken in
    (time, row) order, so the outcome is deterministic. row_time[b, r] = when row r finishes its last portion."""
    n_img, n_p = tt.shape
    n_r = min(rows, n_p)
    for b in range(n_img):
        end = np.zeros(n_r, np.int64)
        nxt = np.full(n_r, -1, np.int64)
        q = n_r
        for r in range(n_r):
            end[r] = tt[b, r]
            if q < n_p:
                nxt[r] = q
                q += 1
        while True:
            best = -1
            for r in range(n_r):
                if nxt[r] >= 0 and (best < 0 or end[r] < end[best]):
                    best = r
            if best < 0:
                break
            p = nxt[best]
            end[best] += tt[b, p]
            if q < n_p:
                nxt[best] = q
                q += 1
            else:
                nxt[best] = -1
        for r in range(n_r):
            row_time[b, r] = end[r]


def _pau_arrays(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """(neg_start, n_spec) per kernel; without a stream every MAC is followed by a check."""
    if plan.neg_start is None:
        return np.zeros(plan.kernels, np.int64), np.zeros(plan.kernels, np.int64)
    assert plan.n_spec is not None  # a stream sets both
    return plan.neg_start, plan.n_spec


def _check_macs(plan: LayerPlan, macs: np.ndarray) -> np.ndarray:
    macs = np.asarray(macs)
    ho, wo = plan.out_hw
    if macs.ndim != 4 or macs.shape[1:] != (plan.kernels, ho, wo) or macs.shape[0] < 1:
        raise ConfigError(f"layer '{plan.name}': per-window MACs must have shape (images, {plan.kernels}, {ho}, {wo}), "
                          f"got {macs.shape}")
    if not np.issubdtype(macs.dtype, np.integer):
        raise ConfigError(f"layer '{plan.name}': per-window MACs must be integers, got {macs.dtype}")
    if macs.size and (macs.min() < 0 or macs.max() > plan.kernel_len):
        raise ConfigError(f"layer '{plan.name}': per-window MACs must lie in [0, {plan.kernel_len}] (the kernel "
                          f"length), got [{macs.min()}, {macs.max()}]")
    if macs.size and plan.neg_start is not None:
        over = macs.max(axis=(0, 2, 3)) > plan.kernel_lengths
        if over.any():
            f = int(np.flatnonzero(over)[0])
            raise ConfigError(f"layer '{plan.name}': kernel {f} performed up to {int(macs[:, f].max())} MACs in a "
                              f"window but its weight stream stores only {int(plan.kernel_lengths[f])} weights")
    return np.ascontiguousarray(macs, dtype=np.int32)


def _full_length_images(plan: LayerPlan, macs: np.ndarray) -> int:
    """The number of images when `macs` is a broadcast (no per-window storage, as a layer run without the PAU
    gives) with every window at its kernel's stored length, which the closed form of `_conv_totals` times exactly;
    else 0. Checking it costs nothing where materialising the broadcast would cost a pass over every window."""
    ho, wo = plan.out_hw
    if (macs.ndim != 4 or macs.shape[1:] != (plan.kernels, ho, wo) or macs.shape[0] < 1 or macs.size == 0
            or any(macs.strides[a] for a in (0, 2, 3)) or not np.issubdtype(macs.dtype, np.integer)):
        return 0
    return macs.shape[0] if np.array_equal(macs[0, :, 0, 0], plan.kernel_lengths) else 0


def kernel_segment_times(plan: LayerPlan, macs: np.ndarray | None) -> np.ndarray:
    """kt[b, f, p * split + s]: cycles kernel f takes on column slice s of portion p (the sum of its lane groups'
    slowest lanes); macs None = every window at its kernel's stored length (closed form)."""
    if macs is None:
        return plan.kernel_lengths[None, :, None] * plan.seg_groups[None, None, :]
    n_img = macs.shape[0]
    kt = np.zeros((n_img, plan.kernels, len(plan.seg_groups)), np.int64)
    _group_sums(macs.reshape(n_img, plan.kernels, -1), plan.group_win, plan.group_seg, kt)
    return kt


def pe_portion_times(plan: LayerPlan, kt: np.ndarray) -> np.ndarray:
    """(B, partitions, P, split): the busy cycles of every used PE (kernel partition x column slice) on every portion,
    from kernel times kt (B, F, P * split)."""
    n_img, n_p, split = kt.shape[0], plan.tiles, plan.split
    parts = plan.partition_kernels()
    if not parts or not n_p:
        return np.zeros((n_img, len(parts), n_p, split), np.int64)
    kt4 = kt.reshape(n_img, plan.kernels, n_p, split)
    order = np.concatenate(parts)
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    return np.add.reduceat(kt4[:, order], starts, axis=1)


def portion_times(plan: LayerPlan, kt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(tt, pt_sum, active columns): per image and portion the slowest PE of the row (the barrier) and the sum of
    its PEs' busy cycles, from kernel times kt (B, F, P * split)."""
    ptp = pe_portion_times(plan, kt)
    if not ptp.shape[1] or not plan.tiles:
        zero = np.zeros((kt.shape[0], plan.tiles), np.int64)
        return zero, zero, 0
    return ptp.max(axis=(1, 3)), ptp.sum(axis=(1, 3)), ptp.shape[1] * plan.split


def _conv_totals(plan: LayerPlan, macs: np.ndarray | None, lanes: int) -> dict[str, int]:
    rows, cols = plan.rows, plan.cols
    neg_start, n_spec = _pau_arrays(plan)
    lengths = plan.kernel_lengths
    kt = kernel_segment_times(plan, macs)
    if macs is None:
        images = 1
        windows = plan.out_hw[0] * plan.out_hw[1]
        macs_tot = np.array([windows * lengths.sum()], np.int64)
        per_window = np.where((plan.kernel_chunk > 0) & (lengths > 0),
                              (lengths - 1) // np.maximum(plan.kernel_chunk, 1), 0)
        swaps_tot = np.array([windows * per_window.sum()], np.int64)
        checks = np.maximum(lengths - neg_start, 0) + ((n_spec > 0) & (lengths >= n_spec))
        checks_tot = np.array([windows * checks.sum()], np.int64)
    else:
        images = macs.shape[0]
        macs_tot = np.empty(images, np.int64)
        swaps_tot = np.empty(images, np.int64)
        checks_tot = np.empty(images, np.int64)
        _window_sums(macs.reshape(images, plan.kernels, -1), plan.kernel_chunk, neg_start, n_spec, macs_tot,
                     swaps_tot, checks_tot)
    tt, pt_sum, n_cols = portion_times(plan, kt)
    if plan.dynamic:
        cycles, barrier, dram_pe, tail, n_active = _dynamic_steps(plan, pt_sum, tt, n_cols)
    elif plan.lookahead:
        cycles, barrier, dram_pe, tail, n_active = _lookahead_steps(plan, pe_portion_times(plan, kt), pt_sum, n_cols)
    else:
        step = _lockstep_steps if plan.lockstep else _row_steps
        cycles, barrier, dram_pe, tail, n_active = step(Steps.of(plan), pt_sum, tt, n_cols)
    kt_sum = kt.sum((1, 2))
    totals = dict(images=images, cycles=int(cycles.sum()), macs=int(macs_tot.sum()),
                  gated=int(lanes * kt_sum.sum() - macs_tot.sum()), weight_reads=int(kt_sum.sum()),
                  index_reads=int(kt_sum.sum()), input_reads=int(macs_tot.sum()), psum_swaps=int(swaps_tot.sum()),
                  pau_checks=int(checks_tot.sum()), compute_pe=int(pt_sum.sum()), barrier_pe=int(barrier.sum()),
                  dram_pe=int(dram_pe.sum()), tail_pe=int(tail.sum()),
                  unused_pe=int((rows * cols - n_active) * cycles.sum()))
    totals["dram_read"], totals["dram_write"] = _dram_totals(plan, images)
    return totals


@dataclass(frozen=True)
class Steps:
    """What the step functions need from a plan: rows, DMA, the step table and the DMA bytes of every portion."""

    rows: int
    dma: DMA
    prologue_bytes: int
    step_weight_bytes: int
    at: np.ndarray  # (rows, steps) portion of each row in each step, -1 where the row has none (static dealing)
    in_bytes: np.ndarray  # (P,)
    out_bytes: np.ndarray  # (P,)

    @classmethod
    def of(cls, plan: LayerPlan) -> Steps:
        return cls(plan.rows, plan.dma, plan.prologue_bytes, plan.step_weight_bytes, step_table(plan.tile_row,
                   plan.rows), plan.in_bytes, plan.out_bytes)


def step_table(tile_row: np.ndarray, rows: int) -> np.ndarray:
    """(rows, steps) portion each PE row works on in each step (its portions in order), -1 where it has none."""
    counts = np.bincount(tile_row, minlength=rows) if len(tile_row) else np.zeros(rows, np.int64)
    at = np.full((rows, int(counts.max(initial=0))), -1, np.int64)
    order = np.argsort(tile_row, kind="stable")
    rank = np.arange(len(tile_row)) - np.repeat(np.cumsum(counts) - counts, counts)
    at[tile_row[order], rank] = order
    return at


def _row_steps(st: Steps, pt_sum: np.ndarray, tt: np.ndarray, n_cols: int):
    """Every kernel stays in its PE: the rows run independently, each on its share of the DRAM channel.

    A row's work: a prologue (its first portion's spilled input), one step per portion (the step ends when both the
    row's barrier and its DMA, the next portion's input and the previous one's output, are done), an epilogue (its
    last portion's output)."""
    dma, at = st.dma, st.at
    has = at >= 0
    barrier = (n_cols * tt - pt_sum).sum(1)
    glob = dma.cycles(st.prologue_bytes, st.rows)
    safe = np.maximum(at, 0)
    ins = np.where(has, st.in_bytes[safe], 0)
    outs = np.where(has, st.out_bytes[safe], 0)
    step_bytes = np.zeros_like(ins)
    step_bytes[:, :-1] += ins[:, 1:]
    step_bytes[:, 1:] += outs[:, :-1]
    step_bytes = np.where(has, step_bytes, 0)
    tg = np.where(has[None], tt[:, safe], 0)  # (B, rows, steps)
    d = np.where(has[None], np.maximum(tg, dma.cycles_array(step_bytes)[None]), 0)
    used = has[:, 0] if at.shape[1] else np.zeros(st.rows, bool)
    last = np.maximum(has.sum(1) - 1, 0)
    edge = np.where(used, dma.cycles_array(ins[:, 0] if at.shape[1] else np.zeros(st.rows, np.int64))
                    + dma.cycles_array(outs[np.arange(st.rows), last] if at.shape[1] else np.zeros(st.rows, np.int64)),
                    0)
    row_time = np.where(used[None], edge[None] + d.sum(2), 0)
    span = row_time.max(1)
    n_active = n_cols * int(used.sum())
    tail = n_cols * (span[:, None] - row_time)[:, used].sum(1)
    dram_pe = n_cols * (edge[used].sum() + (d - tg).sum((1, 2))) + n_active * glob
    return glob + span, barrier, dram_pe, tail, n_active


def _dynamic_steps(plan: LayerPlan, pt_sum: np.ndarray, tt: np.ndarray, n_cols: int):
    """Dynamic dealing (every kernel kept, nothing spilled): rows claim portions from a queue (`_claim_queue`)."""
    rows = plan.rows
    n_r = min(rows, plan.tiles)
    barrier = (n_cols * tt - pt_sum).sum(1)
    glob = plan.dma.cycles(plan.prologue_bytes, rows)
    row_time = np.zeros((tt.shape[0], max(n_r, 1)), np.int64)
    if n_r:
        _claim_queue(np.ascontiguousarray(tt), rows, row_time)
    span = row_time.max(1)
    n_active = n_cols * n_r
    tail = n_cols * (span[:, None] - row_time[:, :n_r]).sum(1)
    return glob + span, barrier, n_active * glob + np.zeros_like(span), tail, n_active


@numba.njit(cache=True)
def _ahead_rows(w, at, depth, row_end):  # pragma: no cover - compiled
    """Portion lookahead: row r runs portions at[r, 0..]; PE c starts its k-th portion when it has finished the
    (k-1)-th and every PE of the row has finished the (k-1-depth)-th (that portion's slot then holds the k-th).
    w[b, p, c]: busy cycles of PE c on portion p; row_end[b, r] = when row r's last PE finishes."""
    n_img, n_c = w.shape[0], w.shape[2]
    rows, steps = at.shape
    for b in range(n_img):
        for r in range(rows):
            end = np.zeros(n_c, np.int64)
            done = np.zeros(steps, np.int64)  # when every PE of the row has finished its k-th portion
            last = 0
            for k in range(steps):
                p = at[r, k]
                if p < 0:
                    break
                avail = done[k - 1 - depth] if k - 1 - depth >= 0 else 0
                mx = 0
                for c in range(n_c):
                    start = end[c] if end[c] > avail else avail
                    end[c] = start + w[b, p, c]
                    if end[c] > mx:
                        mx = end[c]
                done[k] = mx
                last = mx
            row_end[b, r] = last


def _lookahead_steps(plan: LayerPlan, ptp: np.ndarray, pt_sum: np.ndarray, n_cols: int):
    """Static dealing with a portion lookahead (every kernel kept, nothing spilled): each PE of a row runs its
    portions back to back, at most `plan.lookahead` portions ahead of the row's slowest PE (`_ahead_rows`). A PE
    waiting for a slot, or done before its row's slowest PE, is `barrier`; rows done early are `tail`."""
    at = step_table(plan.tile_row, plan.rows)
    n_img = ptp.shape[0]
    w = np.ascontiguousarray(ptp.transpose(0, 2, 1, 3).reshape(n_img, plan.tiles, -1))
    row_end = np.zeros((n_img, plan.rows), np.int64)
    _ahead_rows(w, at, plan.lookahead, row_end)
    used = at[:, 0] >= 0 if at.shape[1] else np.zeros(plan.rows, bool)
    glob = plan.dma.cycles(plan.prologue_bytes, plan.rows)
    span = row_end[:, used].max(1) if used.any() else np.zeros(n_img, np.int64)
    n_active = n_cols * int(used.sum())
    barrier = n_cols * row_end[:, used].sum(1) - pt_sum.sum(1)
    tail = n_cols * (span[:, None] - row_end[:, used]).sum(1)
    return glob + span, barrier, n_active * glob + np.zeros_like(span), tail, n_active


def _lockstep_steps(st: Steps, pt_sum: np.ndarray, tt: np.ndarray, n_cols: int):
    """Streamed kernels ride one broadcast down each column per portion step, so all rows advance step by step.

    Step k: every row works on its k-th portion; the DMA (whole channel) moves the step's streamed kernels, each
    row's next input and previous output; the step lasts max(slowest PE of the array, DMA). A prologue (kept
    kernels, first inputs) and an epilogue (last outputs) stall every PE.
    """
    dma, at = st.dma, st.at
    has = at >= 0  # (rows, steps)
    rows_used = has[:, 0]
    safe = np.maximum(at, 0)
    tk = np.where(has[None], tt[:, safe], 0).max(1)  # (B, steps)
    ins = np.where(has, st.in_bytes[safe], 0).sum(0)  # (steps,)
    outs = np.where(has, st.out_bytes[safe], 0).sum(0)
    dma_bytes = np.full(at.shape[1], st.step_weight_bytes, np.int64)
    dma_bytes[:-1] += ins[1:]
    dma_bytes[1:] += outs[:-1]
    pro = st.prologue_bytes + int(ins[0])
    epi = int(outs[-1])
    edge = dma.cycles(pro, st.rows) + dma.cycles(epi, st.rows)
    dk = np.maximum(tk, dma.cycles_array(dma_bytes, st.rows)[None, :])
    busy_rows = has.sum(0)  # rows with a portion in each step
    n_active = n_cols * int(rows_used.sum())
    barrier = n_cols * (tk * busy_rows).sum(1) - pt_sum.sum(1)
    dram_pe = n_active * edge + n_cols * ((dk - tk) * busy_rows).sum(1)
    tail = n_cols * (dk * (int(rows_used.sum()) - busy_rows)).sum(1)
    return edge + dk.sum(1), barrier, dram_pe, tail, n_active


def _fc_totals(plan: LayerPlan, lanes: int) -> dict[str, int]:
    """One unit of `plan.batch` images: each PE's lane groups run K cycles per image; a row's weight stream (once per
    batch) overlaps its compute; the outputs leave at the end."""
    rows, cols, k, b = plan.rows, plan.cols, plan.kernel_len, plan.batch
    per_pe = np.bincount(plan.kernel_pe, minlength=rows * cols).reshape(rows, cols)
    comp = b * ceil_div(per_pe, lanes) * k  # (rows, cols) cycles of each PE over the batch (dense)
    active = per_pe > 0
    tt = comp.max(1)
    dma = plan.dma
    glob = dma.cycles(plan.prologue_bytes, rows)
    d = np.maximum(tt, dma.cycles_array(plan.stream_bytes))
    epi = dma.cycles_array(plan.out_bytes)
    row_time = np.where(active.any(1), d + epi, 0)
    span = int(row_time.max())
    n_act = active.sum(1)
    cycles = glob + span
    macs = b * plan.kernels * k
    swaps = b * plan.kernels * ((k - 1) // plan.chunk) if plan.chunk else 0
    totals = dict(images=b, cycles=cycles, macs=macs, gated=int(lanes * comp.sum()) - macs, weight_reads=macs,
                  index_reads=0, input_reads=int(comp.sum()), psum_swaps=swaps, pau_checks=0,
                  compute_pe=int(comp.sum()), barrier_pe=int(((tt[:, None] - comp) * active).sum()),
                  dram_pe=int((n_act * (d - tt + epi)).sum() + active.sum() * glob),
                  tail_pe=int((n_act * (span - row_time)).sum()), unused_pe=int((rows * cols - active.sum()) * cycles))
    totals["dram_read"], totals["dram_write"] = _dram_totals(plan, 1)
    return totals


def _eltwise_totals(plan: LayerPlan, images: int) -> dict[str, int]:
    zero = dict.fromkeys(TOTAL_KEYS, 0)
    zero.update(images=images, cycles=plan.eltwise_cycles * images, compute_pe=plan.eltwise_cycles * images
                * plan.rows * plan.cols)
    return zero


def layer_totals(arch: ArchSpec, plan: LayerPlan, macs: np.ndarray | None, images: int = 1) -> dict[str, int]:
    """Integer totals: conv over the images of `macs` (B, F, Ho, Wo) (None = one image, every window at full
    length); fc over one unit of `plan.batch` images; eltwise over `images`."""
    if plan.kind == "conv":
        return _conv_totals(plan, None if macs is None else _check_macs(plan, macs), arch.pe.lanes)
    if plan.kind == "fc":
        return _fc_totals(plan, arch.pe.lanes)
    return _eltwise_totals(plan, images if macs is None else int(np.shape(macs)[0]))


def stream_key(stream: Any) -> tuple[bytes, ...] | None:
    """A hashable summary of what the timing model reads from a weight stream (None for no stream)."""
    if stream is None:
        return None
    return tuple(np.asarray(getattr(stream, name, np.zeros(0)), np.int64).tobytes()
                 for name in ("length", "neg_start", "n_spec"))


def simulate_layer(arch: ArchSpec, graph: Graph, layer: Layer | str, macs: np.ndarray | None = None,
                   pau: bool = True, stream: Any = None, mapping: ConvMapping | None = None,
                   widths: DataWidths | None = None) -> LayerTiming:
    """Time one layer for one batch: `macs` (B, F, Ho, Wo) per window, or None for the dense schedule.

    `pau` says whether the layer runs with early termination (PAU checks are counted); dense layers (macs None)
    never check. `stream` (a `WeightStream` of the conv layer, optional) sizes each kernel by its stored length and
    counts PAU checks exactly: the MACs at stream positions >= neg_start[f], plus one speculation check where
    n_spec[f] > 0 and the window reached N MACs. Without it every kernel is full length and every MAC is checked.
    With a stream, None for `macs` means every window runs its kernel's stored length. `mapping` None: the
    mapper's dense choice (or the fixed schedule, per `options.mapper`). `widths`: bits per stored weight, activation
    and partial sum (default: `arch.word_bits` for all).
    """
    layer = graph.layer(layer) if isinstance(layer, str) else layer
    plan = plan_layer(arch, graph, layer, pau=pau and macs is not None, stream=stream, mapping=mapping, widths=widths)
    return timing_from_totals(arch, plan, layer_totals(arch, plan, macs))


class SnaPEATiming:
    """Streams per-window MAC counts batch by batch and returns per-image LayerTiming for every costed layer.

    `observe(layer_name, macs, pau, stream)` once per conv layer and batch; `finish()` times every other costed
    layer (fc, dense convs never observed, unfused pooling and add layers) on its dense schedule. Every LayerTiming
    carries `mapping` (the schedule's label) and `dense`: the same layer on SnaPEA with every window at its kernel's
    full stored length (no early termination), mapped by the same mapper: the split of the speedup into
    architecture and early termination (`accelsim.timing.decompose`) needs both. `batch`: images the design maps
    together (fc layers may fetch their weights once per batch, as the Eyeriss model does). `widths`: bits per stored
    weight, activation and partial sum, the run's number format (default: `arch.word_bits` for all).
    """

    def __init__(self, arch: ArchSpec, graph: Graph, batch: int = 1, widths: DataWidths | None = None):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        self.arch = arch
        self.graph = graph
        self.batch = batch
        self.widths = DataWidths.resolve(arch, widths)
        self.options = SnaPEAOptions.from_mapping(arch.options)
        self._layers = {l.name: l for l in costed_layers(graph)}
        self._plans: dict[tuple[str, bool, Any], LayerPlan] = {}
        self._dense: dict[tuple[str, Any], LayerPlan] = {}
        self._totals: dict[str, dict[str, int]] = {}
        self._keys: dict[str, tuple[bool, Any]] = {}
        self._pending: dict[str, tuple[list[np.ndarray], Any]] = {}  # profiled layers: batches before the profile
        self.mapper_clock = MapperClock()
        # the first call of a compiled kernel pays Numba's start-up in this process (0.2 s), which a run pays
        # anyway: here, before the mapper's clock runs (the planner needs this kernel whatever the mapper)
        _weight_residency(np.zeros(0, np.int64), np.zeros(0, np.int64), 1, 2)
        for name, layer in self._layers.items():  # validate every layer up front: a bad config fails before any image
            if isinstance(layer, FC):
                self._fc_plan(layer, batch)
            else:
                self._dense_plan(name)

    def _fc_plan(self, layer: FC, batch: int) -> LayerPlan:
        with self.mapper_clock:  # planning an fc layer is choosing among its few schedules
            return plan_layer(self.arch, self.graph, layer, self.options, batch=batch, widths=self.widths)

    def _context(self, layer: Conv, stream: Any) -> tuple[ConvContext, np.ndarray | None, np.ndarray | None]:
        """The layer's planning context with its kernels' stored lengths, and their PAU positions (None without a
        weight stream)."""
        f_count = self.graph.out_shape(layer)[0]
        lengths, neg_start, n_spec = (_stream_arrays(layer, f_count, stream) if stream is not None
                                      else (np.full(f_count, layer.kernel_size, np.int64), None, None))
        return conv_context(self.arch, self.graph, layer, lengths, self.widths), neg_start, n_spec

    def _dense_plan(self, name: str, stream: Any = None, key: Any = None) -> LayerPlan:
        """The layer's dense schedule: what the mapper picks when every window runs its kernel's stored length."""
        full = (name, key)
        if full not in self._dense:
            layer = self._layers[name]
            if isinstance(layer, Conv):
                from accelsim.timing import snapea_mapper

                ctx, neg_start, n_spec = self._context(layer, stream)
                with self.mapper_clock:
                    mapping = snapea_mapper.dense_choice(ctx, self.options).mapping
                self._dense[full] = plan_conv(ctx, mapping, name, False, neg_start, n_spec)
            else:
                self._dense[full] = plan_layer(self.arch, self.graph, layer, self.options, pau=False,
                                               widths=self.widths)
        return self._dense[full]

    def _profiled(self, pau: bool) -> bool:
        return self.options.mapper == "search" and self.options.mapper_score == "profile" and pau

    def _mode_plan(self, name: str, pau: bool, stream: Any, key: Any, profile: np.ndarray | None) -> LayerPlan:
        """The schedule of an observed layer, fixed once: the dense choice, or with `mapper_score: profile` (layers
        with early termination) the best schedule on `profile`, the layer's first `profile_images` images."""
        full = (name, pau, key)
        if full not in self._plans:
            dense = self._dense_plan(name, stream, key)
            plan = dataclasses.replace(dense, pau=pau)
            if profile is not None and self._profiled(pau):
                from accelsim.timing import snapea_mapper

                layer = self._layers[name]
                assert isinstance(layer, Conv)  # observe takes conv layers only
                ctx, neg_start, n_spec = self._context(layer, stream)
                with self.mapper_clock:
                    choice = snapea_mapper.profile_choice(ctx, self.options, profile, neg_start, n_spec)
                plan = plan_conv(ctx, choice.mapping, name, pau, neg_start, n_spec, choice.kernel_weights)
            self._plans[full] = plan
        return self._plans[full]

    def observe(self, layer_name: str, macs: np.ndarray, pau: bool = True, stream: Any = None) -> None:
        """Add one batch of a conv layer.

        `pau=False` for a layer run dense (no PAU checks). `stream`: the layer's
        `accelsim.functional.reorder.WeightStream` (fields `length`, `neg_start`, `n_spec`, each (F,)), or None: with
        it PAU checks are exact and buffer footprint and weight traffic follow each kernel's stored length (shorter
        when zero weights are skipped); without it kernels are full length and every MAC is checked. Every batch of a
        layer must come with the same `pau` and the same stream. With profile scoring, batches are held until the
        layer has seen `profile_images` images (so the schedule does not depend on how the images were batched).
        """
        layer = self._layers.get(layer_name)
        if not isinstance(layer, Conv):
            raise ConfigError(f"observe: '{layer_name}' is not a conv layer of network '{self.graph.name}'")
        key = stream_key(stream)
        if self._keys.setdefault(layer_name, (pau, key)) != (pau, key):
            raise ConfigError(f"observe: layer '{layer_name}' observed with different PAU settings or weight streams "
                              "in different batches (expected the same for every batch)")
        macs = np.asarray(macs)
        dense = self._dense_plan(layer_name, stream, key)
        images = _full_length_images(dense, macs)
        if images and not self._profiled(pau):  # a layer run dense: its closed form, not a pass over every window
            one = _conv_totals(self._mode_plan(layer_name, pau, stream, key, None), None, self.arch.pe.lanes)
            acc = self._totals.setdefault(layer_name, dict.fromkeys(TOTAL_KEYS, 0))
            for name, value in one.items():
                acc[name] += value * images
            return
        macs = _check_macs(dense, macs)
        if (layer_name, pau, key) not in self._plans and self._profiled(pau):
            pending = self._pending.setdefault(layer_name, ([], stream))[0]
            pending.append(macs)
            if sum(len(m) for m in pending) >= self.options.profile_images:
                self._settle(layer_name)
            return
        self._add(layer_name, self._mode_plan(layer_name, pau, stream, key, None), macs)

    def _settle(self, layer_name: str) -> None:
        """Fix a profiled layer's schedule on its first images and time the batches held until then."""
        batches, stream = self._pending.pop(layer_name)
        pau, key = self._keys[layer_name]
        profile = np.concatenate(batches)[:self.options.profile_images]
        plan = self._mode_plan(layer_name, pau, stream, key, profile)
        for macs in batches:
            self._add(layer_name, plan, macs)

    def _add(self, layer_name: str, plan: LayerPlan, macs: np.ndarray) -> None:
        totals = _conv_totals(plan, macs, self.arch.pe.lanes)  # macs checked by observe
        acc = self._totals.setdefault(layer_name, dict.fromkeys(TOTAL_KEYS, 0))
        for name, value in totals.items():
            acc[name] += value

    def mappings(self) -> dict[str, str]:
        """The schedule label of every costed layer (observed layers: the schedule they ran with)."""
        return {name: t.mapping for name, t in self.finish().items()}

    def finish(self, facts: Any = None) -> dict[str, LayerTiming]:
        """Per-image LayerTiming of every costed layer, in network order, each with its `dense` counterpart.

        `facts` (accelsim.timing.model.PassFacts, optional): its `batch` is the number of images fc layers may share
        a weight fetch over (default: the constructor's); its input zero shares are not used (SnaPEA's MAC counts
        already reflect the data).
        """
        batch = getattr(facts, "batch", None) or self.batch
        for name in list(self._pending):  # profiled layers that saw fewer than profile_images images in all
            self._settle(name)
        out: dict[str, LayerTiming] = {}
        for name, layer in self._layers.items():
            if isinstance(layer, FC):
                plan = self._fc_plan(layer, batch)
                t = timing_from_totals(self.arch, plan, layer_totals(self.arch, plan, None))
                out[name] = dataclasses.replace(t, dense=t)
            elif name in self._totals:
                pau, key = self._keys[name]
                plan = self._plans[(name, pau, key)]
                t = timing_from_totals(self.arch, plan, self._totals[name])
                dense = self._dense[(name, key)]
                out[name] = dataclasses.replace(t, dense=timing_from_totals(self.arch, dense,
                                                                            layer_totals(self.arch, dense, None)))
            else:
                plan = self._dense_plan(name)
                t = timing_from_totals(self.arch, plan, layer_totals(self.arch, plan, None))
                out[name] = dataclasses.replace(t, dense=t)
        return out
