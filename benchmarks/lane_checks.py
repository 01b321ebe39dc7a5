"""What exact mode's checks cost over the bare walk, per AlexNet conv of benchmarks/functional_speed.py: the lanes'
kernel in dense mode (every weight walked, no PAU checks) against exact mode (the trace of the negative segment, and
the PAU's decisions), same data, the two timed alternately, best of `--repeat`, wall time. Recorded in
functional_speed.md. `NUMBA_NUM_THREADS=1` gives steadier figures on a shared machine.

    python benchmarks/lane_checks.py [--batch 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functional_speed import ALEXNET_CONVS, make_layer  # noqa: E402

from accelsim.functional import lanes  # noqa: E402
from accelsim.functional.reorder import ReorderOptions, reorder_layer  # noqa: E402


def best_alternated(fns: dict, repeat: int) -> dict[str, float]:
    """Best wall time of each function, the functions called in turn `repeat` times (drifts hit all alike)."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    total = {"dense": 0.0, "exact": 0.0}
    for spec in ALEXNET_CONVS:
        layer, x, w, bias = make_layer(spec, args.batch, rng)
        stream = reorder_layer(w, None, ReorderOptions())
        p = lanes._prepare(x, layer, stream, bias, "exact", None)
        wts, index, monotone = lanes._stored_stream(p, stream)
        fns = {mode: (lambda mode=mode: lanes._walk_layer(p, layer, wts, index, monotone, mode, False, True, False))
               for mode in ("dense", "exact")}
        for fn in fns.values():
            fn()  # compile or load the cache
        t = best_alternated(fns, args.repeat)
        for mode in t:
            total[mode] += t[mode]
        neg = float(np.mean(stream.length - stream.neg_start))
        print(f"{layer.name}: walk only (dense) {t['dense']:.3f} s, exact {t['exact']:.3f} s, exact / walk "
              f"{t['exact'] / t['dense']:.2f}; mean negative segment {neg:.0f} of {stream.length.mean():.0f} weights "
              f"({'trace' if monotone else 'trace and running minimum: signed inputs'})")
    print(f"total: walk only {total['dense']:.3f} s, exact {total['exact']:.3f} s, exact / walk "
          f"{total['exact'] / total['dense']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
