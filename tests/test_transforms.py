"""Graph rewrites: folding batch-norm keeps the forward result; fusing ReLU keeps the graph and its weights valid."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.errors import NetworkError, WeightError
from accelsim.nets.graph import Graph, graph_from_dict
from accelsim.nets.network import Network, check_weights
from accelsim.nets.transforms import fold_and_fuse, fold_batchnorm, fuse_relu
from accelsim.nets.workload import load_workload


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad: int, groups: int) -> np.ndarray:
    """Reference convolution of one image (C, H, W) with weights (F, C/groups, kh, kw)."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]  # C, Ho, Wo, kh, kw
    f, cg = w.shape[0], w.shape[1]
    fg = f // groups
    out = np.stack([np.einsum("chwij,cij->hw", win[(k // fg) * cg:(k // fg + 1) * cg], w[k]) for k in range(f)])
    return out + (b[:, None, None] if b is not None else 0)


def batchnorm(x: np.ndarray, gamma, beta, mean, var, eps: float) -> np.ndarray:
    return (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps) * gamma[:, None, None] + beta[:, None, None]


def _graph(layers: list[dict], shape=(4, 9, 9), output: str | None = None) -> Graph:
    return graph_from_dict({"name": "t", "input": {"blob": "data", "shape": list(shape)}, "layers": layers,
                            "output": output or layers[-1]["top"]})


def _conv(name, bottom, cin, cout, k=3, s=1, p=1, g=1, bias=False, relu=False) -> dict:
    return {"name": name, "type": "conv", "bottom": bottom, "top": name, "in_channels": cin, "out_channels": cout,
            "kernel": k, "stride": s, "pad": p, "groups": g, "bias": bias, "relu": relu}


def _bn(name, bottom, c, eps=1e-5) -> dict:
    return {"name": name, "type": "batchnorm", "bottom": bottom, "top": name, "channels": c, "eps": eps}


def _simple(name, kind, bottom, **kw) -> dict:
    return {"name": name, "type": kind, "bottom": bottom, "top": name, **kw}


def _bn_weights(rng: np.random.Generator, name: str, c: int) -> dict[str, np.ndarray]:
    return {f"{name}.weight": rng.normal(1, 0.5, c).astype(np.float32),
            f"{name}.bias": rng.normal(0, 0.5, c).astype(np.float32),
            f"{name}.running_mean": rng.normal(0, 0.5, c).astype(np.float32),
            f"{name}.running_var": rng.uniform(0.1, 2.0, c).astype(np.float32)}


# -- fold_batchnorm ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias,stride,groups,eps", [(False, 1, 1, 1e-5), (True, 2, 2, 1e-3)])
def test_folded_conv_equals_conv_then_batchnorm(bias: bool, stride: int, groups: int, eps: float) -> None:
    rng = np.random.default_rng(7)
    g = _graph([_conv("c", "data", 4, 6, s=stride, g=groups, bias=bias), _bn("bn", "c", 6, eps),
                _simple("r", "relu", "bn")])
    w = {"c.weight": rng.normal(size=(6, 4 // groups, 3, 3)).astype(np.float32), **_bn_weights(rng, "bn", 6)}
    if bias:
        w["c.bias"] = rng.normal(size=6).astype(np.float32)
    check_weights(g, w, "test")
    before = copy.deepcopy(w)

    fg, fw = fold_batchnorm(g, w)

    x = rng.normal(size=(4, 9, 9))
    expected = batchnorm(conv2d(x, w["c.weight"], w.get("c.bias"), stride, 1, groups),
                         *(w[f"bn.{t}"] for t in ("weight", "bias", "running_mean", "running_var")), eps)
    got = conv2d(x, fw["c.weight"], fw["c.bias"], stride, 1, groups)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # the graph: BN gone, conv biased and still named 'c', the ReLU now reads the conv; weights match it exactly
    assert [l.name for l in fg.layers] == ["c", "r"] and fg.layer("c").bias and fg.layer("r").inputs == ("c",)
    assert fg.shapes["r"] == g.shapes["r"]
    Network(fg, fw, "folded")
    assert fw["c.weight"].dtype == np.float32
    # pure: the arguments are untouched
    assert set(w) == set(before) and all(np.array_equal(w[k], before[k]) for k in w)
    assert g.layer("c").bias == bias and len(g.layers) == 3


def test_fold_shape_only_and_output_rewiring() -> None:
    g = _graph([_conv("c", "data", 4, 6), _bn("bn", "c", 6)])  # the BN's blob is the network output
    fg, fw = fold_batchnorm(g, {})
    assert fw == {} and fg.output_blob == "c" and [l.name for l in fg.layers] == ["c"]
    assert set(fg.weight_shapes()) == {"c.weight", "c.bias"}


def test_fold_keeps_unrelated_tensors_and_drops_pytorch_bookkeeping() -> None:
    rng = np.random.default_rng(1)
    g = _graph([_conv("c", "data", 4, 6), _bn("bn", "c", 6)])
    w = {"c.weight": rng.normal(size=(6, 4, 3, 3)).astype(np.float32), **_bn_weights(rng, "bn", 6),
         "bn.num_batches_tracked": np.array(10), "other": np.ones(2)}
    _, fw = fold_batchnorm(g, w)
    assert set(fw) == {"c.weight", "c.bias", "other"}


@pytest.mark.parametrize("layers,why", [
    ([_simple("p", "maxpool", "data", kernel=1, stride=1), _bn("bn", "p", 4)], "maxpool 'p', not a conv"),
    ([_bn("bn", "data", 4)], "the network input"),
    ([_conv("c", "data", 4, 6, relu=True), _bn("bn", "c", 6)], "applies a ReLU"),
    ([_conv("c", "data", 4, 6), _bn("bn", "c", 6), _simple("r", "relu", "c"),
      {"name": "a", "type": "add", "bottoms": ["bn", "r"], "top": "a"}], r"also used by \['r'\]"),
])
def test_unfoldable_batchnorm_is_named(layers: list[dict], why: str) -> None:
    g = _graph(layers)
    with pytest.raises(NetworkError, match=f"cannot fold batchnorm 'bn': .*{why}"):
        fold_batchnorm(g, {})


def test_fold_missing_tensor_is_a_weight_error() -> None:
    g = _graph([_conv("c", "data", 4, 6), _bn("bn", "c", 6)])
    w = {"c.weight": np.zeros((6, 4, 3, 3), np.float32), **_bn_weights(np.random.default_rng(0), "bn", 6)}
    del w["bn.running_var"]
    with pytest.raises(WeightError, match="bn.running_var"):
        fold_batchnorm(g, w)


def test_fold_real_resnet20_tensors_reproduce_the_shared_folded_weights(shared_data: Path) -> None:
    path = shared_data / "models" / "resnet20_cifar10.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    z = np.load(path)
    raw = {k[len("raw."):]: z[k] for k in z.files if k.startswith("raw.")}  # PyTorch state_dict names
    g = load_workload("resnet20")
    fg, fw = fold_and_fuse(g, raw)
    folded_ref = {k: z[k] for k in z.files if not k.startswith("raw.")}
    assert set(fw) == set(folded_ref)
    for k in fw:
        np.testing.assert_allclose(fw[k], folded_ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    Network(fg, fw, str(path))


def test_resnet20_folded_has_the_shared_json_tensors(shared_data: Path) -> None:
    path = shared_data / "models" / "resnet20_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    ref = graph_from_dict(json.loads(path.read_text()))
    fg, _ = fold_and_fuse(load_workload("resnet20"), {})
    assert fg.weight_shapes() == ref.weight_shapes()
    assert [l.to_dict() for l in fg.layers] == [l.to_dict() for l in ref.layers]
    assert dict(fg.shapes) == dict(ref.shapes)


# -- fuse_relu ---------------------------------------------------------------------------------------------------------
def test_fuse_relu_into_conv_fc_and_add_and_drop_dropout() -> None:
    g = _graph([
        _conv("c1", "data", 4, 4, bias=True), _simple("r1", "relu", "c1"),
        _conv("c2", "r1", 4, 4, bias=True),
        {"name": "a", "type": "add", "bottoms": ["c2", "r1"], "top": "a"}, _simple("r2", "relu", "a"),
        _simple("d", "dropout", "r2"),
        _simple("f", "flatten", "d"),
        {"name": "fc", "type": "fc", "bottom": "f", "top": "fc", "in_features": 324, "out_features": 5},
        _simple("r3", "relu", "fc"), _simple("d2", "dropout", "r3"),
    ])
    fg = fuse_relu(g)
    assert [l.name for l in fg.layers] == ["c1", "c2", "a", "f", "fc"]
    assert fg.layer("c1").relu and not fg.layer("c2").relu and fg.layer("a").relu and fg.layer("fc").relu
    assert fg.layer("c2").inputs == ("c1",) and fg.layer("a").inputs == ("c2", "c1") and fg.layer("f").inputs == ("a",)
    assert fg.output_blob == "fc" and fg.shapes["fc"] == g.shapes["d2"]
    assert fg.weight_shapes() == g.weight_shapes()  # weights stay keyed by the same layers
    assert fuse_relu(fg) is fg  # nothing left to do


def test_relus_that_must_stay() -> None:
    g = _graph([
        _conv("c1", "data", 4, 4), _simple("r1", "relu", "c1"), _simple("p", "maxpool", "c1", kernel=1, stride=1),
        _simple("r2", "relu", "p"),  # after a pool: not fusable
        _conv("c2", "r2", 4, 4, relu=True), _simple("r3", "relu", "c2"),  # producer already has its ReLU
        {"name": "a", "type": "add", "bottoms": ["r1", "r3"], "top": "a"},
    ])
    fg = fuse_relu(g)
    assert fg is g  # c1's output also feeds the pool, so r1 stays too
    assert not fg.layer("c1").relu


def test_workloads_are_held_fused() -> None:
    fg, _ = fold_and_fuse(load_workload("alexnet"), {})
    assert [l.name for l in fg.layers if l.type_name == "dropout"] == []
    assert fg.layer("fc7").inputs == ("fc6",) and fg.layer("fc8").inputs == ("fc7",)
    r, _ = fold_and_fuse(load_workload("resnet20"), {})
    assert not any(l.type_name in ("relu", "batchnorm") for l in r.layers)
    assert all(c.bias for c in r.conv_layers())
    assert [c.relu for c in r.conv_layers()][:3] == [True, True, False]  # stem, block conv1, block conv2


def test_inplace_blobs_are_rejected() -> None:
    g = _graph([_conv("c", "data", 4, 4), _bn("bn", "c", 4), _simple("r", "relu", "bn")])
    inplace = Graph("t", "data", (4, 9, 9), tuple(g.layers[:1]) + (g.layers[1].__class__(
        name="bn", inputs=("c",), output="c", channels=4),), "c")
    with pytest.raises(NetworkError, match="written by more than one layer"):
        fold_batchnorm(inplace, {})
