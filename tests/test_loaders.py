"""Weight loaders: native npz + JSON, PyTorch state dicts, ONNX; every bad input gives an error naming what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from accelsim.errors import NetworkError, WeightError
from accelsim.nets.graph import FC, AvgPool, BatchNorm, Conv, Graph, MaxPool, ReLU, Softmax, graph_from_dict
from accelsim.nets.loaders import load_native, load_network, load_onnx, load_torch, map_tensors


@pytest.fixture
def shared_data() -> Path:
    root = Path(os.environ.get("ACCELSIM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} is absent")
    return root


# -- a NumPy forward of the IR, independent of the library's functional code ----------------------------------------
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, pad) -> np.ndarray:
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ho = (h + 2 * pad[0] - kh) // stride[0] + 1
    wo = (wd + 2 * pad[1] - kw) // stride[1] + 1
    cols = np.empty((n, ho, wo, c, kh, kw), dtype=np.float64)
    for i in range(ho):
        for j in range(wo):
            cols[:, i, j] = x[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
    y = cols.reshape(n, ho, wo, -1) @ w.reshape(f, -1).T.astype(np.float64)
    if b is not None:
        y = y + b
    return y.transpose(0, 3, 1, 2)


def _maxpool(x: np.ndarray, k, s) -> np.ndarray:
    n, c, h, w = x.shape
    ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    out = np.full((n, c, ho, wo), -np.inf)
    for dy in range(k[0]):
        for dx in range(k[1]):
            out = np.maximum(out, x[:, :, dy:dy + s[0] * ho:s[0], dx:dx + s[1] * wo:s[1]])
    return out


def forward(network, x: np.ndarray) -> np.ndarray:
    """Runs only the layer types the small test networks and LeNet use; anything else fails the test loudly."""
    blobs = {network.graph.input_blob: x.astype(np.float64)}
    for layer in network.graph.layers:
        a = blobs[layer.inputs[0]]
        if isinstance(layer, Conv):
            assert layer.groups == 1
            b = network.weights.get(f"{layer.name}.bias")
            y = _conv(a, network.weights[f"{layer.name}.weight"], b, layer.stride, layer.pad)
        elif isinstance(layer, FC):
            y = a.reshape(len(a), -1) @ network.weights[f"{layer.name}.weight"].T.astype(np.float64)
            if layer.bias:
                y = y + network.weights[f"{layer.name}.bias"]
        elif isinstance(layer, MaxPool):
            assert layer.pad == (0, 0) and not layer.ceil_mode
            y = _maxpool(a, layer.kernel, layer.stride)
        elif isinstance(layer, AvgPool):
            assert layer.pad == (0, 0) and not layer.ceil_mode and layer.kernel == layer.stride
            n, c, h, w = a.shape
            k = layer.kernel
            a = a[:, :, :h // k[0] * k[0], :w // k[1] * k[1]]
            y = a.reshape(n, c, h // k[0], k[0], w // k[1], k[1]).mean((3, 5))
        elif isinstance(layer, Softmax):
            e = np.exp(a - a.max(1, keepdims=True))
            y = e / e.sum(1, keepdims=True)
        elif isinstance(layer, ReLU):
            y = np.maximum(a, 0)
        elif layer.type_name == "flatten":
            y = a.reshape(len(a), -1)
        else:
            raise AssertionError(f"test forward does not run {layer.type_name}")
        if getattr(layer, "relu", False):
            y = np.maximum(y, 0)
        blobs[layer.output] = y
    return blobs[network.graph.output_blob]


# -- a small native model -------------------------------------------------------------------------------------------
def _tiny_graph_dict(name: str = "tiny", bn: bool = False) -> dict:
    layers = [
        {"name": "conv1", "type": "conv", "bottom": "data", "top": "conv1", "in_channels": 3, "out_channels": 4,
         "kernel": [3, 3], "stride": [1, 1], "pad": [1, 1], "bias": not bn},
    ]
    last = "conv1"
    if bn:
        layers.append({"name": "bn1", "type": "batchnorm", "bottom": "conv1", "top": "bn1", "channels": 4})
        last = "bn1"
    layers += [
        {"name": "relu1", "type": "relu", "bottom": last, "top": "relu1"},
        {"name": "pool1", "type": "maxpool", "bottom": "relu1", "top": "pool1", "kernel": 2, "stride": 2},
        {"name": "flat", "type": "flatten", "bottom": "pool1", "top": "flat"},
        {"name": "fc", "type": "fc", "bottom": "flat", "top": "fc", "in_features": 4 * 3 * 3, "out_features": 5},
    ]
    return {"name": name, "input": {"blob": "data", "shape": [3, 6, 6]}, "layers": layers, "output": "fc"}


def _tiny_weights(rng: np.random.Generator, bn: bool = False) -> dict[str, np.ndarray]:
    w = {"conv1.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32)}
    if bn:
        w.update({
            "bn1.weight": rng.uniform(0.5, 2, 4).astype(np.float32), "bn1.bias": rng.normal(size=4).astype(np.float32),
            "bn1.running_mean": rng.normal(size=4).astype(np.float32),
            "bn1.running_var": rng.uniform(0.2, 3, 4).astype(np.float32),
        })
    else:
        w["conv1.bias"] = rng.normal(size=4).astype(np.float32)
    w["fc.weight"] = rng.normal(size=(5, 36)).astype(np.float32)
    w["fc.bias"] = rng.normal(size=5).astype(np.float32)
    return w


def _write_native(folder: Path, stem: str = "tiny", weights: dict | None = None, graph: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = weights if weights is not None else _tiny_weights(np.random.default_rng(0))
    np.savez(folder / f"{stem}.npz", **weights)
    (folder / f"{stem}.json").write_text(json.dumps(graph or _tiny_graph_dict(stem)))
    return folder / f"{stem}.npz"


def test_native_round_trip_keeps_tensors_and_fuses_relu(tmp_path):
    weights = _tiny_weights(np.random.default_rng(1))
    path = _write_native(tmp_path, weights={**weights, "raw.conv1.weight": np.zeros(3, np.float32)})
    net = load_native(path)
    assert set(net.weights) == set(weights)  # raw.* ignored
    for k, v in weights.items():
        np.testing.assert_array_equal(net.weights[k], v)
        assert net.weights[k].dtype == np.float32
    assert net.source == str(path)
    assert not any(isinstance(l, ReLU) for l in net.graph.layers)
    assert net.graph.layer("conv1").relu  # the standalone ReLU became the conv's flag


def test_native_batchnorm_is_folded_and_output_unchanged(tmp_path):
    rng = np.random.default_rng(2)
    weights = _tiny_weights(rng, bn=True)
    path = _write_native(tmp_path, weights=weights, graph=_tiny_graph_dict("tiny", bn=True))
    net = load_native(path)
    assert not any(isinstance(l, BatchNorm) for l in net.graph.layers)
    x = rng.normal(size=(2, 3, 6, 6))
    # Reference: conv, then BN by its definition, then ReLU, pool, fc.
    y = _conv(x, weights["conv1.weight"], None, (1, 1), (1, 1))
    m, v, g, b = (weights[f"bn1.{t}"][None, :, None, None] for t in ("running_mean", "running_var", "weight", "bias"))
    y = np.maximum((y - m) / np.sqrt(v + 1e-5) * g + b, 0)
    y = _maxpool(y, (2, 2), (2, 2)).reshape(2, -1) @ weights["fc.weight"].T + weights["fc.bias"]
    np.testing.assert_allclose(forward(net, x), y, rtol=1e-5, atol=1e-5)


def test_truncated_npz_names_the_file(tmp_path):
    path = _write_native(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightError, match="tiny.npz"):
        load_native(path)


def test_corrupt_npz_member_names_the_tensor(tmp_path):
    path = _write_native(tmp_path)
    data = bytearray(path.read_bytes())
    start = data.index(b"fc.weight.npy")
    data[start + 400:start + 420] = bytes(20)  # inside the stored fc.weight array: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(WeightError, match=r"tiny\.npz.*fc\.weight"):
        load_native(path)


def test_invalid_json_is_a_weight_error_naming_it(tmp_path):
    path = _write_native(tmp_path)
    path.with_suffix(".json").write_text('{"name": "tiny", "layers": [')
    with pytest.raises(WeightError, match=r"tiny\.json.*not valid JSON"):
        load_native(path)


def test_missing_json_is_a_weight_error(tmp_path):
    path = _write_native(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(WeightError, match=r"tiny\.json"):
        load_native(path)


def test_wrong_shape_missing_and_extra_tensors_are_named(tmp_path):
    w = _tiny_weights(np.random.default_rng(3))
    bad = {**w, "fc.weight": np.zeros((5, 35), np.float32)}
    with pytest.raises(WeightError, match=r"'fc\.weight' has shape \[5, 35\]"):
        load_native(_write_native(tmp_path / "a", weights=bad))
    missing = {k: v for k, v in w.items() if k != "conv1.bias"}
    with pytest.raises(WeightError, match=r"missing tensor\(s\): conv1\.bias"):
        load_native(_write_native(tmp_path / "b", weights=missing))
    with pytest.raises(WeightError, match=r"unexpected.*conv9\.weight"):
        load_native(_write_native(tmp_path / "c", weights={**w, "conv9.weight": np.ones(2, np.float32)}))


def test_unknown_layer_type_names_layer_and_file(tmp_path):
    g = _tiny_graph_dict()
    g["layers"][1]["type"] = "swish"
    with pytest.raises(NetworkError, match=r"tiny\.json.*relu1.*'swish'"):
        load_native(_write_native(tmp_path, graph=g))


# -- load_network ---------------------------------------------------------------------------------------------------
def test_load_network_weights_for_another_network_is_an_error_naming_both(tmp_path):
    """A built-in name with weights whose own graph is another network: an error, not a silent switch (issue 11)."""
    path = _write_native(tmp_path / "own", stem="mine")
    with pytest.raises(WeightError, match=r"--net lenet and --weights .*mine\.npz disagree: 'lenet' is network "
                                          r"'lenet' \(2 conv \+ 3 fc layers, input 1x28x28\), the file holds "
                                          r"network 'mine' from mine\.json \(1 conv \+ 1 fc layers, input 3x6x6\)"
                                          r"\. Give --net .*mine\.npz to run the graph"):
        load_network("lenet", weights=path)
    # A file given as --net is the network: the same tensors without a JSON beside them are mapped onto it.
    net = load_network(str(path))
    lone = tmp_path / "lone" / "w.npz"
    lone.parent.mkdir()
    shutil.copy(path, lone)
    net2 = load_network(str(path.with_suffix(".json")), weights=lone)
    np.testing.assert_array_equal(net2.weights["fc.weight"], net.weights["fc.weight"])
    assert net2.source == str(lone)


def test_load_network_without_weights(tmp_path):
    graph_file = tmp_path / "g.json"
    graph_file.write_text(json.dumps(_tiny_graph_dict("g")))
    with pytest.raises(WeightError, match="--shape-only"):
        load_network(str(graph_file))
    net = load_network(str(graph_file), shape_only=True)
    assert net.shape_only and net.graph.layer("conv1").relu
    with pytest.raises(WeightError, match="unknown format '.h5'"):
        load_network(str(graph_file), weights=tmp_path / "w.h5")
    # A model npz as the net brings its own graph and weights.
    model = _write_native(tmp_path / "m", stem="model")
    assert load_network(str(model)).graph.name == "model"


def test_embedded_lenet_loads_with_default_weights():
    net = load_network("lenet")
    assert not net.shape_only and net.graph.name == "lenet"


# -- PyTorch --------------------------------------------------------------------------------------------------------
def _torch_model(torch, named: bool):
    nn = torch.nn
    torch.manual_seed(0)
    if named:
        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(4)
                self.fc = nn.Linear(36, 5)

            def forward(self, x):
                x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
                return self.fc(torch.flatten(x, 1))
        model = Tiny()
    else:
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 5))
    with torch.no_grad():  # non-trivial running statistics, so folding matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.3, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("named", [False, True], ids=["by-order", "by-name-checkpoint"])
def test_torch_state_dict_folds_and_matches_torch(tmp_path, named):
    torch = pytest.importorskip("torch")
    model = _torch_model(torch, named)
    path = tmp_path / "tiny.pth"
    state = model.state_dict()
    if named:  # a training checkpoint, saved from DataParallel
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    graph = graph_from_dict(_tiny_graph_dict("tiny", bn=True))
    net = load_torch(path, graph)
    assert not any(isinstance(l, BatchNorm) for l in net.graph.layers)
    assert net.graph.layer("conv1").bias and net.graph.layer("conv1").relu
    x = np.random.default_rng(4).normal(size=(3, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(forward(net, x), expected, rtol=1e-4, atol=1e-4)
    assert load_network(str(_write_graph(tmp_path, graph)), weights=path).weights.keys() == net.weights.keys()


def _write_graph(folder: Path, graph: Graph) -> Path:
    d = graph.to_dict()
    d.pop("dataset"), d.pop("num_classes")
    path = folder / f"{graph.name}_graph.json"
    path.write_text(json.dumps(d))
    return path


def test_torch_mismatch_names_the_layer(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "tiny.pth"
    torch.save(_torch_model(torch, named=False).state_dict(), path)
    g = _tiny_graph_dict("tiny", bn=True)
    g["layers"][-1]["out_features"] = 7  # the graph wants 7 classes, the file has 5
    with pytest.raises(WeightError, match=r"layer #2 'fc' \(fc\) could not be matched.*'5'.*\[5, 36\]"):
        load_torch(path, graph_from_dict(g))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightError, match="junk.pth"):
        load_torch(tmp_path / "junk.pth", graph_from_dict(g))


def test_map_tensors_reports_extra_modules():
    graph = graph_from_dict(_tiny_graph_dict())
    w = _tiny_weights(np.random.default_rng(5))
    renamed = {k.replace("conv1", "features.0").replace("fc", "classifier.1"): v for k, v in w.items()}
    mapped = map_tensors(graph, renamed, "test")
    assert set(mapped) == set(w)
    with pytest.raises(WeightError, match="modules the graph lacks.*extra"):
        map_tensors(graph, {**renamed, "extra.weight": np.ones(3, np.float32)}, "test")


# -- ONNX -----------------------------------------------------------------------------------------------------------
def _onnx_model(onnx, weights: dict[str, np.ndarray], matmul: bool, extra_op: str | None = None):
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items() if not k.startswith("fc.")]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight"], ["c1"], name="/conv1/Conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"],
                         ["b1"], name="/bn1/BatchNormalization", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="/relu/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Dropout", ["p1"], ["d1"], name="/drop/Dropout"),
        helper.make_node("Flatten", ["d1"], ["f1"], name="/Flatten", axis=1),
    ]
    if matmul:
        inits.append(numpy_helper.from_array(weights["fc.weight"].T.copy(), "onnx::MatMul_7"))
        inits.append(numpy_helper.from_array(weights["fc.bias"], "fc.bias"))
        nodes += [helper.make_node("MatMul", ["f1", "onnx::MatMul_7"], ["mm"], name="/fc/MatMul"),
                  helper.make_node("Add", ["fc.bias", "mm"], ["out"], name="/fc/Add")]
    else:
        inits.append(numpy_helper.from_array(weights["fc.weight"], "fc.weight"))
        inits.append(numpy_helper.from_array(weights["fc.bias"], "fc.bias"))
        nodes.append(helper.make_node("Gemm", ["f1", "fc.weight", "fc.bias"], ["out"], name="/fc/Gemm", transB=1))
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["out"], ["out2"], name="/head/" + extra_op))
    graph = helper.make_graph(
        nodes, "tiny_onnx",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("out2" if extra_op else "out", TensorProto.FLOAT, ["N", 5])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("matmul", [False, True], ids=["gemm", "matmul-add"])
def test_onnx_model_loads_and_matches_torch(tmp_path, matmul):
    onnx = pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    model = _torch_model(torch, named=True)
    weights = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "tiny.onnx"
    onnx.save(_onnx_model(onnx, weights, matmul), str(path))
    net = load_onnx(path)
    assert net.graph.input_shape == (3, 6, 6)
    assert [l.type_name for l in net.graph.layers] == ["conv", "maxpool", "flatten", "fc"]
    assert net.graph.layers[0].relu and net.graph.layers[0].bias
    x = np.random.default_rng(6).normal(size=(2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(forward(net, x), expected, rtol=1e-4, atol=1e-4)
    # The same file as weights for a graph of the model's own layer names.
    graph_file = _write_graph(tmp_path, graph_from_dict(_tiny_graph_dict("tiny", bn=True)))
    on_graph = load_network(str(graph_file), weights=path)
    np.testing.assert_allclose(forward(on_graph, x), expected, rtol=1e-4, atol=1e-4)


def test_torch_onnx_export_loads_and_matches_torch(tmp_path):
    """What PyTorch's own (TorchScript) exporter writes: BN already fused, Reshape for view(), Softmax."""
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 1), nn.ReLU(), nn.AvgPool2d(2))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(8 * 4 * 4, 10))

        def forward(self, x):
            return torch.softmax(self.classifier(self.features(x).view(x.size(0), -1)), 1)

    torch.manual_seed(1)
    model = Net().eval()
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-1, 1)
        model.features[1].running_var.uniform_(0.3, 2)
    path = tmp_path / "exported.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, 3, 16, 16), str(path), dynamo=False)
    except Exception as exc:  # the exporter may need packages this machine lacks
        pytest.skip(f"torch.onnx.export is unavailable here: {exc}")
    net = load_onnx(path)
    assert [l.name for l in net.graph.conv_layers()] == ["features.0", "features.4"]
    assert all(c.relu for c in net.graph.conv_layers())
    x = np.random.default_rng(8).normal(size=(2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(forward(net, x), expected, rtol=1e-4, atol=1e-5)


def test_onnx_unsupported_op_names_op_and_node(tmp_path):
    onnx = pytest.importorskip("onnx")
    weights = _tiny_weights(np.random.default_rng(7), bn=True)
    path = tmp_path / "tiny.onnx"
    onnx.save(_onnx_model(onnx, weights, matmul=False, extra_op="Sigmoid"), str(path))
    with pytest.raises(NetworkError, match=r"'/head/Sigmoid'.*unsupported op type 'Sigmoid'"):
        load_onnx(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightError, match="tiny.onnx"):
        load_onnx(path)


# -- real models ----------------------------------------------------------------------------------------------------
MODELS = ["lenet5_mnist", "resnet20_cifar10", "resnet32_cifar10", "resnet44_cifar10", "resnet56_cifar10",
          "squeezenet_v1_1", "squeezenet_v1_0_deepcompression"]


@pytest.mark.parametrize("stem", MODELS)
def test_shared_models_load_natively(shared_data, stem):
    path = shared_data / "models" / f"{stem}.npz"
    net = load_native(path)
    with np.load(path) as z:
        kept = [k for k in z.files if not k.startswith("raw.")]
        assert list(net.weights) == kept
        np.testing.assert_array_equal(net.weights[kept[0]], z[kept[0]])
    assert net.graph.conv_layers()


def test_shared_lenet_classifies_mnist(shared_data):
    from accelsim.nets.datasets import load_dataset

    net = load_network(str(shared_data / "models" / "lenet5_mnist.npz"))
    x, y = next(load_dataset(shared_data / "mnist", net.graph, limit=200).iter_batches(200))
    accuracy = float(np.mean(forward(net, x).argmax(1) == y))
    assert accuracy >= 0.97  # MANIFEST: 99.28 % on all 10,000


def test_akamaster_checkpoint_onto_resnet20_workload(shared_data, tmp_path):
    """The ResNet npz keeps the original PyTorch tensors as raw.*: saved as the original checkpoint layout
    ('state_dict', 'module.' prefix, num_batches_tracked), they fold to the npz's own folded tensors."""
    torch = pytest.importorskip("torch")
    npz_path = shared_data / "models" / "resnet20_cifar10.npz"
    with np.load(npz_path) as z:
        raw = {k[4:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("raw.")}
        folded = {k: z[k] for k in z.files if not k.startswith("raw.")}
    state = {}
    for k, v in raw.items():
        state[f"module.{k}"] = v
        if k.endswith("running_var"):
            state[f"module.{k[:-len('running_var')]}num_batches_tracked"] = torch.tensor(100)
    path = tmp_path / "resnet20-12fca82f.th"
    torch.save({"state_dict": state, "best_prec1": 91.78}, path)
    net = load_network("resnet20", weights=path)
    assert net.graph.name == "resnet20" and net.source == str(path)
    assert set(net.weights) == set(folded)
    for k, v in folded.items():
        np.testing.assert_allclose(net.weights[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
