"""Accuracy vs speed of SnaPEA's predictive mode on ResNet-20 (CIFAR-10): `accelsim tradeoff` on real data.

Optimisation (+ validation) images: the first --opt-limit images of the CIFAR-10 test set in --image-order (a seeded
shuffle by default: the npz is sorted by class), split in half between optimisation and validation; test
(evaluation) images: the next --eval-limit (disjoint). Prints the trade-off table, the optimiser's time per phase and
where the run folders are; the recorded output is in predictive_resnet20.md.

    python benchmarks/predictive_resnet20.py [--model ../shared/data/models/resnet20_cifar10.npz]
        [--images ../shared/data/cifar10/cifar10_test_jpegq75.npz] [--opt-limit 5000] [--eval-limit 5000]
        [--epsilons 0,0.01,0.02,0.03] [--search knapsack|algorithm1] [--confidence 0.9] [--promise-images 0]
        [--validation-share 0.5] [--profile-images 0] [--levels ...] [--image-order shuffled|file]
        [--max-upscale 4] [--out /tmp/tradeoff_resnet20]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

DATA = Path(os.environ.get("ACCELSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main(argv: list[str] | None = None, *, model: Path = DATA / "models" / "resnet20_cifar10.npz",
         images: Path = DATA / "cifar10" / "cifar10_test_jpegq75.npz", opt_limit: int = 5000, eval_limit: int = 5000,
         profile_images: int = 0, levels: str | None = None, out: str = "/tmp/tradeoff_resnet20",
         check_opt: bool = False, max_upscale: float = 4.0) -> int:
    from accelsim.config import RunConfig
    from accelsim.optimize import SearchSettings
    from accelsim.optimize.tradeoff import format_table, tradeoff

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(model))
    ap.add_argument("--images", default=str(images))
    ap.add_argument("--opt-limit", type=int, default=opt_limit)
    ap.add_argument("--eval-limit", type=int, default=eval_limit)
    ap.add_argument("--epsilons", default="0,0.01,0.02,0.03")
    ap.add_argument("--profile-images", type=int, default=profile_images)
    ap.add_argument("--levels", default=levels, help="local-pass proxy-loss levels (default: SearchSettings')")
    ap.add_argument("--out", default=out)
    ap.add_argument("--image-order", choices=["shuffled", "file"], default="shuffled",
                    help="which images the first/next N are: a seeded shuffle of the set (default) or file order")
    ap.add_argument("--check-opt", action=argparse.BooleanOptionalAction, default=check_opt,
                    help="measure top-1/MACs on the optimisation images with a functional run per point")
    ap.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                    help="algorithm1: refinement after the global pass (default on; --no-refine: as printed)")
    ap.add_argument("--search", default="knapsack", choices=["knapsack", "algorithm1"])
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--promise-images", type=int, default=0, help="0: expected loss; m: loss on m new images")
    ap.add_argument("--validation-share", type=float, default=0.5)
    ap.add_argument("--settings", default="{}", help="other SearchSettings fields as JSON")
    ap.add_argument("--max-upscale", type=float, default=max_upscale,
                    help="accept images stretched up to this factor (one ImageNet sample image needs 4.6)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("accelsim.timing", "accelsim.nets", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not Path(args.model).exists() or not Path(args.images).exists():
        raise SystemExit(f"data not found: {args.model} / {args.images} (set ACCELSIM_SHARED_DATA or pass paths)")
    search = {"profile_images": args.profile_images, "refine": args.refine, "search": args.search,
              "confidence": args.confidence, "promise_images": args.promise_images,
              "validation_share": args.validation_share, **json.loads(args.settings)}
    if args.levels:
        search["levels"] = tuple(float(v) for v in args.levels.split(","))
    cfg = RunConfig.of(net=args.model, images=args.images, image_order=args.image_order, float_reference=False,
                       max_upscale=args.max_upscale)
    print(f"{Path(args.model).name} on {Path(args.images).name}: optimisation images 0..{args.opt_limit - 1}, "
          f"evaluation images {args.opt_limit}..{args.opt_limit + args.eval_limit - 1}; epsilons {args.epsilons}; "
          f"image order {args.image_order}; search {search}; check_opt {args.check_opt}; nproc {os.cpu_count()}, python {platform.python_version()}", flush=True)
    t0 = time.perf_counter()
    result = tradeoff(cfg, [float(v) for v in args.epsilons.split(",")], args.out, settings=SearchSettings(**search),
                      opt_limit=args.opt_limit, eval_limit=args.eval_limit, check_opt=args.check_opt)
    print(format_table(result.table))
    t = result.table
    phases = ["prepare_s", "dense_pass_s", "profiling_s", "path_s", "choice_s", "total_s"]
    print("\npoint          optimise s  run s  wall s  step/path  test worse/better  kept  "
          + "  ".join(p.replace("_s", "") for p in phases) + "  (optimiser phases, s)")
    for _, r in t.iterrows():
        ph = "  ".join(f"{r.get('optimize_' + p, float('nan')):.1f}" for p in phases)
        print(f"{r['point']:<14} {r['optimize_s']:>10.1f} {r['run_s']:>6.1f} {r['wall_s']:>7.1f} "
              f"{int(r['chosen_step']):>4d}/{int(r['path_steps']):<4d} {int(r['eval_worse']):>8d}/{int(r['eval_better']):<8d}"
              f" {str(bool(r['promise_kept'])):>5}  {ph}")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s; results in {result.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
