"""Command-line interface: argument parsing only; the work is done by accelsim.run, optimize, sweep and report.

The run and search settings' flags are generated from their declarations (accelsim.config.RunConfig,
accelsim.optimize.grid.SearchSettings); only each command's own options (--out, --epsilon, --workers, ...) are
written here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import accelsim
from accelsim import settings
from accelsim.config import RunConfig, config_from_mapping, load_run_config
from accelsim.errors import AccelsimError, ConfigError, InternalError

log = logging.getLogger("accelsim")

_LISTS = ("set", "baseline_set")


def _search_settings_class() -> type:
    from accelsim.optimize.grid import SearchSettings

    return SearchSettings


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _run_config(args: argparse.Namespace, command: str, base: dict[str, Any] | None = None,
                fixed: dict[str, Any] | None = None) -> RunConfig:
    """The RunConfig of the given flags over `base` (a replayed config.yaml), with `fixed` settings on top."""
    base = dict(base or {})
    given = settings.given(args, RunConfig, command)
    for key in _LISTS:  # --set adds to the overrides a replayed config already has
        if key in given:
            given[key] = [*base.get(key, []), *given[key]]
    return config_from_mapping({**base, **given, **(fixed or {})}, "command line", label=settings.flag_label)


# -- run ---------------------------------------------------------------------------------------------------------------
def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a network on images through the design and the baseline (the main job)")
    p.add_argument("--config", help="repeat a run: the config.yaml of an earlier run folder (other flags override it)")
    settings.add_arguments(p, RunConfig, "run")
    p.add_argument("--out", help="run folder to write (default runs/<net>-<arch>-<mode>-<timestamp>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--report", action="store_true", help="also write figures/ and report.html into the run folder")


def _cmd_run(args: argparse.Namespace) -> int:
    from accelsim import run as run_mod
    from accelsim.report.text import format_summary, format_table

    base = load_run_config(args.config).to_dict() if args.config else {}
    cfg = _run_config(args, "run", base)
    out = Path(args.out) if args.out else run_mod.default_out_dir(cfg)
    bar, update = _progress_bar("image", cfg.limit)  # quiet unless stderr is a terminal
    try:
        outcome = run_mod.run(cfg, out=out, overwrite=args.overwrite, progress=update, unique_out=not args.out)
    finally:
        bar.close()
    print(format_table(outcome.layers, outcome.summary))
    print()
    print(format_summary(outcome.summary))
    print(f"results: {outcome.folder}")
    if args.report:
        from accelsim.report import write_report

        if outcome.folder is None:  # run() writes a folder whenever it is given `out`
            raise InternalError("run: no run folder written although an output folder was given")
        print(f"report: {write_report(outcome.folder).html}")
    return 0


# -- optimize / tradeoff -----------------------------------------------------------------------------------------------
def _add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opt-limit", type=int, dest="opt_limit",
                   help="optimisation images: the first N of the set (default min(500, half the set))")
    p.add_argument("--eval-limit", type=int, dest="eval_limit",
                   help="evaluation images: the N after the optimisation images (default: all the rest)")


def _add_optimize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="Algorithm 1: choose per-kernel speculation parameters (Th, N) under an "
                                        "accuracy budget, for `accelsim run --mode predictive --spec`",
                       description="The promise: with probability at least --confidence (default 0.9), the spec "
                                   "written loses at most --epsilon top-1 against the dense fixed-point network on new "
                                   "images drawn like its validation images (on average, or on --promise-images M of "
                                   "them); it is checked on validation images the search never saw (docs/optimize.md).")
    p.add_argument("--epsilon", type=float, required=True,
                   help="accepted top-1 loss as a fraction, absolute (0.01 = one point), against the dense "
                        "fixed-point network on the same images")
    p.add_argument("--out", required=True, help="spec file to write (.npz); the report goes to <out>.json")
    p.add_argument("--state", help="state file for resuming (default <out>.state.json)")
    p.add_argument("--resume", action="store_true", help="continue from the state file of an interrupted run")
    _add_split_args(p)
    settings.add_arguments(p, RunConfig, "optimize")
    settings.add_arguments(p, _search_settings_class(), "optimize")


def _search_settings(args: argparse.Namespace, command: str) -> Any:
    cls = _search_settings_class()
    return settings.build(cls, settings.given(args, cls, command), "command line", settings.flag_label)


def _cmd_optimize(args: argparse.Namespace) -> int:
    from accelsim import optimize as opt
    from accelsim import run as run_mod
    from accelsim.atomic import out_file_problems

    if not 0.0 <= args.epsilon <= 1.0:
        raise ConfigError(f"--epsilon must be a top-1 loss between 0 and 1 (0.01 = one point), got {args.epsilon}")
    cfg = _run_config(args, "optimize")
    search = _search_settings(args, "optimize")
    state = Path(args.state) if args.state else Path(args.out).with_name(Path(args.out).name + ".state.json")
    problems = out_file_problems(args.out) + out_file_problems(state, "--state")
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))
    network, dataset = run_mod.load_inputs(cfg)
    progress = _progress_printer()
    result = opt.optimize(network, dataset, args.epsilon, config=cfg.functional, settings=search,
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
    p.add_argument("--epsilons", type=_floats, default=[0.0, 0.01, 0.02, 0.03],
                   help="accepted top-1 losses as fractions, comma-separated (default 0,0.01,0.02,0.03)")
    p.add_argument("--out", required=True, help="folder for the table, the figure and every point's spec and run")
    p.add_argument("--no-opt-check", action="store_false", dest="check_opt",
                   help="take top-1 and MACs on the optimisation images from the optimiser instead of a functional "
                        "run per point (faster on large networks; the MAC figure is then an estimate)")
    _add_split_args(p)
    settings.add_arguments(p, RunConfig, "tradeoff")
    settings.add_arguments(p, _search_settings_class(), "tradeoff")


def _cmd_tradeoff(args: argparse.Namespace) -> int:
    from accelsim.atomic import out_dir_problems
    from accelsim.optimize.tradeoff import format_table, tradeoff

    cfg = _run_config(args, "tradeoff")
    search = _search_settings(args, "tradeoff")
    problems = out_dir_problems(args.out, overwrite=True)
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))
    progress = _progress_printer()
    result = tradeoff(cfg, args.epsilons, args.out, settings=search, opt_limit=args.opt_limit,
                      eval_limit=args.eval_limit, check_opt=args.check_opt, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    print(format_table(result.table))
    print(f"results: {result.folder}/tradeoff.md, tradeoff.parquet, tradeoff.png")
    return 0


# -- faults ------------------------------------------------------------------------------------------------------------
def _add_faults_parser(sub: argparse._SubParsersAction) -> None:
    from accelsim.faults_study import STUDIES

    p = sub.add_parser("faults", help="memory-fault studies (docs/faults.md): evaluate a fault spec with intervals, "
                                      "per-layer sensitivity over voltages or bit-error rates, greedy per-layer "
                                      "assignment under a top-1 budget")
    p.add_argument("study", choices=STUDIES, help="evaluate: top-1 under the run's fault spec; sensitivity: one "
                   "layer faulty at a time at each level; assign: per-layer levels under --budget")
    p.add_argument("--out", required=True, help="folder for the tables, summary.json, figures and study.json (what "
                                                "was studied); `accelsim report` renders it")
    p.add_argument("--memory", default="dram", help="memory the levels apply to: dram, global_buffer, "
                   "weight_buffer, io_buffer (default dram)")
    p.add_argument("--kinds", type=lambda t: [k for k in t.split(",") if k], default=["weights", "activations"],
                   help="data kinds stored in that memory, comma-separated (default weights,activations)")
    levels = p.add_mutually_exclusive_group()
    levels.add_argument("--voltages", type=_floats, help="supply voltages, most reliable first (e.g. 1.5,1.3,1.2)")
    levels.add_argument("--bers", type=_floats, help="bit-error rates, most reliable first (e.g. 0,1e-5,1e-4)")
    p.add_argument("--budget", type=float, default=0.01, help="assign: accepted top-1 loss (default 0.01)")
    p.add_argument("--repeats", type=int, default=1, help="fault draws per evaluation (default 1)")
    p.add_argument("--ci-halfwidth", type=float, dest="ci_halfwidth",
                   help="evaluate: draw until the 95%% interval of top-1 is this narrow (B.11's stopping rule)")
    p.add_argument("--max-repeats", type=int, default=50, dest="max_repeats",
                   help="evaluate: most draws under --ci-halfwidth (default 50)")
    p.add_argument("--layers", type=lambda t: [k for k in t.split(",") if k],
                   help="layers the study varies, comma-separated (default every conv and fc layer)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    settings.add_arguments(p, RunConfig, "run")


def _cmd_faults(args: argparse.Namespace) -> int:
    from accelsim.atomic import out_dir_problems, write_folder
    from accelsim.faults_study import run_study

    cfg = _run_config(args, "run")
    problems = out_dir_problems(args.out, overwrite=args.overwrite)
    if args.study != "evaluate" and args.voltages is None and args.bers is None:
        problems.append(f"{args.study} needs the levels: --voltages or --bers")
    for key in ("repeats", "max_repeats"):
        if getattr(args, key) < 1:
            problems.append(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    if not 0.0 <= args.budget <= 1.0:
        problems.append(f"--budget must be a top-1 loss between 0 and 1, got {args.budget}")
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))

    def fill(folder: Path) -> None:
        run_study(cfg, args.study, folder, memory=args.memory, kinds=args.kinds, voltages=args.voltages,
                  bers=args.bers, budget=args.budget, repeats=args.repeats, ci_halfwidth=args.ci_halfwidth,
                  max_repeats=args.max_repeats, layers=args.layers)

    folder = write_folder(args.out, fill, overwrite=args.overwrite)
    if args.study == "evaluate":
        ev = json.loads((folder / "evaluation.json").read_text())
        low, high = ev["top1_ci95"]
        print(f"top-1 {100 * ev['top1_mean']:.2f}% (95% interval {100 * low:.2f}-{100 * high:.2f}%, {ev['method']}; "
              f"{ev['images']} images)")
    print(f"results: {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})")
    return 0


# -- sweep -------------------------------------------------------------------------------------------------------------
def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of settings (resumable; local processes or a Dask cluster) into one results table",
        description="Sweep any architecture key (--set pe.lanes=1,2,4,8,16), baseline key (--set "
                    "baseline.pe.lanes=...) or run setting (--set run.negative_order=most_negative_first,"
                    "least_negative_first). Points that differ only in their designs share one functional pass. "
                    "Every point is checked before anything runs. Re-running the same command resumes: finished "
                    "points are not recomputed.")
    p.add_argument("--set", action="append", dest="axes", default=[], metavar="KEY=V1,V2,...",
                   help="a swept key and its values (one value: a fixed setting); KEY is an arch key (pe.lanes), "
                        "baseline.<arch key>, or run.<setting> (run.mode, run.negative_order, run.spec, ...)")
    p.add_argument("--baseline-set", action="append", dest="baseline_axes", default=[], metavar="KEY=V1,V2,...",
                   help="the same as --set baseline.KEY=V1,V2,...")
    combine = p.add_mutually_exclusive_group()
    combine.add_argument("--grid", action="store_const", const="grid", dest="combine",
                         help="every combination of the swept values (default)")
    combine.add_argument("--zip", action="store_const", const="zip", dest="combine",
                         help="the i-th values of every swept key together (equal numbers of values)")
    settings.add_arguments(p, RunConfig, "sweep")
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
    from accelsim.report.text import format_sweep_totals

    base = settings.given(args, RunConfig, "sweep")
    _run_config(args, "sweep")  # the fixed settings alone must be valid
    axes = sweep_mod.parse_sets([*args.axes, *(f"baseline.{item}" for item in args.baseline_axes)])
    definition = sweep_mod.SweepDefinition(base=base, axes=tuple(axes), combine=args.combine or "grid")
    bar, _ = _progress_bar("point")

    def progress(done: int, total: int) -> None:  # points arrive seconds apart: show every one
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = sweep_mod.sweep(definition, args.out, workers=args.workers, scheduler=args.scheduler,
                                 points_per_pass=args.points_per_pass, force=args.force, progress=progress)
    finally:
        bar.close()
    print(format_sweep_totals(result.totals, definition.keys))
    print()
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


# -- report ------------------------------------------------------------------------------------------------------------
def _add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures (PNG and SVG) and a self-contained report.html from a run, sweep, "
                                      "trade-off or fault-study folder")
    p.add_argument("folder", help="a folder written by `accelsim run`, `sweep`, `tradeoff` or `faults`")
    p.add_argument("--out", help="where to write report.html and figures/ (default: inside the folder)")


def _cmd_report(args: argparse.Namespace) -> int:
    from accelsim.report import write_report

    report = write_report(args.folder, args.out)
    for name, reason in report.skipped.items():
        print(f"figure {name} not drawn: {reason}")
    print(f"report: {report.html}  figures: {len(report.figures) // 2} in {report.html.parent / 'figures'}")
    return 0


# -- plumbing ----------------------------------------------------------------------------------------------------------
def _progress_printer() -> Callable[[str, int, int], None] | None:
    """A progress callback that rewrites one line on a terminal, and stays quiet otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}\033[K", end="", file=sys.stderr, flush=True)

    return show


def _progress_bar(unit: str, total: int | None = None) -> tuple[Any, Callable[[int], Any]]:
    """A tqdm bar on stderr that stays quiet when stderr is not a terminal; returns (bar, update callback)."""
    from tqdm import tqdm

    # mininterval=0: updates come per batch or per point (seconds apart), so every one is drawn; with tqdm's
    # default rate limit the last counts could go undrawn under load.
    bar = tqdm(total=total, unit=unit, disable=None, file=sys.stderr, leave=False, dynamic_ncols=True, mininterval=0)
    return bar, bar.update


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run, "optimize": _cmd_optimize, "tradeoff": _cmd_tradeoff, "sweep": _cmd_sweep, "faults": _cmd_faults,
    "report": _cmd_report,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelsim", description="Cycle-level simulator of CNN accelerators")
    parser.add_argument("--version", action="version", version=f"accelsim {accelsim.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command")
    _add_run_parser(sub)
    _add_optimize_parser(sub)
    _add_tradeoff_parser(sub)
    _add_sweep_parser(sub)
    _add_faults_parser(sub)
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
        return _COMMANDS[args.command](args)
    except AccelsimError as exc:
        print(f"accelsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accelsim: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: show where, and say so
        traceback.print_exc()
        print(f"accelsim: internal error (a bug in accelsim {accelsim.__version__}, not in your input); please "
              "report it with the traceback above", file=sys.stderr)
        return 70


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
