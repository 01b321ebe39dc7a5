"""Speed of the dense fixed-point forward pass (what every evaluation of the optimiser and every `accelsim run` pays
for the layers that do not run in the MAC lanes) against the physical floor: the same network's conv GEMMs alone.

SqueezeNet v1.1 on the ImageNet sample images of ../shared/data (16-bit dynamic fixed point, formats calibrated on
16 images). The floor is, per conv layer, one BLAS GEMM weight (F, K) @ columns (K, images*Ho*Wo) with the columns
built beforehand (not timed), in float64 (what the exact fixed-point path needs) and in float32; same images, same
run. Prints best-of-`--repeat` times and, as its last line, `forward/floor(float64) ratio: X.XX`.

    python benchmarks/dense_forward.py [--images 50] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functional_speed import best_of  # noqa: E402
from predictive_resnet20 import DATA  # noqa: E402

from accelsim.functional import ops
from accelsim.functional.forward import FunctionalConfig, prepare
from accelsim.nets.datasets import load_dataset
from accelsim.nets.graph import Conv
from accelsim.nets.loaders import load_network
from accelsim.optimize.report import take_images


def gemm_floor(prepared, blobs: dict[str, np.ndarray], dtype, repeat: int) -> float:
    """Sum over the conv layers of the best GEMM time on their real inputs `blobs` (columns prebuilt)."""
    total = 0.0
    for layer in prepared.network.graph.layers:
        if not isinstance(layer, Conv):
            continue
        xin = blobs[layer.inputs[0]]
        g, cg, fg = layer.groups, layer.in_channels // layer.groups, layer.out_channels // layer.groups
        w = prepared.convs[layer.name].weight.reshape(layer.out_channels, -1).astype(dtype)
        cols = [ops.im2col(xin[:, i * cg:(i + 1) * cg], layer.kernel, layer.stride, layer.pad)
                .transpose(3, 4, 5, 0, 1, 2).reshape(layer.kernel_size, -1).astype(dtype) for i in range(g)]
        total += best_of(lambda: [w[i * fg:(i + 1) * fg] @ cols[i] for i in range(g)], repeat)[0]
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also print cProfile's top entries of one forward call")
    args = ap.parse_args()
    model, folder = DATA / "models" / "squeezenet_v1_1.npz", DATA / "imagenet" / "sample_images"
    if not model.exists() or not folder.exists():
        raise SystemExit(f"data not found: {model} / {folder} (set ACCELSIM_SHARED_DATA)")
    net = load_network(str(model))
    data = load_dataset(str(folder), net.graph)
    cfg = FunctionalConfig(mode="exact", float_reference=False)
    x = np.concatenate([b for b, _ in take_images(data.iter_batches(cfg.batch_size), 0, args.images)])
    prepared = prepare(net, cfg, x[:16])
    prepared.forward(x[:2], policy=False)  # compile / warm up
    fwd = best_of(lambda: prepared.forward(x, policy=False), args.repeat)[0]
    conv_inputs = [l.inputs[0] for l in net.graph.layers if isinstance(l, Conv)]
    blobs = prepared.forward(x, policy=False, keep=conv_inputs)
    f64 = gemm_floor(prepared, blobs, np.float64, args.repeat)
    f32 = gemm_floor(prepared, blobs, np.float32, args.repeat)
    del blobs
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(prepared.forward, x, policy=False)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"squeezenet_v1_1, {args.images} images, best of {args.repeat}; nproc {os.cpu_count()}, "
          f"python {platform.python_version()}, numpy {np.__version__}, load {load:.1f}")
    print(f"dense fixed-point forward   {fwd:7.2f} s  ({1e3 * fwd / args.images:.1f} ms/image)")
    print(f"conv GEMMs alone, float64   {f64:7.2f} s")
    print(f"conv GEMMs alone, float32   {f32:7.2f} s")
    print(f"forward/floor(float32) ratio: {fwd / f32:.2f}")
    print(f"forward/floor(float64) ratio: {fwd / f64:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
