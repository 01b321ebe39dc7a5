"""What exact mode's checks cost over the bare walk, per AlexNet conv of benchmarks/functional_speed.py: the lanes'
kernel in dense mode (every weight walked, no PAU checks) against exact mode (counts or checkpoints in the negative
segment, and the PAU's decisions), same data, best of 3, wall time. Recorded in functional_speed.md.

    python benchmarks/lane_checks.py [--batch 8]
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


def best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    total = {"dense": 0.0, "exact": 0.0}
    for spec in ALEXNET_CONVS:
        layer, x, w, bias = make_layer(spec, args.batch, rng)
        stream = reorder_layer(w, None, ReorderOptions())
        p = lanes._prepare(x, layer, stream, bias, "exact", None)
        wts, index, monotone = lanes._stored_stream(p, stream)
        t = {}
        for mode in ("dense", "exact"):
            def walk(mode: str = mode) -> None:
                lanes._walk_layer(p, layer, wts, index, monotone, mode, False, True, False)

            walk()  # compile or load the cache
            t[mode] = best_of(walk)
            total[mode] += t[mode]
        neg = float(np.mean(stream.length - stream.neg_start))
        print(f"{layer.name}: walk only (dense) {t['dense']:.3f} s, exact {t['exact']:.3f} s, exact / walk "
              f"{t['exact'] / t['dense']:.2f}; mean negative segment {neg:.0f} of {stream.length.mean():.0f} weights "
              f"({'counted' if neg <= lanes._COUNT_MAX else 'checkpoints'})")
    print(f"total: walk only {total['dense']:.3f} s, exact {total['exact']:.3f} s, exact / walk "
          f"{total['exact'] / total['dense']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
