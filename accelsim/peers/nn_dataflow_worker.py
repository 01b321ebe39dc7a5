"""nn_dataflow side of the cross-check: run in nn_dataflow's own virtual environment, JSON in (stdin), JSON out.

    <nn_dataflow venv>/bin/python nn_dataflow_worker.py < request.json > result.json

This file imports only the standard library and nn_dataflow 2.1 (which needs sympy 1.9, incompatible with the torch
that accelsim's environment carries), so it never runs inside accelsim's environment; `accelsim.peers.nn_dataflow`
starts it as a subprocess. Request:

    {"point": {"array": [rows, cols], "gbuf_words": int, "regf_words": int, "batch": int, "goal": "e",
               "cost": {"mac": float, "dram": float, "gbuf": float, "itcn": float, "regf": float, "idle": float}},
     "layers": [{"name": str, "C": int, "M": int, "E": int, "F": int, "R": int, "S": int, "U": int, "Uw": int,
                 "groups": int}, ...],
     "processes": int}

C and M are per group; a grouped conv is one group's layer, counted `groups` times (as nn_dataflow's own alex_net
does with its `_a`/`_b` halves). nn_dataflow has no padding: each layer gets its output size and its input is the
window those outputs read, ((E-1)U+R) x ((F-1)Uw+S). Result: {"version": str, "layers": {name: {...}}} with, per
layer and for all groups together, time (processing, bus and DRAM cycles), ops, accesses per level (DRAM, GBUF, ITCN,
REGF) and data type (FIL, IFM, OFM) in 16-bit words, and the mapping (logical PE set, replication, folding, the
physical PE set, utilisation, ifmaps and ofmaps per processing pass, loop blocking), or {"error": str} for a layer
nn_dataflow cannot map.
"""

import json
import math
import multiprocessing
import os
import sys

# This file sits beside accelsim's `nn_dataflow.py`: never let that shadow the real package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _layer_result(args):
    spec, point = args
    from nn_dataflow.core import (
        ConvLayer,
        Cost,
        InputLayer,
        MapStrategyEyeriss,
        Network,
        NNDataflow,
        NodeRegion,
        Option,
        PhyDim2,
        PoolingLayer,
        Resource,
    )

    C, M, E, F, R, S, U, Uw = (spec[k] for k in ("C", "M", "E", "F", "R", "S", "U", "Uw"))
    groups = spec.get("groups", 1)
    batch = point["batch"]
    net = Network(spec["name"])
    net.set_input_layer(InputLayer(C, ((E - 1) * U + R, (F - 1) * Uw + S)))
    layer = ConvLayer(C, M, (E, F), (R, S), strd=(U, Uw))
    net.add("L", layer)
    # A network of one conv is one pipeline segment holding every layer, which nn_dataflow schedules without time
    # multiplexing and so with its filters pinned on chip (never read from DRAM). A trailing 1x1 pooling layer (no
    # filters, its own segment) makes the conv an ordinary time-multiplexed layer, as it is in a whole network.
    net.add("P", PoolingLayer(M, (E, F), 1))

    def region(kind):
        return NodeRegion(origin=PhyDim2(0, 0), dim=PhyDim2(1, 1), type=kind)

    dim_array = PhyDim2(*point["array"])
    resource = Resource(proc_region=region(NodeRegion.PROC), dram_region=region(NodeRegion.DRAM),
                        src_data_region=region(NodeRegion.DRAM), dst_data_region=region(NodeRegion.DRAM),
                        dim_array=dim_array, size_gbuf=point["gbuf_words"], size_regf=point["regf_words"],
                        array_bus_width=float("inf"), dram_bandwidth=float("inf"), no_time_mux=False)
    c = point["cost"]
    cost = Cost(mac_op=c["mac"], mem_hier=(c["dram"], c["gbuf"], c["itcn"], c["regf"]), noc_hop=0,
                idl_unit=c["idle"])
    options = Option(opt_goal=point.get("goal", "e"), ntops=1, nprocesses=1)
    try:
        ms = MapStrategyEyeriss(layer, batch, 1.0, dim_array)
        tops, _ = NNDataflow(net, batch, resource, cost, MapStrategyEyeriss).schedule_search(options)
    except (AssertionError, ValueError) as exc:  # nn_dataflow asserts a utilisation above 50 %
        return spec["name"], {"error": f"{type(exc).__name__}: {exc}"}
    if not tops:
        return spec["name"], {"error": "no valid dataflow"}
    res = tops[0]["L"]
    sch = res.scheme
    # Which replication split (ifmaps x ofmaps per processing pass) the chosen loop blocking used.
    ifms = ofms = None
    for nld in ms.gen_nested_loop_desc():
        if tuple(nld.usize_gbuf) == tuple(sch["unit_size"][0]):
            lcnt = nld.loopcnt
            ifms = math.ceil(C / lcnt[0]) if lcnt[0] else None
            ofms = math.ceil(M / lcnt[1]) if lcnt[1] else None
            break
    names_m = ("dram", "gbuf", "itcn", "regf")
    names_d = ("fil", "ifm", "ofm")
    access = {f"{m}_{d}": float(sch["access"][mi][di]) * groups
              for mi, m in enumerate(names_m) for di, d in enumerate(names_d)}
    return spec["name"], {
        "groups": groups,
        "time": float(sch["time"]) * groups,
        "proc_time": float(sch["proc_time"]) * groups,
        "bus_time": float(sch["bus_time"]) * groups,
        "dram_time": float(sch["dram_time"]) * groups,
        "ops": float(sch["ops"]) * groups,
        "cost": float(sch["cost"]) * groups,
        "access": access,
        "mapping": {
            "lpeset": [ms.dim_lpeset.h, ms.dim_lpeset.w],
            "repl": [ms.repl.h, ms.repl.w],
            "fold": [ms.fold.h, ms.fold.w],
            "flpeset": [ms.dim_flpeset.h, ms.dim_flpeset.w],
            "ppeset": [ms.dim_ppeset.h, ms.dim_ppeset.w],
            "util": ms.util,
            "ifms_per_pass": ifms,
            "ofms_per_pass": ofms,
            "tvals": [list(t) for t in sch["tvals"]],
            "orders": [list(o) for o in sch["orders"]],
        },
    }


def main():
    req = json.load(sys.stdin)
    from nn_dataflow.version import get_version
    point = req["point"]
    jobs = [(spec, point) for spec in req["layers"]]
    procs = max(1, int(req.get("processes", 1)))
    if procs > 1 and len(jobs) > 1:
        with multiprocessing.Pool(min(procs, len(jobs))) as pool:
            results = pool.map(_layer_result, jobs, chunksize=1)
    else:
        results = [_layer_result(j) for j in jobs]
    json.dump({"version": get_version(), "layers": dict(results)}, sys.stdout)


if __name__ == "__main__":
    main()
