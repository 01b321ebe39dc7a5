"""On the real pretrained networks of ../shared/data (skipped without it): exactness and fixed-point accuracy."""

import numpy as np
import pytest

from accelsim.functional.forward import FunctionalConfig, prepare, run
from accelsim.functional.reorder import ReorderOptions
from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network

MODELS = {
    # model file stem: (dataset path inside shared/data, images for the exactness check)
    "lenet5_mnist": ("mnist", 64),
    "resnet20_cifar10": ("cifar10/cifar10_test_jpegq75.npz", 16),
    "squeezenet_v1_1": ("imagenet/imagenet_sample_crops227_every10th.npz", 4),
    "squeezenet_v1_0_deepcompression": ("imagenet/imagenet_sample_crops227_every10th.npz", 4),
}


@pytest.mark.parametrize("stem", sorted(MODELS))
@pytest.mark.parametrize("skip_zero", [False, True])
def test_exact_mode_is_bit_identical_on_every_eligible_layer(shared_data, stem, skip_zero):
    images, n = MODELS[stem]
    net = load_network(str(shared_data / "models" / f"{stem}.npz"))
    data = load_dataset(str(shared_data / images), net.graph, limit=n)
    x = next(iter(data.iter_batches(n)))[0]
    cfg = FunctionalConfig(mode="exact", reorder=ReorderOptions(skip_zero_weights=skip_zero), calibration_images=n)
    prepared = prepare(net, cfg, x)
    eligible = [name for name, plan in prepared.convs.items() if plan.stream is not None]
    assert eligible, "no layer of a real network is eligible"
    keep = [l.output for l in net.graph.layers]
    cut = prepared.forward(x, policy=True, keep=keep)
    dense = prepared.forward(x, policy=False, keep=keep)
    for blob in keep:
        assert np.array_equal(cut[blob], dense[blob]), f"{stem}: blob {blob} differs"


@pytest.mark.parametrize("stem, images, limit", [
    ("lenet5_mnist", "mnist", 2000),
    ("resnet20_cifar10", "cifar10/cifar10_test_jpegq75.npz", 400),
    ("squeezenet_v1_1", "imagenet/imagenet_sample_crops227_every10th.npz", 100),
])
def test_fixed_point_accuracy_matches_float_within_half_a_point(shared_data, stem, images, limit):
    net = load_network(str(shared_data / "models" / f"{stem}.npz"))
    data = load_dataset(str(shared_data / images), net.graph, limit=limit)
    # Dense fixed point: exact mode gives the same outputs (checked above), so the MAC lanes are not needed here.
    res = run(net, data.iter_batches(50), FunctionalConfig(mode="dense", batch_size=50))
    acc = res.accuracy
    assert abs(acc["top1"] - acc["top1_float"]) <= 0.005 + 1e-9, acc
    if stem == "squeezenet_v1_1":  # MANIFEST: float top-1 68 % on these 100 crops
        assert abs(acc["top1_float"] - 0.68) <= 0.01
