"""The SnaPEA PE-array timing model: per-window MAC counts -> cycles and an event log, per layer.

Work mapping (spec A.3, A.7 items 3 and 4; docs/timing_snapea.md): a conv layer's output rows are cut into tiles of
`tile_rows` rows (`auto`: the largest band whose input portion fits a PE's input half, balanced over the PE rows);
tiles are dealt to the PE rows (a row shares the tile's input portion, broadcast to it); kernels are dealt to the PE
columns (a column shares its kernels); a PE runs each of its kernels over the tile's windows (tiles outer, kernels
inner), its lanes taking lane groups of windows (`lane_assignment`). A group costs its slowest lane (the broadcast
weight stream stops only when every lane is done); a PE's time on a tile is the sum of its groups; the PEs of a row
meet at a barrier after every tile. Kernels that fit a PE's buffers are kept for the layer; the others stream, once
per tile step, broadcast down the columns, so with streamed kernels all rows advance step by step. Each step ends when
both the compute and the step's DMA are done (double buffering: the next tile's spilled input and the previous tile's
spilled output move during the current tile, streamed kernels during the step that uses them). Fully connected layers
put one output neuron on each lane (dense). Everything here is vectorised over windows and images (Numba for the
lane-group reduction); Python loops run over PE rows, columns and tile steps only. `accelsim.timing.reference` steps
the same machine one cycle at a time and must agree exactly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, Mapping

import numba
import numpy as np

from accelsim.arch import ArchSpec
from accelsim.errors import ConfigError
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
from accelsim.timing.events import EventLog, LayerTiming

log = logging.getLogger(__name__)

LANE_ASSIGNMENTS = ("row", "flat", "interleaved")
DEALINGS = ("round_robin", "block")
_LANE_CODE = {name: i for i, name in enumerate(LANE_ASSIGNMENTS)}

# Layers that cost nothing on their own: fused into their producer (ReLU, LRN in the PE's output path), pure
# addressing (Flatten, Concat: producers write straight into the concatenated blob), identities at inference
# (Dropout; BatchNorm is folded at load time) or left to the host (Softmax over the class scores).
_FREE = (ReLU, LRN, Dropout, BatchNorm, Flatten, Concat, Softmax)
_POOLS = (MaxPool, AvgPool)


@dataclass(frozen=True)
class SnaPEAOptions:
    """Modelling options of the SnaPEA timing model (`options.<key>` in the arch file or `--set`)."""

    lane_assignment: str = "row"  # row: adjacent windows of one output row; flat: raster order across row ends
    # of the tile; interleaved: lane j of group g takes window g + j*G (G = groups in the tile)
    tile_rows: int | str = "auto"  # output rows per tile (one input portion broadcast to a PE row); "auto": the
    # largest band whose input portion fits a PE's input half of the I/O RAM, balanced over the PE rows
    tile_dealing: str = "round_robin"  # tile t -> PE row t % rows (round_robin) or contiguous blocks of tiles (block)
    kernel_dealing: str = "round_robin"  # kernel f -> PE column f % cols (round_robin) or contiguous blocks (block)

    def __post_init__(self) -> None:
        if self.lane_assignment not in LANE_ASSIGNMENTS:
            raise ConfigError(f"options.lane_assignment must be one of {', '.join(LANE_ASSIGNMENTS)}, "
                              f"got {self.lane_assignment!r}")
        if self.tile_rows != "auto" and (isinstance(self.tile_rows, bool) or not isinstance(self.tile_rows, int)
                                         or self.tile_rows < 1):
            raise ConfigError(f"options.tile_rows must be 'auto' or an integer >= 1, got {self.tile_rows!r}")
        for key in ("tile_dealing", "kernel_dealing"):
            if getattr(self, key) not in DEALINGS:
                raise ConfigError(f"options.{key} must be one of {', '.join(DEALINGS)}, got {getattr(self, key)!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "SnaPEAOptions":
        """Validate `arch.options`: unknown keys are errors naming the allowed ones; integers may come as strings."""
        options = dict(options or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(k for k in options if k not in allowed)
        if unknown:
            raise ConfigError(f"unknown SnaPEA timing option(s) {', '.join('options.' + k for k in unknown)}; "
                              f"allowed: {', '.join('options.' + k for k in allowed)}")
        if isinstance(options.get("tile_rows"), str) and options["tile_rows"].strip().isdigit():
            options["tile_rows"] = int(options["tile_rows"])
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
        return self.latency + -(-nbytes * rate.denominator // rate.numerator)

    def cycles_array(self, nbytes: np.ndarray, rows_sharing: int = 1) -> np.ndarray:
        nbytes = np.asarray(nbytes, dtype=np.int64)
        rate = self.rate * rows_sharing
        num, den = rate.numerator, rate.denominator
        return np.where(nbytes > 0, self.latency + (nbytes * den + num - 1) // num, 0)


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
    lane_code: int  # index into LANE_ASSIGNMENTS
    tile_rows: int
    tile_row: np.ndarray  # (T,) PE row of each tile (conv)
    kernel_pe: np.ndarray  # (F,) PE column of each kernel (conv) or flat PE index r*cols + c of each neuron (fc)
    resident: bool  # every PE's kernels fit its weight (and index) buffer: loaded once per layer
    chunk: int  # the largest entry of kernel_chunk (conv) / 0: streamed kernels longer than half a buffer
    stream_bytes: np.ndarray  # fc: (rows,) bytes of weights a row streams from DRAM; conv: zeros (step_weight_bytes)
    prologue_bytes: int  # bytes loaded at full bandwidth before any row starts (resident weights; fc input)
    in_bytes: np.ndarray  # (T,) input bytes of each tile that come from DRAM (conv)
    out_bytes: np.ndarray  # (T,) conv: output bytes of each tile that go to DRAM; fc: (rows,) per PE row
    dma: DMA
    pau: bool
    static: Mapping[tuple[str, str, int], int]  # data-independent events per image: (component, event, bits) -> count
    eltwise_cycles: int = 0  # eltwise layers only
    # conv only (empty for fc / eltwise):
    # (F,) stored entries per kernel (< K when zero weights are skipped)
    kernel_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # (F,) chunk of a streamed kernel longer than half a buffer (partial sums saved at each chunk start); 0 for
    # kernels that sit whole in the buffer
    kernel_chunk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # (F,) kernels loaded once per layer (the rest stream every tile step)
    pinned: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    step_weight_bytes: int = 0  # bytes of the streamed kernels, fetched once per tile step and broadcast down the
    # columns; > 0 makes the rows advance in lockstep (one step barrier over the whole array)
    neg_start: np.ndarray | None = None  # (F,) where each kernel's PAU sign checks begin; None: a check per MAC
    n_spec: np.ndarray | None = None  # (F,) speculation-set size (a check after N MACs when > 0)

    @property
    def lockstep(self) -> bool:
        return self.step_weight_bytes > 0

    @property
    def steps(self) -> int:
        """Tile steps: the most tiles any PE row takes."""
        return int(np.bincount(self.tile_row, minlength=self.rows).max()) if self.tiles else 0

    @property
    def tiles(self) -> int:
        return len(self.tile_row)

    def tile_bounds(self, t: int) -> tuple[int, int]:
        r0 = t * self.tile_rows
        return r0, min(r0 + self.tile_rows, self.out_hw[0])

    def row_tiles(self, r: int) -> list[int]:
        return [int(t) for t in np.flatnonzero(self.tile_row == r)]


def costed_layers(graph: Graph) -> list[Layer]:
    """Layers that take time on the PE array: conv, fc, and pooling / add layers not fused into a conv."""
    fused = set(_fused_pools(graph).values())
    return [l for l in graph.layers
            if isinstance(l, (Conv, FC)) or (isinstance(l, (*_POOLS, GlobalAvgPool, Add)) and l.name not in fused)]


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
            if not isinstance(nxt, (ReLU, LRN, Dropout, BatchNorm)):
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


def _deal(n: int, parts: int, how: str) -> np.ndarray:
    if how == "round_robin":
        return np.arange(n) % parts
    return np.arange(n) // -(-n // parts)


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` bytes in proportion to integer `weights`, exactly (the parts sum to total)."""
    cum = np.concatenate(([0], np.cumsum(weights, dtype=np.int64)))
    edges = (total * cum) // max(int(cum[-1]), 1)
    return np.diff(edges).astype(np.int64)


def dma_of(arch: ArchSpec) -> DMA:
    """A PE row's share of the DRAM channel: bandwidth / rows, latency rounded up to whole cycles."""
    rate = Fraction(arch.dram_bytes_per_cycle).limit_denominator(10**6) / arch.array.rows
    latency = math.ceil(round(arch.dram.latency_ns * arch.clock_mhz / 1e3, 9))
    return DMA(latency=latency, rate=rate)


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


def _weight_residency(lengths: np.ndarray, kernel_col: np.ndarray, cols: int, cap: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Which kernels a PE keeps for the whole layer (pinned) and the chunk of each streamed one.

    A PE whose kernels fit its `cap` buffer entries keeps them all. Otherwise it reserves a double-buffered stream
    slot (2 x the longest of its kernels, at most the whole buffer) and pins whole kernels, in processing order, in
    the rest; the others are fetched again every tile step (they cannot stay: the tile loop is outside the kernel
    loop). A streamed kernel longer than half the buffer goes through it in chunks of cap // 2 entries.
    """
    pinned = np.zeros(len(lengths), bool)
    chunk = np.zeros(len(lengths), np.int64)
    half = cap // 2
    for c in range(cols):
        idx = np.flatnonzero(kernel_col == c)
        if int(lengths[idx].sum()) <= cap:
            pinned[idx] = True
            continue
        budget = cap - 2 * min(int(lengths[idx].max()), half)
        used = 0
        for f in idx[lengths[idx] <= budget]:  # first fit, in processing order
            if used + lengths[f] <= budget:
                pinned[f] = True
                used += int(lengths[f])
        chunk[idx] = np.where(~pinned[idx] & (lengths[idx] > half), half, 0)
    return pinned, chunk


def _portions(layer: Conv, in_shape: tuple[int, ...], ho: int, tile_rows: int, word_bits: int) -> np.ndarray:
    """Bytes of the input portion of every tile: the input rows its windows touch (halo included, padding not)."""
    c_in, h_in, w_in = in_shape
    sy, py, kh = layer.stride[0], layer.pad[0], layer.kernel[0]
    y0 = np.arange(0, ho, tile_rows)
    y1 = np.minimum(y0 + tile_rows, ho)
    lo = np.maximum(0, y0 * sy - py)
    hi = np.minimum(h_in, (y1 - 1) * sy - py + kh)
    return -(-(c_in * np.maximum(0, hi - lo) * w_in * word_bits) // 8)


def auto_tile_rows(layer: Conv, in_shape: tuple[int, ...], out_hw: tuple[int, int], rows: int, cap_bytes: int,
                   psum_bytes_per_window: int, word_bits: int) -> int:
    """`tile_rows: auto`: the fewest tile steps whose portions fit a PE's input half, then the smallest even tiles.

    r_max = the largest band whose input portion (halo included) plus the saved partial sums of a chunked kernel's
    windows fits `cap_bytes` (1 if even one row does not fit); steps = ceil(ceil(Ho / r_max) / rows); the tile is
    then ceil(Ho / (rows x steps)) rows, so every PE row gets about the same share in the same number of steps.
    """
    ho, wo = out_hw
    r_max = 1
    for r in range(2, ho + 1):
        if int(_portions(layer, in_shape, ho, r, word_bits).max()) + r * wo * psum_bytes_per_window > cap_bytes:
            break
        r_max = r
    if r_max == 1 and int(_portions(layer, in_shape, ho, 1, word_bits).max()) + wo * psum_bytes_per_window > cap_bytes:
        log.debug("layer %s: one output row's input portion exceeds the PE's input half (%d B)", layer.name, cap_bytes)
    steps = -(-(-(-ho // r_max)) // rows)
    return -(-ho // (rows * steps))


def plan_layer(arch: ArchSpec, graph: Graph, layer: Layer, options: SnaPEAOptions | None = None,
               pau: bool = True, stream: Any = None) -> LayerPlan:
    """The static schedule of one layer on `arch` (raises ConfigError if the layer cannot run there).

    `stream` (conv only; an `accelsim.functional.reorder.WeightStream` or anything with `length`, `neg_start` and
    `n_spec` arrays of shape (F,)) gives each kernel's stored length (buffer footprint and DRAM traffic when zero
    weights are skipped) and where its PAU checks happen; None = full kernels, one check per MAC.
    """
    opts = options or SnaPEAOptions.from_mapping(arch.options)
    rows, cols, lanes, wb, ib = arch.array.rows, arch.array.cols, arch.pe.lanes, arch.word_bits, arch.pe.index_bits
    pes = rows * cols
    half = pes * arch.pe.io_buffer_bytes // 2  # one I/O RAM half over all PEs (spec A.7 item 5)
    in_alias, out_alias = _aliases_of_input(graph), _aliases_of_output(graph)
    fused = _fused_pools(graph)
    in_words = sum(math.prod(graph.shapes[b]) for b in layer.inputs)
    in_total = -(-in_words * wb // 8)
    from_dram = all(b in in_alias for b in layer.inputs)
    common = dict(name=layer.name, rows=rows, cols=cols, lanes=lanes, lane_code=_LANE_CODE[opts.lane_assignment],
                  dma=dma_of(arch))
    wcap = arch.pe.weight_buffer_bytes * 8 // wb
    icap = arch.pe.index_buffer_bytes * 8 // ib
    static: dict[tuple[str, str, int], int] = {}

    def add(component: str, event: str, bits: int, count: int) -> None:
        if count:
            static[(component, event, bits)] = static.get((component, event, bits), 0) + int(count)

    if stream is not None and not isinstance(layer, Conv):
        raise ConfigError(f"layer '{layer.name}': a weight stream belongs to a conv layer, not {layer.type_name}")
    if isinstance(layer, Conv):
        f_count, ho, wo = graph.out_shape(layer)
        k = layer.kernel_size
        if k > 2**ib:
            raise ConfigError(f"layer '{layer.name}': pe.index_bits = {ib} addresses {2**ib} kernel positions, but its "
                              f"kernels have {k} weights (need index_bits >= {math.ceil(math.log2(k))})")
        for buf, cap, nbytes, bits in (("weight buffer", wcap, arch.pe.weight_buffer_bytes, wb),
                                       ("index buffer", icap, arch.pe.index_buffer_bytes, ib)):
            if cap < 2:
                raise ConfigError(f"layer '{layer.name}': the {buf} ({nbytes} B = {cap} entries of {bits} bits) is "
                                  f"too small for a kernel of {k} weights: streaming one lane group's kernel needs "
                                  "2 entries (double buffering)")
        if stream is None:
            lengths, neg_start, n_spec = np.full(f_count, k, np.int64), None, None
        else:
            lengths, neg_start, n_spec = _stream_arrays(layer, f_count, stream)
        kernel_col = _deal(f_count, cols, opts.kernel_dealing)
        pinned, kernel_chunk = _weight_residency(lengths, kernel_col, cols, min(wcap, icap))
        in_shape = graph.in_shapes(layer)[0]
        if opts.tile_rows == "auto":
            psum = -(-wb // 8) if kernel_chunk.any() else 0
            tile_rows = auto_tile_rows(layer, in_shape, (ho, wo), rows, arch.pe.io_buffer_bytes // 2, psum, wb)
        else:
            tile_rows = int(opts.tile_rows)
        n_tiles = -(-ho // tile_rows)
        tile_row = _deal(n_tiles, rows, opts.tile_dealing)
        tiles_of_row = np.bincount(tile_row, minlength=rows)
        steps = int(tiles_of_row.max())
        kept, streamed = int(lengths[pinned].sum()), int(lengths[~pinned].sum())
        kept_bytes, step_bytes = -(-kept * (wb + ib) // 8), -(-streamed * (wb + ib) // 8)
        rows_per_tile = np.minimum(np.arange(1, n_tiles + 1) * tile_rows, ho) - np.arange(n_tiles) * tile_rows
        in_dram = in_total if from_dram else max(0, in_total - half)
        pool_name = fused.get(layer.name)
        out_shape = graph.out_shape(graph.layer(pool_name)) if pool_name else (f_count, ho, wo)
        out_blob = graph.layer(pool_name).output if pool_name else layer.output
        out_words = math.prod(out_shape)
        out_total = -(-out_words * wb // 8)
        out_dram = out_total if out_blob in out_alias else max(0, out_total - half)
        # the input portion broadcast to a row per tile, in words (padding is not sent)
        portion = int(_portions(layer, in_shape, ho, tile_rows, 8).sum())
        fetched = kept + steps * streamed  # entries read from DRAM and broadcast down the columns
        add("noc", "transfer", wb, portion + fetched)
        add("noc", "index_transfer", ib, fetched)
        add("weight_buffer", "write", wb, rows * kept + n_tiles * streamed)
        add("index_buffer", "write", ib, rows * kept + n_tiles * streamed)
        add("io_buffer", "write", wb, out_words)
        if pool_name:
            add("mac", "pool", wb, f_count * ho * wo)
        add("dram", "read", 8, kept_bytes + steps * step_bytes + in_dram)
        add("dram", "write", 8, out_dram)
        log.debug("plan %s: %d tiles of %d rows over %d rows (%d steps), pinned %d/%d kernels, chunk %d",
                  layer.name, n_tiles, tile_rows, int(np.count_nonzero(tiles_of_row)), steps, int(pinned.sum()),
                  f_count, int(kernel_chunk.max(initial=0)))
        return LayerPlan(kind="conv", kernel_len=k, kernels=f_count, out_hw=(ho, wo), tile_rows=tile_rows,
                         tile_row=tile_row, kernel_pe=kernel_col, resident=bool(pinned.all()),
                         chunk=int(kernel_chunk.max(initial=0)), stream_bytes=np.zeros(rows, np.int64),
                         prologue_bytes=kept_bytes, in_bytes=_split(in_dram, rows_per_tile),
                         out_bytes=_split(out_dram, rows_per_tile), pau=pau, static=static,
                         kernel_lengths=lengths, kernel_chunk=kernel_chunk, pinned=pinned,
                         step_weight_bytes=step_bytes, neg_start=neg_start, n_spec=n_spec, **common)

    if isinstance(layer, FC):
        k, f_count = layer.in_features, layer.out_features
        if wcap < 2 * lanes:
            raise ConfigError(f"layer '{layer.name}': the weight buffer ({arch.pe.weight_buffer_bytes} B = {wcap} "
                              f"entries of {wb} bits) is too small for a fully connected layer: its {lanes} lanes "
                              f"take one weight each per cycle, and streaming needs 2 x {lanes} = {2 * lanes} entries")
        neuron_pe = _deal(f_count, pes, "round_robin")
        per_pe = np.bincount(neuron_pe, minlength=pes)
        resident = int(per_pe.max()) * k <= wcap
        row_neurons = per_pe.reshape(rows, cols).sum(1)
        stream = np.zeros(rows, np.int64) if resident else -(-row_neurons * k * wb // 8)
        entries = f_count * k
        w_bytes = -(-entries * wb // 8)
        out_blob_dram = layer.output in out_alias
        out_total = -(-f_count * wb // 8)
        out_row = -(-row_neurons * wb // 8) if out_blob_dram else np.zeros(rows, np.int64)
        if not out_blob_dram and out_total > half:
            out_row = -(-row_neurons * wb // 8)  # the whole vector spills (it cannot be split across the halves)
        in_dram = in_total if (from_dram or in_total > half) else 0
        add("noc", "transfer", wb, in_words + entries)
        add("weight_buffer", "write", wb, entries)
        add("io_buffer", "write", wb, f_count)
        add("dram", "read", 8, in_dram + w_bytes)
        add("dram", "write", 8, int(out_row.sum()))
        return LayerPlan(kind="fc", tile_rows=1, kernel_len=k, kernels=f_count, out_hw=(1, 1),
                         tile_row=np.zeros(1, np.int64),
                         kernel_pe=neuron_pe, resident=resident, chunk=0, stream_bytes=stream.astype(np.int64),
                         prologue_bytes=(w_bytes if resident else 0) + in_dram, in_bytes=np.zeros(1, np.int64),
                         out_bytes=out_row.astype(np.int64), pau=False, static=static, **common)

    if isinstance(layer, (*_POOLS, GlobalAvgPool, Add)):
        out_words = math.prod(graph.out_shape(layer))
        add("io_buffer", "read", wb, in_words)
        add("io_buffer", "write", wb, out_words)
        add("mac", "add" if isinstance(layer, Add) else "pool", wb, in_words)
        return LayerPlan(kind="eltwise", tile_rows=1, kernel_len=0, kernels=0, out_hw=(1, 1),
                         tile_row=np.zeros(0, np.int64),
                         kernel_pe=np.zeros(0, np.int64), resident=True, chunk=0, stream_bytes=np.zeros(rows, np.int64),
                         prologue_bytes=0, in_bytes=np.zeros(0, np.int64), out_bytes=np.zeros(0, np.int64), pau=False,
                         static=static, eltwise_cycles=-(-in_words // (pes * lanes)), **common)
    raise ConfigError(f"layer '{layer.name}' ({layer.type_name}) takes no time of its own on the SnaPEA array "
                      "(it is fused into its producer or is pure addressing)")


# -- totals -> LayerTiming (shared with the reference simulator) ------------------------------------------------------
# Integer totals over the images simulated; both models fill the same keys.
TOTAL_KEYS = ("images", "cycles", "macs", "gated", "weight_reads", "index_reads", "input_reads", "psum_swaps",
              "pau_checks", "compute_pe", "barrier_pe", "dram_pe", "tail_pe", "unused_pe", "dram_read", "dram_write")


def timing_from_totals(arch: ArchSpec, plan: LayerPlan, totals: Mapping[str, int]) -> LayerTiming:
    """Per-image LayerTiming from integer totals; the breakdown's cycle classes add up to `cycles`."""
    n = totals["images"]
    lanes, units, wb, ib = arch.pe.lanes, arch.mac_units, arch.word_bits, arch.pe.index_bits
    ev = EventLog()
    for (component, event, bits), count in plan.static.items():
        if (component, event) not in (("dram", "read"), ("dram", "write")):
            ev.add(component, event, count * n, bits)
    ev.add("dram", "read", totals["dram_read"], 8)
    ev.add("dram", "write", totals["dram_write"], 8)
    ev.add("mac", "mac", totals["macs"], wb)
    ev.add("mac", "gated", totals["gated"], 0)
    ev.add("weight_buffer", "read", totals["weight_reads"], wb)
    ev.add("index_buffer", "read", totals["index_reads"], ib)
    ev.add("io_buffer", "read", totals["input_reads"] + totals["psum_swaps"], wb)
    ev.add("io_buffer", "write", totals["psum_swaps"], wb)
    ev.add("pau", "check", totals["pau_checks"] if plan.pau else 0, wb)
    ev.add("pe", "barrier_stall_cycle", totals["barrier_pe"], 0)
    ev.add("dram", "stall_cycle", totals["dram_pe"], 0)
    ev.add("lane", "idle_cycle", totals["gated"] + lanes * (totals["barrier_pe"] + totals["dram_pe"]
                                                            + totals["tail_pe"]), 0)
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
                       breakdown=breakdown)


def _dram_totals(plan: LayerPlan, images: int) -> tuple[int, int]:
    read = sum(c for (comp, ev, _), c in plan.static.items() if (comp, ev) == ("dram", "read"))
    write = sum(c for (comp, ev, _), c in plan.static.items() if (comp, ev) == ("dram", "write"))
    return read * images, write * images


# -- the fast model ---------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _lane_groups(macs, lanes, tile_rows, mode, chunk, neg_start, n_spec, kt, macs_tot, swaps_tot,
                 checks_tot):  # pragma: no cover - compiled
    """kt[b, f, t] = sum over the lane groups of kernel f on tile t of the group's slowest lane; per-image MACs,
    partial-sum swaps (chunk[f] > 0) and PAU checks (MACs at positions >= neg_start[f], + 1 at N = n_spec[f])."""
    n_img, n_f, ho, wo = macs.shape
    n_t = kt.shape[2]
    for b in range(n_img):
        s = 0
        sw = 0
        ck = 0
        for f in range(n_f):
            for t in range(n_t):
                r0 = t * tile_rows
                r1 = min(r0 + tile_rows, ho)
                n = (r1 - r0) * wo
                acc = 0
                if mode == 0:
                    for y in range(r0, r1):
                        for x0 in range(0, wo, lanes):
                            mx = 0
                            for x in range(x0, min(x0 + lanes, wo)):
                                m = macs[b, f, y, x]
                                if m > mx:
                                    mx = m
                            acc += mx
                elif mode == 1:
                    for i0 in range(0, n, lanes):
                        mx = 0
                        for i in range(i0, min(i0 + lanes, n)):
                            m = macs[b, f, r0 + i // wo, i % wo]
                            if m > mx:
                                mx = m
                        acc += mx
                else:
                    g_count = (n + lanes - 1) // lanes
                    for g in range(g_count):
                        mx = 0
                        for j in range(lanes):
                            i = g + j * g_count
                            if i < n:
                                m = macs[b, f, r0 + i // wo, i % wo]
                                if m > mx:
                                    mx = m
                        acc += mx
                kt[b, f, t] = acc
            c = chunk[f]
            ns = neg_start[f]
            nn = n_spec[f]
            for y in range(ho):
                for x in range(wo):
                    m = macs[b, f, y, x]
                    s += m
                    if c > 0 and m > 0:
                        sw += (m - 1) // c
                    if m > ns:
                        ck += m - ns
                    if nn > 0 and m >= nn:
                        ck += 1
        macs_tot[b] = s
        swaps_tot[b] = sw
        checks_tot[b] = ck


def _pau_arrays(plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """(neg_start, n_spec) per kernel; without a stream every MAC is followed by a check."""
    if plan.neg_start is None:
        return np.zeros(plan.kernels, np.int64), np.zeros(plan.kernels, np.int64)
    return plan.neg_start, plan.n_spec


def _dense_kernel_tiles(plan: LayerPlan) -> np.ndarray:
    """kt for every window at its kernel's full (stored) length, in closed form: length x lane groups of the tile."""
    ho, wo = plan.out_hw
    lanes = plan.lanes
    groups = []
    for t in range(plan.tiles):
        r0, r1 = plan.tile_bounds(t)
        groups.append((r1 - r0) * -(-wo // lanes) if plan.lane_code == 0 else -(-(r1 - r0) * wo // lanes))
    return plan.kernel_lengths[None, :, None] * np.array(groups, np.int64)[None, None, :]


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


def _conv_totals(plan: LayerPlan, macs: np.ndarray | None, lanes: int) -> dict[str, int]:
    rows, cols = plan.rows, plan.cols
    neg_start, n_spec = _pau_arrays(plan)
    if macs is None:
        images = 1
        kt = _dense_kernel_tiles(plan)
        lengths = plan.kernel_lengths
        windows = plan.out_hw[0] * plan.out_hw[1]
        macs_tot = np.array([windows * lengths.sum()], np.int64)
        per_window = np.where((plan.kernel_chunk > 0) & (lengths > 0),
                              (lengths - 1) // np.maximum(plan.kernel_chunk, 1), 0)
        swaps_tot = np.array([windows * per_window.sum()], np.int64)
        checks = np.maximum(lengths - neg_start, 0) + ((n_spec > 0) & (lengths >= n_spec))
        checks_tot = np.array([windows * checks.sum()], np.int64)
    else:
        images = macs.shape[0]
        kt = np.empty((images, plan.kernels, plan.tiles), np.int64)
        macs_tot = np.empty(images, np.int64)
        swaps_tot = np.empty(images, np.int64)
        checks_tot = np.empty(images, np.int64)
        _lane_groups(macs, lanes, plan.tile_rows, plan.lane_code, plan.kernel_chunk, neg_start, n_spec, kt,
                     macs_tot, swaps_tot, checks_tot)
    # PE time per (image, column, tile): the sum over the column's kernels
    pt = np.zeros((kt.shape[0], cols, plan.tiles), np.int64)
    for c in range(cols):
        sel = plan.kernel_pe == c
        if sel.any():
            pt[:, c, :] = kt[:, sel, :].sum(1)
    col_active = np.bincount(plan.kernel_pe, minlength=cols) > 0
    n_cols = int(col_active.sum())
    tt = pt.max(1)  # (images, T): the row's time on the tile (barrier)
    step = _lockstep_steps if plan.lockstep else _row_steps
    cycles, barrier, dram_pe, tail, n_active = step(plan, pt, tt, n_cols)
    kt_sum = kt.sum((1, 2))
    totals = dict(images=images, cycles=int(cycles.sum()), macs=int(macs_tot.sum()),
                  gated=int(lanes * kt_sum.sum() - macs_tot.sum()), weight_reads=int(kt_sum.sum()),
                  index_reads=int(kt_sum.sum()), input_reads=int(macs_tot.sum()), psum_swaps=int(swaps_tot.sum()),
                  pau_checks=int(checks_tot.sum()), compute_pe=int(pt.sum()), barrier_pe=int(barrier.sum()),
                  dram_pe=int(dram_pe.sum()), tail_pe=int(tail.sum()),
                  unused_pe=int((rows * cols - n_active) * cycles.sum()))
    totals["dram_read"], totals["dram_write"] = _dram_totals(plan, images)
    return totals


def _row_steps(plan: LayerPlan, pt: np.ndarray, tt: np.ndarray, n_cols: int):
    """Every kernel stays in its PE: the rows run independently, each on its share of the DRAM channel."""
    rows, dma = plan.rows, plan.dma
    barrier = (n_cols * tt - pt.sum(1)).sum(1)  # columns without kernels have pt = 0 and are not counted
    glob = dma.cycles(plan.prologue_bytes, rows)
    row_time = np.zeros((tt.shape[0], rows), np.int64)
    dram_pe = np.zeros(tt.shape[0], np.int64)
    used_rows = []
    for r in range(rows):
        seq = plan.row_tiles(r)
        if not seq:
            continue
        used_rows.append(r)
        ins, outs = plan.in_bytes[seq], plan.out_bytes[seq]
        step_bytes = np.zeros(len(seq), np.int64)
        step_bytes[:-1] += ins[1:]
        step_bytes[1:] += outs[:-1]
        d = np.maximum(tt[:, seq], dma.cycles_array(step_bytes)[None, :])
        edge = dma.cycles(int(ins[0])) + dma.cycles(int(outs[-1]))
        row_time[:, r] = edge + d.sum(1)
        dram_pe += n_cols * (edge + (d - tt[:, seq]).sum(1))
    span = row_time.max(1)
    n_active = n_cols * len(used_rows)
    tail = n_cols * (span[:, None] - row_time[:, used_rows]).sum(1)
    dram_pe += n_active * glob
    return glob + span, barrier, dram_pe, tail, n_active


def _step_table(plan: LayerPlan) -> np.ndarray:
    """(rows, steps) tile each PE row works on in each tile step, -1 where the row is done."""
    at = np.full((plan.rows, plan.steps), -1, np.int64)
    for r in range(plan.rows):
        seq = plan.row_tiles(r)
        at[r, :len(seq)] = seq
    return at


def _lockstep_steps(plan: LayerPlan, pt: np.ndarray, tt: np.ndarray, n_cols: int):
    """Streamed kernels ride one broadcast down each column per tile step, so all rows advance step by step.

    Step k: every row works on its k-th tile; the DMA (whole channel) moves the step's streamed kernels, each row's
    next input and previous output; the step lasts max(slowest PE of the array, DMA). A prologue (kept kernels,
    first inputs) and an epilogue (last outputs) stall every PE.
    """
    dma, at = plan.dma, _step_table(plan)
    rows_used = at[:, 0] >= 0
    has = at >= 0  # (rows, steps)
    n_img, steps = tt.shape[0], at.shape[1]
    tk = np.zeros((n_img, steps), np.int64)
    dma_bytes = np.full(steps, plan.step_weight_bytes, np.int64)
    for k in range(steps):
        tk[:, k] = tt[:, at[has[:, k], k]].max(1)
        if k + 1 < steps:
            dma_bytes[k] += int(plan.in_bytes[at[has[:, k + 1], k + 1]].sum())
        if k > 0:
            dma_bytes[k] += int(plan.out_bytes[at[has[:, k - 1], k - 1]].sum())
    pro = plan.prologue_bytes + int(plan.in_bytes[at[rows_used, 0]].sum())
    epi = int(plan.out_bytes[at[has[:, -1], -1]].sum())
    edge = dma.cycles(pro, plan.rows) + dma.cycles(epi, plan.rows)
    dk = np.maximum(tk, dma.cycles_array(dma_bytes, plan.rows)[None, :])
    busy_rows = has.sum(0)  # rows with a tile in each step
    n_active = n_cols * int(rows_used.sum())
    barrier = n_cols * (tk * busy_rows).sum(1) - pt.sum((1, 2))
    dram_pe = n_active * edge + n_cols * ((dk - tk) * busy_rows).sum(1)
    tail = n_cols * (dk * (int(rows_used.sum()) - busy_rows)).sum(1)
    return edge + dk.sum(1), barrier, dram_pe, tail, n_active


def _fc_totals(plan: LayerPlan, images: int, lanes: int) -> dict[str, int]:
    rows, cols, k = plan.rows, plan.cols, plan.kernel_len
    per_pe = np.bincount(plan.kernel_pe, minlength=rows * cols).reshape(rows, cols)
    comp = -(-per_pe // lanes) * k  # (rows, cols) cycles of each PE: its lane groups, each K cycles (dense)
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
    one = dict(images=1, cycles=cycles, macs=plan.kernels * k, gated=int(lanes * comp.sum()) - plan.kernels * k,
               weight_reads=plan.kernels * k, index_reads=0, input_reads=int(comp.sum()), psum_swaps=0, pau_checks=0,
               compute_pe=int(comp.sum()), barrier_pe=int(((tt[:, None] - comp) * active).sum()),
               dram_pe=int((n_act * (d - tt + epi)).sum() + active.sum() * glob),
               tail_pe=int((n_act * (span - row_time)).sum()), unused_pe=int((rows * cols - active.sum()) * cycles))
    totals = {key: value * images for key, value in one.items()}
    totals["dram_read"], totals["dram_write"] = _dram_totals(plan, images)
    return totals


def _eltwise_totals(plan: LayerPlan, images: int) -> dict[str, int]:
    zero = dict.fromkeys(TOTAL_KEYS, 0)
    zero.update(images=images, cycles=plan.eltwise_cycles * images, compute_pe=plan.eltwise_cycles * images
                * plan.rows * plan.cols)
    return zero


def layer_totals(arch: ArchSpec, plan: LayerPlan, macs: np.ndarray | None, images: int = 1) -> dict[str, int]:
    """Integer totals over a batch (`macs` (B, F, Ho, Wo) for a conv; None = every window at full length)."""
    if plan.kind == "conv":
        return _conv_totals(plan, None if macs is None else _check_macs(plan, macs), arch.pe.lanes)
    if plan.kind == "fc":
        return _fc_totals(plan, images if macs is None else int(np.shape(macs)[0]), arch.pe.lanes)
    return _eltwise_totals(plan, images if macs is None else int(np.shape(macs)[0]))


def stream_key(stream: Any) -> tuple[bytes, ...] | None:
    """A hashable summary of what the timing model reads from a weight stream (None for no stream)."""
    if stream is None:
        return None
    return tuple(np.asarray(getattr(stream, name, np.zeros(0)), np.int64).tobytes()
                 for name in ("length", "neg_start", "n_spec"))


def simulate_layer(arch: ArchSpec, graph: Graph, layer: Layer | str, macs: np.ndarray | None = None,
                   pau: bool = True, stream: Any = None) -> LayerTiming:
    """Time one layer for one batch: `macs` (B, F, Ho, Wo) per window, or None for the dense schedule.

    `pau` says whether the layer runs with early termination (PAU checks are counted); dense layers (macs None)
    never check. `stream` (a `WeightStream` of the conv layer, optional) sizes each kernel by its stored length and
    counts PAU checks exactly: the MACs at stream positions >= neg_start[f], plus one speculation check where
    n_spec[f] > 0 and the window reached N MACs. Without it every kernel is full length and every MAC is checked.
    With a stream, None for `macs` means every window runs its kernel's stored length.
    """
    layer = graph.layer(layer) if isinstance(layer, str) else layer
    plan = plan_layer(arch, graph, layer, pau=pau and macs is not None, stream=stream)
    return timing_from_totals(arch, plan, layer_totals(arch, plan, macs))


class SnaPEATiming:
    """Streams per-window MAC counts batch by batch and returns per-image LayerTiming for every costed layer.

    `observe(layer_name, macs, pau, stream)` once per conv layer and batch; `finish()` times every other costed
    layer (fc, dense convs never observed, unfused pooling and add layers) on its dense schedule.
    """

    def __init__(self, arch: ArchSpec, graph: Graph):
        self.arch = arch
        self.graph = graph
        self.options = SnaPEAOptions.from_mapping(arch.options)
        self._layers = {l.name: l for l in costed_layers(graph)}
        self._plans: dict[tuple[str, bool, Any], LayerPlan] = {}
        self._totals: dict[str, dict[str, int]] = {}
        self._keys: dict[str, tuple[bool, Any]] = {}
        for name in self._layers:  # validate every layer up front: a bad config fails before any image runs
            self._plan(name, False)

    def _plan(self, name: str, pau: bool, stream: Any = None, key: Any = None) -> LayerPlan:
        full = (name, pau, key)
        if full not in self._plans:
            self._plans[full] = plan_layer(self.arch, self.graph, self._layers[name], self.options, pau=pau,
                                           stream=stream)
        return self._plans[full]

    def observe(self, layer_name: str, macs: np.ndarray, pau: bool = True, stream: Any = None) -> None:
        """Add one batch of a conv layer.

        `pau=False` for a layer run dense (no PAU checks). `stream`: the layer's
        `accelsim.functional.reorder.WeightStream` (fields `length`, `neg_start`, `n_spec`, each (F,)), or None: with
        it PAU checks are exact and buffer footprint and weight traffic follow each kernel's stored length (shorter
        when zero weights are skipped); without it kernels are full length and every MAC is checked. Every batch of a
        layer must come with the same `pau` and the same stream.
        """
        layer = self._layers.get(layer_name)
        if not isinstance(layer, Conv):
            raise ConfigError(f"observe: '{layer_name}' is not a conv layer of network '{self.graph.name}'")
        key = stream_key(stream)
        if self._keys.setdefault(layer_name, (pau, key)) != (pau, key):
            raise ConfigError(f"observe: layer '{layer_name}' observed with different PAU settings or weight streams "
                              "in different batches (expected the same for every batch)")
        plan = self._plan(layer_name, pau, stream, key)
        totals = layer_totals(self.arch, plan, macs)
        acc = self._totals.setdefault(layer_name, dict.fromkeys(TOTAL_KEYS, 0))
        for name, value in totals.items():
            acc[name] += value

    def finish(self, facts: Any = None) -> dict[str, LayerTiming]:
        """Per-image LayerTiming of every costed layer, in network order (`facts`: accelsim.timing.model.PassFacts,
        unused: the SnaPEA schedule depends on the observed MAC counts only)."""
        out: dict[str, LayerTiming] = {}
        for name in self._layers:
            if name in self._totals:
                pau, key = self._keys[name]
                out[name] = timing_from_totals(self.arch, self._plan(name, pau, None, key), self._totals[name])
            else:
                plan = self._plan(name, False)
                out[name] = timing_from_totals(self.arch, plan, layer_totals(self.arch, plan, None))
        return out
