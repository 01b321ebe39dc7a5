"""Cost of the SnaPEA timing stage against the functional stage (the MAC lanes) on AlexNet-shaped layers.

The per-window MAC counts are the real output of `run_lanes` (exact mode) on the synthetic AlexNet conv layers of
`functional_speed.py` (same data), so the timing model sees the distribution the functional model produces. The
timing stage is `SnaPEATiming.observe` on every conv layer's batch plus `finish()` (which also times the three fc
layers on their dense schedule), on `arch_configs/snapea.yaml`. Prints per-layer times and, as its last line,
`timing/functional time ratio: X.XXX` (best-of-`repeat` sums).

    python benchmarks/timing_overhead.py [--batch 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from functional_speed import ALEXNET_CONVS, best_of, make_layer  # noqa: E402

from accelsim.arch import load_arch  # noqa: E402
from accelsim.functional.lanes import run_lanes  # noqa: E402
from accelsim.functional.reorder import ReorderOptions, reorder_layer  # noqa: E402
from accelsim.nets.workload import load_workload  # noqa: E402
from accelsim.timing.snapea import SnaPEATiming  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    arch = load_arch("snapea")
    graph = load_workload("alexnet")
    print(f"batch {args.batch}, best of {args.repeat}, nproc {os.cpu_count()}, arch {arch.source}")
    print(f"{'layer':6} {'windows':>9} {'lanes s':>8} {'timing s':>9} {'ratio':>6}")
    t0 = time.perf_counter()
    SnaPEATiming(arch, graph).observe("conv3", np.ones((1, 384, 13, 13), np.int32))  # compile / load the cache
    first_call = time.perf_counter() - t0
    batches = []
    tot_f = 0.0
    for spec in ALEXNET_CONVS:
        layer, x, w, bias = make_layer(spec, args.batch, rng)
        stream = reorder_layer(w, None, ReorderOptions())
        run_lanes(x, layer, stream, bias, "exact")
        t_f, res = best_of(lambda: run_lanes(x, layer, stream, bias, "exact"), args.repeat)
        tot_f += t_f
        batches.append((layer.name, res.macs, t_f))

    def timing_stage() -> dict:
        acc = SnaPEATiming(arch, graph)
        for name, macs, _ in batches:
            acc.observe(name, macs)
        return acc.finish()

    per_layer = []
    for name, macs, t_f in batches:
        t_t, _ = best_of(lambda: SnaPEATiming(arch, graph).observe(name, macs), args.repeat)
        per_layer.append(t_t)
        print(f"{name:6} {macs.size:9d} {t_f:8.3f} {t_t:9.4f} {t_t / t_f:6.3f}")
    t_total, result = best_of(timing_stage, args.repeat)
    cycles = sum(t.cycles for t in result.values())
    print(f"{'total':6} {sum(m.size for _, m, _ in batches):9d} {tot_f:8.3f} {t_total:9.4f} {t_total / tot_f:6.3f}"
          "   (timing: whole stage incl. SnaPEATiming construction, fc layers and finish)")
    print(f"first observe call (compile or cache load + run): {first_call:.2f} s")
    print(f"AlexNet on {arch.name}: {cycles:,.0f} cycles per image ({len(result)} layers timed)")
    print(f"timing/functional time ratio: {t_total / tot_f:.3f}")


if __name__ == "__main__":
    main()
