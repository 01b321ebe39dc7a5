"""Wall and CPU time of an exact-mode `accelsim run` (functional model with the float reference, SnaPEA and Eyeriss
timing and energy, the run folder) on SqueezeNet v1.1 and the ImageNet sample images of ../shared/data.

Put another tree first on PYTHONPATH to time its code on the same machine in the same session, e.g.
`git archive d908d57 | tar -x -C /tmp/base` then `PYTHONPATH=/tmp/base python benchmarks/exact_run.py`. Prints one
line: the tree it ran, images, wall s, CPU s, peak memory, the machine's 1-minute load before and after, top-1.

    python benchmarks/exact_run.py [--images 1000] [--out /tmp/exact_run] [--no-float-reference]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictive_resnet20 import DATA  # noqa: E402


def main() -> int:
    import accelsim
    from accelsim.run import RunConfig, run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--out", default="/tmp/exact_run")
    ap.add_argument("--float-reference", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    model, folder = DATA / "models" / "squeezenet_v1_1.npz", DATA / "imagenet" / "sample_images"
    kw = dict(net=str(model), images=str(folder), limit=args.images, float_reference=args.float_reference)
    if hasattr(RunConfig, "of"):  # this tree: settings of every group; one of the 1000 images is 75x56 (4.6x)
        cfg = RunConfig.of(**kw, max_upscale=5.0)
    else:  # older trees: one flat class, no upscale check
        cfg = RunConfig(**kw)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = run(cfg, out=args.out, overwrite=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tree = Path(accelsim.__file__).resolve().parents[1]
    print(f"tree {tree}: {res.summary['images']} images, wall {wall:.1f} s, CPU {cpu:.1f} s, peak {peak:.0f} MB, "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}, top-1 {res.summary['accuracy']['top1']:.4f}, "
          f"float top-1 {res.summary['accuracy'].get('top1_float')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
