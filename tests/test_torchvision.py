"""torchvision's AlexNet, VGG-16 and GoogLeNet state dicts: exact keys and shapes, seeded random values.

torchvision itself is not installed beside torch here, so each model is rebuilt below module for module as in
pytorch/vision torchvision/models/{alexnet,vgg,googlenet}.py (the module paths are the state-dict keys); the
parameter counts torchvision publishes for its weights (`num_params` of AlexNet_Weights, VGG16_Weights,
GoogLeNet_Weights) check that the rebuild is theirs. Each file is loaded as the user types it (`--net alexnet --weights
alexnet.pth`), and the loaded network's shapes, MAC counts and one forward pass are compared with the torch model.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from accelsim.errors import WeightError
from accelsim.functional.fixedpoint import NumberFormat
from accelsim.functional.forward import FunctionalConfig, prepare
from accelsim.nets.checks import check_network
from accelsim.nets.datasets import Pipeline
from accelsim.nets.loaders import load_network, plan_network
from accelsim.nets.workload import load_workload

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


# -- the three models, as torchvision builds them ----------------------------------------------------------------------
class AlexNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 1000),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG16(nn.Module):
    CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self) -> None:
        super().__init__()
        layers: list = []
        c = 3
        for v in self.CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 1000),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                     BasicConv2d(c3r, c3, kernel_size=3, padding=1))
        # kernel_size=3 instead of 5: torchvision's known bug (pytorch/vision#906), part of its pretrained weights
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                     BasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(cin, cp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = BasicConv2d(cin, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, 1000)


class GoogLeNet(nn.Module):
    def __init__(self, aux_logits: bool) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:  # present in torchvision's downloaded file; googlenet(weights=...) drops them after loading
            self.aux1 = InceptionAux(512)
            self.aux2 = InceptionAux(528)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x):  # transform_input is the workload's preprocessing (tested below), not part of the graph
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for m in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = m(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def _seeded(build, seed: int) -> nn.Module:
    """The model with seeded random values: He-uniform weights (activations neither vanish nor explode through 16
    layers), small biases, non-trivial batch-norm statistics. Built on the meta device: torch's own init is skipped."""
    with torch.device("meta"):
        model = build()
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = math.sqrt(6.0 / m.weight[0].numel())
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.num_batches_tracked.zero_()
    return model.eval()


# builder, Caffe workload the user names, torchvision workload, published num_params, MACs per image (conv + fc)
MODELS = {
    "alexnet": (AlexNet, "alexnet", "alexnet_torchvision", 61_100_840, 714_188_480),  # AlexNet_Weights: 0.714 GFLOPS
    "vgg16": (VGG16, "vgg16", "vgg16_torchvision", 138_357_544, 15_470_264_320),  # VGG16_Weights: 15.47 GFLOPS
    "googlenet": (lambda: GoogLeNet(aux_logits=False), "googlenet", "googlenet_torchvision", 6_624_904,
                  1_498_376_192),  # GoogLeNet_Weights: 1.498 GFLOPS
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """name -> (model, state-dict file); built once per module (VGG-16's file is 553 MB)."""
    folder = tmp_path_factory.mktemp("torchvision")
    out = {}
    for i, (name, (build, *_)) in enumerate(MODELS.items()):
        model = _seeded(build, seed=i)
        path = folder / f"{name}.pth"
        torch.save(model.state_dict(), path)
        out[name] = (model, path)
    return out


def test_rebuilds_have_torchvisions_keys_shapes_and_parameter_counts(saved) -> None:
    for name, (_, _, _, params, _) in MODELS.items():
        state = saved[name][0].state_dict()
        counted = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                                "num_batches_tracked")))
        assert counted == params, name
    alex = saved["alexnet"][0].state_dict()
    assert [(k, tuple(v.shape)) for k, v in alex.items() if k.endswith("weight")] == [
        ("features.0.weight", (64, 3, 11, 11)), ("features.3.weight", (192, 64, 5, 5)),
        ("features.6.weight", (384, 192, 3, 3)), ("features.8.weight", (256, 384, 3, 3)),
        ("features.10.weight", (256, 256, 3, 3)), ("classifier.1.weight", (4096, 9216)),
        ("classifier.4.weight", (4096, 4096)), ("classifier.6.weight", (1000, 4096))]
    vgg = saved["vgg16"][0].state_dict()
    assert [k for k in vgg if k.endswith("weight")][-3:] == ["classifier.0.weight", "classifier.3.weight",
                                                              "classifier.6.weight"]
    assert tuple(vgg["features.28.weight"].shape) == (512, 512, 3, 3)
    goog = saved["googlenet"][0].state_dict()
    assert tuple(goog["inception3a.branch3.1.conv.weight"].shape) == (32, 16, 3, 3)  # the "5x5" branch is 3x3
    assert "conv1.conv.bias" not in goog and "conv1.bn.num_batches_tracked" in goog


@pytest.mark.parametrize("name", list(MODELS))
def test_state_dict_loads_as_the_torchvision_workload(saved, name, caplog) -> None:
    model, path = saved[name]
    _, caffe, tv, params, macs = MODELS[name]
    with caplog.at_level(logging.WARNING, logger="accelsim.nets.loaders"):
        net = load_network(caffe, weights=path)
    # The user named the Caffe workload: the torchvision graph runs, and a warning says so and how to silence it.
    assert net.graph.name == tv
    assert f"simulating workload '{tv}'" in caplog.text and f"Give --net {tv}" in caplog.text
    assert net.source == str(path)
    g = net.graph
    assert g.input_shape == (3, 224, 224) and g.shapes[g.output_blob] == (1000,)
    assert g.total_macs() == macs
    assert abs(macs / 1e9 - {"alexnet": 0.714, "vgg16": 15.47, "googlenet": 1.498}[name]) < 0.0005 * max(1, macs / 1e9)
    unfolded = load_workload(tv)
    assert sum(math.prod(s) for k, s in unfolded.weight_shapes().items()
               if not k.endswith(("running_mean", "running_var"))) == params
    assert all(c.relu for c in g.conv_layers()) and not any(l.type_name == "batchnorm" for l in g.layers)
    if name == "alexnet":
        assert [c.out_channels for c in g.conv_layers()] == [64, 192, 384, 256, 256]
        assert all(c.groups == 1 for c in g.conv_layers())
        assert [g.shapes[p] for p in ("features.2", "features.5", "features.12")] == [(64, 27, 27), (192, 13, 13),
                                                                                    (256, 6, 6)]
    if name == "googlenet":
        assert len(g.conv_layers()) == 57 and all(c.bias for c in g.conv_layers())  # BN folded into a bias
        assert g.layer("inception3a.branch3.1.conv").kernel == (3, 3)
        assert g.shapes["maxpool4"] == (832, 7, 7) and g.shapes["inception5b.output"] == (1024, 7, 7)
    # No warning when the torchvision workload is named.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="accelsim.nets.loaders"):
        assert plan_network(tv, path).graph.name == tv
    assert not caplog.text


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_pass_matches_torch(saved, name) -> None:
    model, path = saved[name]
    net = load_network(MODELS[name][2], weights=path)
    x = np.random.default_rng(7).normal(size=(1, 3, 224, 224)).astype(np.float32)
    cfg = FunctionalConfig(mode="dense", number_format=NumberFormat(kind="float32"), float_reference=False)
    ours = prepare(net, cfg, np.zeros((0,))).forward(x, policy=False)[net.graph.output_blob].reshape(1, -1)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-3 * scale)
    assert int(ours.argmax()) == int(theirs.argmax())


def test_googlenet_download_layout_with_aux_classifiers(tmp_path, caplog) -> None:
    """torchvision's downloaded googlenet file keeps aux1/aux2 (training-only): they are ignored, with a note."""
    model = _seeded(lambda: GoogLeNet(aux_logits=True), seed=3)
    path = tmp_path / "googlenet-1378be20.pth"
    torch.save(model.state_dict(), path)
    assert any(k.startswith("aux1.") for k in model.state_dict())
    with caplog.at_level(logging.INFO, logger="accelsim.nets.loaders"):
        net = load_network("googlenet", weights=path)
    assert net.graph.name == "googlenet_torchvision" and not any(k.startswith("aux") for k in net.weights)
    # per classifier: conv weight, 4 batch-norm tensors, fc1 and fc2 weight and bias
    assert "ignoring 18 tensor(s) the network does not use (aux1.conv.conv.weight ... aux2.fc2.bias)" in caplog.text


def test_torchvision_file_for_another_network_names_both(saved) -> None:
    _, path = saved["alexnet"]
    for net in ("vgg16", "lenet", "googlenet_torchvision"):
        with pytest.raises(WeightError, match=rf"--net {net} and --weights .*alexnet\.pth disagree: .*the file holds "
                                              r"16 tensors, from 'features\.0\.weight' \[64, 3, 11, 11\] .*built-in "
                                              r"workload 'alexnet_torchvision': give --net alexnet_torchvision"):
            plan_network(net, path)
    assert check_network("alexnet", path) == []
    assert len(check_network("lenet", path)) == 1


def test_torchvision_preprocessing() -> None:
    """RGB, short side 256, center crop 224, ImageNet mean/std; GoogLeNet's transform_input folded into its mean/std."""
    for tv in ("alexnet_torchvision", "vgg16_torchvision", "googlenet_torchvision"):
        p = load_workload(tv).preprocess
        assert (p.color_order, p.pixel_range, p.resize, p.crop) == ("RGB", (0.0, 1.0), 256, (224, 224))
    assert load_workload("alexnet_torchvision").preprocess.mean == (0.485, 0.456, 0.406)
    assert load_workload("vgg16_torchvision").preprocess.std == (0.229, 0.224, 0.225)
    # googlenet(weights=...) sets transform_input: x' = x * std/0.5 + (mean - 0.5)/0.5 on the normalised input.
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    ours = Pipeline.for_graph(load_workload("googlenet_torchvision")).normalize(pixels)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    normalised = (pixels / 255.0 - mean) / std
    transformed = normalised * (std / 0.5) + (mean - 0.5) / 0.5
    np.testing.assert_allclose(ours, transformed.transpose(0, 3, 1, 2), atol=1e-6)


def test_missing_weights_message_gives_both_ways_forward() -> None:
    for net, builder in (("alexnet", "alexnet"), ("vgg16", "vgg16"), ("googlenet", "googlenet"),
                         ("googlenet_torchvision", "googlenet")):
        problems = check_network(net)
        assert len(problems) == 1
        msg = problems[0]
        assert "--weights FILE" in msg and "--shape-only" in msg
        assert (f"python -c \"import torch, torchvision; torch.save(torchvision.models.{builder}(weights='DEFAULT')"
                f".state_dict(), '{builder}.pth')\"") in msg
        with pytest.raises(WeightError) as info:
            load_network(net)
        assert str(info.value) == msg
        assert check_network(net, shape_only=True) == []
    # A network without a torchvision counterpart gets both ways, without the command.
    msg = check_network("squeezenet")[0]
    assert "--weights FILE" in msg and "--shape-only" in msg and "torchvision" not in msg


def test_shape_only_caffe_and_torchvision_graphs_differ() -> None:
    caffe = load_network("alexnet", shape_only=True).graph
    tv = load_network("alexnet_torchvision", shape_only=True).graph
    assert [c.groups for c in caffe.conv_layers()] == [1, 2, 1, 2, 2]
    assert caffe.conv_macs() == 665_784_864 and tv.conv_macs() == 655_566_528
    assert Path(load_workload("alexnet_torchvision").name).name == "alexnet_torchvision"
