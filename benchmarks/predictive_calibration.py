"""Does the optimiser keep its promise? Random optimisation/validation/test splits, one optimisation per split and
epsilon, and the share of splits whose loss on the test images is within epsilon (it should be at least the
stated confidence).

Per split s the image set is shuffled with seed `--seed + s`; the first --opt-limit images optimise and validate
(split by the settings' validation_share), the next --test-images are the test images. Each epsilon's spec is then
run on the test images (the optimiser's own fast evaluator: the dense fixed-point network, speculating layers from
two GEMMs or a short walk, bit for bit the forward pass's top-1) and its paired loss against the dense network
recorded. Prints one line per (split, epsilon), then the share of splits that kept the promise per epsilon; writes
every row to --out/calibration.jsonl (resumable: finished (split, epsilon) rows are skipped).

    python benchmarks/predictive_calibration.py --net resnet20 --splits 10 --opt-limit 5000 --test-images 5000
    python benchmarks/predictive_calibration.py --net squeezenet --splits 5 --opt-limit 500 --test-images 500
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictive_resnet20 import DATA  # noqa: E402

NETS = {
    "resnet20": (DATA / "models" / "resnet20_cifar10.npz", DATA / "cifar10" / "cifar10_test_jpegq75.npz"),
    "squeezenet": (DATA / "models" / "squeezenet_v1_1.npz", DATA / "imagenet" / "sample_images"),
}


def _images(dataset, start: int, count: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    from accelsim.optimize.report import take_images

    xs, ys = [], []
    for x, y in take_images(dataset.iter_batches(batch), start, count):
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def main(argv: list[str] | None = None) -> int:
    from accelsim.functional.forward import FunctionalConfig
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network
    from accelsim.optimize import PairedCounts, SearchSettings, interval, opt_val_counts, optimize
    from accelsim.optimize.evaluate import LayerSetting, SpeculationEvaluator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=sorted(NETS), default="resnet20")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--seed", type=int, default=100, help="split s shuffles the set with seed + s")
    ap.add_argument("--opt-limit", type=int, default=5000, help="optimisation + validation images per split")
    ap.add_argument("--test-images", type=int, default=5000)
    ap.add_argument("--epsilons", default="0.01,0.02,0.03")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--promise-images", type=int, default=-1,
                    help="the promise's image count: 0 = expected loss, -1 (default) = the test set's size")
    ap.add_argument("--search", default="knapsack", choices=["knapsack", "algorithm1"])
    ap.add_argument("--validation-share", type=float, default=0.5)
    ap.add_argument("--settings", default="{}", help="other SearchSettings fields as JSON")
    ap.add_argument("--max-upscale", type=float, default=5.0,
                    help="accept images this many times smaller than the network input (the ImageNet sample set "
                         "holds one 75x56 photo: 4.6x for SqueezeNet)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    model, images = NETS[args.net]
    if not model.exists() or not images.exists():
        raise SystemExit(f"data not found: {model} / {images} (set ACCELSIM_SHARED_DATA)")
    out = Path(args.out or f"/tmp/calibration_{args.net}")
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "calibration.jsonl"
    done = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["split"], r["epsilon"])] = r
    epsilons = [float(v) for v in args.epsilons.split(",")]
    m = args.test_images if args.promise_images < 0 else args.promise_images
    settings = SearchSettings(search=args.search, confidence=args.confidence, promise_images=m,
                              validation_share=args.validation_share, **json.loads(args.settings))
    config = FunctionalConfig()
    net = load_network(str(model))
    print(f"{args.net}: {args.splits} splits of {args.opt_limit} optimisation+validation and {args.test_images} test "
          f"images; epsilons {epsilons}; confidence {args.confidence}; promise about "
          f"{'the expected loss' if m == 0 else f'{m} new images'}; search {args.search}; nproc {os.cpu_count()}, "
          f"python {platform.python_version()}, load {os.getloadavg()[0]:.1f}", flush=True)
    n_opt, n_val = opt_val_counts(args.opt_limit, settings.validation_share)
    for s in range(args.splits):
        if all((s, e) in done for e in epsilons):
            continue
        t_split = time.perf_counter()
        data = load_dataset(str(images), net.graph, order="shuffled", seed=args.seed + s, max_upscale=args.max_upscale)
        if args.opt_limit + args.test_images > len(data):
            raise SystemExit(f"{args.opt_limit} + {args.test_images} images exceed the {len(data)} of the set")
        state = out / f"split{s}.state.json"
        results = {}
        for eps in epsilons:
            if (s, eps) in done:
                continue
            t0 = time.perf_counter()
            results[eps] = (optimize(net, data, eps, config=config, settings=settings, opt_limit=args.opt_limit,
                                     eval_limit=args.test_images, state_path=state, resume=True,
                                     evaluate_held_out=False), time.perf_counter() - t0)
        t0 = time.perf_counter()
        opt_x, _ = _images(data, 0, n_opt, config.batch_size)
        test_x, test_y = _images(data, args.opt_limit, args.test_images, config.batch_size)
        ev = SpeculationEvaluator(net, config, test_x, test_y, settings.eval_batch, calibration=opt_x)
        test_setup_s = time.perf_counter() - t0
        for eps, (r, opt_s) in results.items():
            t0 = time.perf_counter()
            spec = {name: LayerSetting(np.asarray(r.spec.n_spec[name]), np.asarray(r.spec.threshold[name]))
                    for name in r.spec.n_spec}
            counts = PairedCounts.from_correct(ev.dense_correct, ev.correct(spec))
            lo, hi = interval(counts, args.confidence)
            val = r.losses.get("validation", {})
            row = {
                "split": s, "epsilon": eps, "confidence": args.confidence, "promise_images": m, "search": args.search,
                "chosen_step": r.chosen_step, "path_steps": r.search["path_steps"],
                "loss_opt": r.losses["optimisation"]["loss"], "loss_val": val.get("loss"),
                "val_bound": val.get("upper_bound_promise"), "loss_test": counts.loss, "test_worse": counts.worse,
                "test_better": counts.better, "test_lower": lo, "test_upper": hi,
                "kept": bool(counts.loss <= eps + 1e-12),
                "mac_reduction_opt_estimate": r.search["mac_reduction_opt_estimate"],
                "predictive_layers": sum(l["mode"] == "predictive" for l in r.layers),
                "optimize_s": opt_s, "test_s": time.perf_counter() - t0 + test_setup_s / len(results),
                "timings": {k: round(v, 1) for k, v in r.timings.items()}, "load": os.getloadavg()[0],
            }
            done[(s, eps)] = row
            with rows_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"split {s} eps {100 * eps:g}pt: step {r.chosen_step}/{r.search['path_steps']}, loss opt "
                  f"{100 * row['loss_opt']:.2f} val {100 * (row['loss_val'] or 0):.2f} (bound "
                  f"{100 * (row['val_bound'] or 0):.2f}) test {100 * counts.loss:.2f} [{100 * lo:.2f}, {100 * hi:.2f}] "
                  f"kept {row['kept']}; MACs {row['mac_reduction_opt_estimate']:.3f}x fewer than exact (estimate); "
                  f"optimise {opt_s:.0f} s; load {row['load']:.1f}", flush=True)
        del ev
        print(f"split {s}: {time.perf_counter() - t_split:.0f} s", flush=True)
    print("\nepsilon  splits  kept  share  mean test loss  max test loss  mean MAC reduction (estimate)")
    for eps in epsilons:
        rows = [r for (s, e), r in done.items() if e == eps and s < args.splits]
        if not rows:
            continue
        kept = sum(r["kept"] for r in rows)
        print(f"{100 * eps:5g}pt  {len(rows):6d}  {kept:4d}  {kept / len(rows):5.2f}  "
              f"{100 * np.mean([r['loss_test'] for r in rows]):14.2f}  {100 * max(r['loss_test'] for r in rows):13.2f}"
              f"  {np.mean([r['mac_reduction_opt_estimate'] for r in rows]):.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
