"""accelsim's row-stationary model beside nn_dataflow 2.1, layer by layer, at nn_dataflow's hardware point.

The point (shared/notes/peers.md): `arch_configs/eyeriss.yaml` (16x16 PEs, 1.25 MB global buffer, 500 MHz) at batch
1, and for nn_dataflow a 512 B register file per PE, `MapStrategyEyeriss`, energy goal. nn_dataflow's point has
unbounded DRAM and array-bus bandwidth; accelsim is therefore run with unbounded DRAM bandwidth
(`PEER_SETTINGS`) and its own, finite global-buffer bandwidth (docs/timing_eyeriss.md says why). The default
`eyeriss.yaml` cycles (19.2 GB/s DRAM), which the SnaPEA speedups use, are reported beside them.

A layer whose cycle ratio is outside `TOLERANCE` must be one of `EXCEPTIONS`, each with a mechanism that
`explain()` checks numerically:

- `strip`: accelsim strip-mines the output rows more finely than nn_dataflow can (a legal RS mapping the chip itself
  uses on AlexNet CONV1) and replicates more PE sets; with `options.strip_width=widest` (nn_dataflow's rule) it is
  within tolerance.
- `fill`: both models keep the same PEs busy (accelsim's busy cycles within tolerance), and the difference is
  accelsim's per-pass filter load from the global buffer, which nn_dataflow's unbounded array bus does not charge;
  large where each weight is used by few outputs (E x F <= 64 at batch 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accelsim.arch import ArchSpec, load_arch
from accelsim.nets.graph import Conv, Graph
from accelsim.nets.workload import load_workload
from accelsim.timing import eyeriss

NETWORKS = ("alexnet", "vgg16", "googlenet", "squeezenet1_0", "squeezenet1_1", "resnet20")
TOLERANCE = 0.10
BASE = "arch_configs/eyeriss.yaml"
UNBOUNDED_DRAM = "dram.bandwidth_gbps=1000000.0"  # 10^6 GB/s: DRAM never stalls (nn_dataflow's point)
PEER_SETTINGS = (UNBOUNDED_DRAM,)

# The layers outside TOLERANCE at the peer point, with their mechanism (checked by `explain`).
_STRIP = {
    "alexnet": ("conv1", "conv2"),
    "vgg16": ("conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3"),
    "googlenet": ("conv1.7x7_s2", "conv2.3x3", "inception_3a.3x3", "inception_3a.5x5", "inception_3b.3x3",
                  "inception_3b.5x5"),
    "squeezenet1_0": ("conv1", "fire2.expand3x3", "fire3.expand3x3", "fire4.expand3x3", "fire5.expand3x3",
                      "fire6.expand3x3", "fire7.expand3x3", "fire8.expand3x3"),
    "squeezenet1_1": ("conv1", "fire2.expand3x3", "fire3.expand3x3", "fire4.expand3x3", "fire5.expand3x3"),
}
_FILL = {
    "googlenet": tuple(f"inception_5{b}.{k}" for b in "ab"
                       for k in ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")),
    "resnet20": tuple(f"layer3.{i}.conv{j}" for i in range(3) for j in (1, 2)),
}
EXCEPTIONS: dict[tuple[str, str], str] = {
    **{(net, layer): "strip" for net, layers in _STRIP.items() for layer in layers},
    **{(net, layer): "fill" for net, layers in _FILL.items() for layer in layers},
}


@dataclass(frozen=True)
class LayerRow:
    """One conv layer: accelsim at the peer point (and variants) next to nn_dataflow's result."""

    network: str
    layer: str
    shape: str  # C/M/E/R/U per group (x groups)
    cycles: float  # accelsim at the peer point
    busy: float
    fill: float
    stall: float  # global-buffer + DRAM stall cycles
    cycles_widest: float  # accelsim at the peer point with options.strip_width=widest
    cycles_default: float  # accelsim with eyeriss.yaml as is (19.2 GB/s DRAM)
    mapping: str
    levels: dict[str, float]  # accelsim words per level: dram, gbuf, array, rf
    peer: Mapping[str, Any]  # nn_dataflow's layer result (see nn_dataflow_worker.py)

    @property
    def ratio(self) -> float:
        return self.cycles / self.peer["time"]

    @property
    def exception(self) -> str | None:
        return EXCEPTIONS.get((self.network, self.layer))

    @property
    def peer_levels(self) -> dict[str, float]:
        a = self.peer["access"]
        return {lvl: sum(a[f"{key}_{d}"] for d in ("fil", "ifm", "ofm"))
                for lvl, key in (("dram", "dram"), ("gbuf", "gbuf"), ("array", "itcn"), ("rf", "regf"))}

    @property
    def peer_mapping(self) -> str:
        mp = self.peer["mapping"]
        return (f"set {mp['lpeset'][0]}x{mp['lpeset'][1]} fold {mp['fold'][0]}x{mp['fold'][1]} -> "
                f"{mp['flpeset'][0]}x{mp['flpeset'][1]} on {mp['ppeset'][0]}x{mp['ppeset'][1]}, "
                f"r={mp['ifms_per_pass']} t={mp['ofms_per_pass']}")


def explain(row: LayerRow) -> str | None:
    """Why `row` is outside tolerance, if its listed mechanism accounts for it; None if it does not (a failure)."""
    if row.exception == "strip" and abs(row.cycles_widest / row.peer["time"] - 1) <= TOLERANCE:
        return (f"strip-mining: with nn_dataflow's widest strips accelsim gives "
                f"{row.cycles_widest / row.peer['time']:.3f}")
    if row.exception == "fill" and abs(row.busy / row.peer["time"] - 1) <= TOLERANCE:
        return (f"filter fill: busy cycles {row.busy / row.peer['time']:.3f} of nn_dataflow's, fill "
                f"{row.fill / row.peer['time']:.3f}")
    return None


def _levels(c: Mapping[str, float]) -> dict[str, float]:
    macs = c["macs"]
    return {"dram": c["dram_w"] + c["dram_i"] + c["dram_o"],
            "gbuf": sum(c[k] for k in ("gb_i_read", "gb_i_write", "gb_p_read", "gb_p_write", "gb_w_read",
                                       "gb_w_write")),
            "array": c["noc"],
            "rf": 4 * macs + c["sp_w_write"] + c["sp_i_write"]}  # w, i, psum reads + psum write per MAC


def _shape(layer: Conv, graph: Graph) -> str:
    _, e, _ = graph.out_shape(layer)
    g = layer.groups
    s = f"{layer.in_channels // g}/{layer.out_channels // g}/{e}/{layer.kernel[0]}/{layer.stride[0]}"
    return s + (f" x{g}" if g > 1 else "")


def accelsim_archs(base: str = BASE) -> dict[str, ArchSpec]:
    """The accelsim configurations of the comparison: peer point, peer point with widest strips, default."""
    return {"peer": load_arch(base, list(PEER_SETTINGS)),
            "widest": load_arch(base, [*PEER_SETTINGS, "options.strip_width=widest"]),
            "default": load_arch(base)}


def compare(network: str, peer_layers: Mapping[str, Any], archs: Mapping[str, ArchSpec] | None = None,
            batch: int = 1) -> list[LayerRow]:
    """LayerRows of every conv layer of `network` that nn_dataflow mapped (`peer_layers`: name -> result)."""
    archs = archs or accelsim_archs()
    graph = load_workload(network)
    rows = []
    for layer in graph.layers:
        if not isinstance(layer, Conv) or "error" in peer_layers.get(layer.name, {"error": ""}):
            continue
        c = eyeriss.layer_accesses(archs["peer"], graph, layer, batch)
        m = eyeriss.map_layer(archs["peer"], graph, layer, batch)
        rows.append(LayerRow(
            network=network, layer=layer.name, shape=_shape(layer, graph), cycles=c["cycles"], busy=c["busy"],
            fill=c["fill"], stall=c["gbuf_stall"] + c["dram_stall"],
            cycles_widest=eyeriss.layer_accesses(archs["widest"], graph, layer, batch)["cycles"],
            cycles_default=eyeriss.layer_accesses(archs["default"], graph, layer, batch)["cycles"],
            mapping=(f"e={m.e}x{m.strips} seg={m.segments} R_f={m.rows_per_fold} r={m.r} t={m.t} p={m.p} q={m.q} "
                     f"PEs={m.pes_mapped}"),
            levels=_levels(c), peer=peer_layers[layer.name]))
    return rows


def deviation(rows: list[LayerRow]) -> float:
    """Largest |accelsim / nn_dataflow - 1| over the layers that are not listed exceptions."""
    return max((abs(r.ratio - 1) for r in rows if r.exception is None), default=0.0)
