"""Sign-based weight reordering: the speculation set (A.2.1) and the buffer contents of a kernel."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.errors import ConfigError
from accelsim.functional.reorder import NEGATIVE_ORDERS, ReorderOptions, reorder_kernel, reorder_layer, speculation_set


def test_speculation_set_hand_checked():
    # ascending: -4(3) -2(7) -1(1) | -0.5(5) 0.5(2) 1(6) | 2(4) 3(0): array_split sizes 3, 3, 2
    w = np.array([3, -1, 0.5, -4, 2, -0.5, 1, -2])
    assert speculation_set(w, 3).tolist() == [3, 6, 0]
    assert speculation_set(w, 1).tolist() == [3]  # -4 has the largest magnitude
    assert speculation_set(w, 8).tolist() == [3, 7, 1, 5, 2, 6, 4, 0]  # every weight, in ascending order
    assert speculation_set(w, 0).size == 0


def test_speculation_set_ties_take_the_first_in_sorted_order():
    assert speculation_set(np.array([1.0, -1.0]), 1).tolist() == [1]  # -1 sorts first
    assert speculation_set(np.array([2.0, 2.0, 2.0]), 1).tolist() == [0]  # stable sort keeps original order


def test_speculation_set_rejects_bad_n():
    with pytest.raises(ConfigError, match="N must lie in"):
        speculation_set(np.ones(4), 5)
    with pytest.raises(ConfigError):
        speculation_set(np.ones(4), -1)


@pytest.mark.parametrize(
    "order, skip, expected, neg_start",
    [
        ("most_negative_first", False, [0, 2, 4, 3, 1, 5], 3),
        ("least_negative_first", False, [0, 2, 4, 1, 5, 3], 3),
        ("original", False, [0, 2, 4, 1, 3, 5], 3),
        ("most_negative_first", True, [0, 4, 3, 1, 5], 2),
    ],
)
def test_reorder_kernel_hand_checked(order, skip, expected, neg_start):
    w = np.array([0.5, -1, 0, -3, 2, -1])
    pos, ns = reorder_kernel(w, 0, ReorderOptions(negative_order=order, skip_zero_weights=skip))
    assert pos.tolist() == expected
    assert ns == neg_start


def test_reorder_kernel_with_speculation_set_first():
    w = np.array([3, -1, 0.5, -4, 2, -0.5, 1, -2])
    pos, ns = reorder_kernel(w, 3)
    assert pos.tolist() == [3, 6, 0, 2, 4, 7, 1, 5]  # spec {3,6,0}; non-neg 2,4; negatives -2,-1,-0.5
    assert ns == 5


def test_options_validate():
    with pytest.raises(ConfigError, match="most_negative_first"):
        ReorderOptions(negative_order="random")
    with pytest.raises(ConfigError, match="skip_zero_weights"):
        ReorderOptions(skip_zero_weights="yes")


kernels = st.lists(st.integers(-4, 4), min_size=1, max_size=30).map(lambda v: np.array(v) / 4.0)


@settings(max_examples=150, deadline=None)
@given(w=kernels, data=st.data(), order=st.sampled_from(NEGATIVE_ORDERS), skip=st.booleans())
def test_reorder_kernel_properties(w, data, order, skip):
    stored = np.flatnonzero(w != 0) if skip else np.arange(w.size)
    n = data.draw(st.integers(0, stored.size))
    pos, ns = reorder_kernel(w, n, ReorderOptions(negative_order=order, skip_zero_weights=skip))
    assert sorted(pos.tolist()) == stored.tolist()  # each stored weight exactly once
    assert set(pos[:n].tolist()) == set(stored[speculation_set(w[stored], n)].tolist())
    assert np.all(w[pos[n:ns]] >= 0) and np.all(w[pos[ns:]] < 0)
    assert ns == n + np.count_nonzero(np.isin(stored, pos[n:]) & (w[stored] >= 0))
    assert pos[n:ns].tolist() == sorted(pos[n:ns].tolist())  # non-negative weights keep their original order
    neg = w[pos[ns:]]
    if order == "most_negative_first":
        assert np.all(np.diff(neg) >= 0)
    elif order == "least_negative_first":
        assert np.all(np.diff(neg) <= 0)
    else:
        assert pos[ns:].tolist() == sorted(pos[ns:].tolist())


def test_reorder_layer_buffers():
    rng = np.random.default_rng(1)
    w = rng.integers(-3, 4, (4, 2, 3, 3)) / 2.0
    w[1] = 0.0  # an all-zero kernel
    s = reorder_layer(w, np.array([0, 0, 2, 3]), ReorderOptions(skip_zero_weights=True))
    assert s.weights.shape == s.index.shape == (4, int(s.length.max()))
    assert s.length[1] == 0 and s.neg_start[1] == 0
    for f in range(4):
        ln = s.length[f]
        flat = w[f].reshape(-1)
        assert np.array_equal(s.weights[f, :ln], flat[s.index[f, :ln]])
        assert np.all(s.index[f, ln:] == -1) and np.all(s.weights[f, ln:] == 0)
        assert ln == np.count_nonzero(flat)
    assert s.n_spec.tolist() == [0, 0, 2, 3]
    assert s.index.dtype == np.int32 and s.length.dtype == np.int32


def test_reorder_layer_rejects_bad_arguments():
    w = np.ones((2, 1, 2, 2))
    with pytest.raises(ConfigError, match="shape"):
        reorder_layer(np.ones((2, 4)))
    with pytest.raises(ConfigError, match="one integer per kernel"):
        reorder_layer(w, np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match="kernel 0: .*N must lie in"):
        reorder_layer(w, np.array([5, 0]))
