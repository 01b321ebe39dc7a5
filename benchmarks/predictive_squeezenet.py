"""Accuracy vs speed of SnaPEA's predictive mode on SqueezeNet v1.1 (the 1000 ImageNet sample images).

Optimisation images: the first --opt-limit images of the folder in file-name order (one image per class, so these are
classes 0..opt-1); evaluation images: the next --eval-limit (disjoint). Same output as predictive_resnet20.py; the
recorded output is in predictive_squeezenet.md.

    python benchmarks/predictive_squeezenet.py [--model ../shared/data/models/squeezenet_v1_1.npz]
        [--images ../shared/data/imagenet/sample_images] [--opt-limit 100] [--eval-limit 100]
        [--profile-images 32] [--levels 0.2,0.05,0.01,0] [--no-check-opt]
        [--out /tmp/tradeoff_squeezenet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predictive_resnet20 import DATA, main  # noqa: E402  (the same driver, other defaults)

if __name__ == "__main__":
    raise SystemExit(main(model=DATA / "models" / "squeezenet_v1_1.npz", images=DATA / "imagenet" / "sample_images",
                          opt_limit=100, eval_limit=100, profile_images=32, levels="0.2,0.05,0.01,0",
                          out="/tmp/tradeoff_squeezenet", check_opt=False))
