from accelsim.functional.eligibility import early_termination_eligibility, nonnegative_blobs
from accelsim.nets.graph import graph_from_dict


def _graph(preprocess, layers):
    return graph_from_dict({"name": "t", "input": {"blob": "data", "shape": [3, 8, 8], "preprocess": preprocess},
                            "layers": layers, "output": layers[-1]["top"]})


def conv(name, bottom, relu=True, cin=3, cout=4):
    return {"name": name, "type": "conv", "bottom": bottom, "top": name, "in_channels": cin, "out_channels": cout,
            "kernel": 3, "pad": 1, "relu": relu}


def test_first_conv_of_a_mean_subtracted_image_runs_dense():
    g = _graph({"mean": [104, 117, 123], "color_order": "BGR"}, [conv("c1", "data"), conv("c2", "c1", cin=4)])
    e = early_termination_eligibility(g)
    assert not e["c1"].eligible and "mean subtraction" in e["c1"].reason
    assert e["c2"].eligible


def test_unit_range_input_makes_first_conv_eligible():
    g = _graph({"pixel_range": [0, 1]}, [conv("c1", "data")])
    assert early_termination_eligibility(g)["c1"].eligible


def test_conv_without_relu_and_conv_after_it():
    layers = [conv("c1", "data"), conv("c2", "c1", relu=False, cin=4),
              {"name": "p", "type": "maxpool", "bottom": "c2", "top": "p", "kernel": 3, "stride": 1, "pad": 1},
              conv("c3", "p", cin=4),
              {"name": "a", "type": "add", "bottoms": ["c3", "c1"], "top": "a", "relu": True},
              conv("c4", "a", cin=4),
              {"name": "cat", "type": "concat", "bottoms": ["c4", "c1"], "top": "cat"},
              conv("c5", "cat", cin=8)]
    g = _graph({"pixel_range": [0, 1]}, layers)
    e = early_termination_eligibility(g)
    assert not e["c2"].eligible and "no ReLU" in e["c2"].reason
    assert not e["c3"].eligible and "'p'" in e["c3"].reason  # max-pool of a signed blob stays signed
    assert e["c4"].eligible and e["c5"].eligible
    nn = nonnegative_blobs(g)
    assert nn["a"] and nn["cat"] and not nn["p"]
