"""Accuracy vs speed of SnaPEA's predictive mode on ResNet-20 (CIFAR-10): `accelsim tradeoff` on real data.

Optimisation images: the first --opt-limit images of the CIFAR-10 test set in --image-order (a seeded shuffle by
default: the npz is sorted by class); evaluation images: the next --eval-limit (disjoint). Prints the trade-off
table, the per-stage times and where the run folders are; the recorded output is in predictive_resnet20.md.

    python benchmarks/predictive_resnet20.py [--model ../shared/data/models/resnet20_cifar10.npz]
        [--images ../shared/data/cifar10/cifar10_test_jpegq75.npz] [--opt-limit 300] [--eval-limit 500]
        [--epsilons 0,0.01,0.02,0.03] [--profile-images 128] [--levels ...] [--image-order shuffled|file]
        [--out /tmp/tradeoff_resnet20]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

DATA = Path(os.environ.get("ACCELSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main(argv: list[str] | None = None, *, model: Path = DATA / "models" / "resnet20_cifar10.npz",
         images: Path = DATA / "cifar10" / "cifar10_test_jpegq75.npz", opt_limit: int = 300, eval_limit: int = 500,
         profile_images: int = 128, levels: str | None = None, out: str = "/tmp/tradeoff_resnet20",
         check_opt: bool = True) -> int:
    from accelsim.optimize import SearchSettings
    from accelsim.optimize.tradeoff import format_table, tradeoff
    from accelsim.config import RunConfig

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
                    help="refinement after the global pass (default on; --no-refine: Algorithm 1 as printed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("accelsim.timing", "accelsim.nets", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not Path(args.model).exists() or not Path(args.images).exists():
        raise SystemExit(f"data not found: {args.model} / {args.images} (set ACCELSIM_SHARED_DATA or pass paths)")
    search = {"profile_images": args.profile_images, "refine": args.refine}
    if args.levels:
        search["levels"] = tuple(float(v) for v in args.levels.split(","))
    cfg = RunConfig.of(net=args.model, images=args.images, image_order=args.image_order, float_reference=False)
    print(f"{Path(args.model).name} on {Path(args.images).name}: optimisation images 0..{args.opt_limit - 1}, "
          f"evaluation images {args.opt_limit}..{args.opt_limit + args.eval_limit - 1}; epsilons {args.epsilons}; "
          f"image order {args.image_order}; search {search}; check_opt {args.check_opt}; nproc {os.cpu_count()}, python {platform.python_version()}", flush=True)
    t0 = time.perf_counter()
    result = tradeoff(cfg, [float(v) for v in args.epsilons.split(",")], args.out, settings=SearchSettings(**search),
                      opt_limit=args.opt_limit, eval_limit=args.eval_limit, check_opt=args.check_opt)
    print(format_table(result.table))
    t = result.table
    print("\npoint          optimise s  run s  wall s  global iters  TN spec  TN any  FN rate  FN small  "
          "FN small mass  pred. layers energy red.  refine kept/tried")
    for _, r in t.iterrows():
        print(f"{r['point']:<14} {r['optimize_s']:>10.1f} {r['run_s']:>6.1f} {r['wall_s']:>7.1f} "
              f"{r['global_iterations']:>13d} {r['tn_rate']:>8.3f} {r['tn_rate_any']:>7.3f} {r['fn_rate']:>8.4f} "
              f"{r['fn_small_share']:>9.3f} {r['fn_small_mass_share']:>14.3f} {r['predictive_energy_reduction']:>10.3f}"
              f"  {r['refine_kept']}/{r['refine_trials']}")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s; results in {result.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
