"""Accuracy vs speed of SnaPEA's predictive mode on SqueezeNet v1.1 (the 1000 ImageNet sample images).

Optimisation images: the first --opt-limit images of the folder in --image-order (a seeded shuffle by default; in
file-name order the folder holds one image per class in wnid order, so a split would be class-disjoint); evaluation
images: the next --eval-limit (disjoint). Same output as predictive_resnet20.py; the
recorded output is in predictive_squeezenet.md.

    python benchmarks/predictive_squeezenet.py [--model ../shared/data/models/squeezenet_v1_1.npz]
        [--images ../shared/data/imagenet/sample_images] [--opt-limit 200] [--eval-limit 300]
        [--profile-images 48] [--levels 0.2,0.05,0.01,0] [--no-check-opt]
        [--out /tmp/tradeoff_squeezenet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictive_resnet20 import DATA, main  # noqa: E402  (the same driver, other defaults)

if __name__ == "__main__":
    raise SystemExit(main(model=DATA / "models" / "squeezenet_v1_1.npz", images=DATA / "imagenet" / "sample_images",
                          opt_limit=200, eval_limit=300, profile_images=48, levels="0.2,0.05,0.01,0",
                          out="/tmp/tradeoff_squeezenet", check_opt=False))
