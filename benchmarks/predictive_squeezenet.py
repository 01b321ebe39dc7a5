"""Accuracy vs speed of SnaPEA's predictive mode on SqueezeNet v1.1 (the 1000 ImageNet sample images).

Optimisation (+ validation) images: the first --opt-limit images of the folder in --image-order (a seeded shuffle by
default; in file-name order the folder holds one image per class in wnid order, so a split would be
class-disjoint), half of them validation; test (evaluation) images: the next --eval-limit (disjoint). Same options
and output as predictive_resnet20.py; the recorded output is in predictive_squeezenet.md.

    python benchmarks/predictive_squeezenet.py [--opt-limit 500] [--eval-limit 500] [--search knapsack|algorithm1]
        [--profile-images 0] [--levels ...] [--out /tmp/tradeoff_squeezenet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictive_resnet20 import DATA, main  # noqa: E402  (the same driver, other defaults)

if __name__ == "__main__":
    raise SystemExit(main(model=DATA / "models" / "squeezenet_v1_1.npz", images=DATA / "imagenet" / "sample_images",
                          opt_limit=500, eval_limit=500, profile_images=0, out="/tmp/tradeoff_squeezenet",
                          check_opt=False, max_upscale=5.0))
