"""Content digests of arrays (the mapper's profile cache keys): equal contents agree, any change differs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.digest import CHUNK_WORDS, array_digest


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(0, 64), st.integers(2 * CHUNK_WORDS - 8, 6 * CHUNK_WORDS + 5)), st.integers(0, 2**32 - 1),
       st.data())
def test_one_changed_element_changes_the_digest(n, seed, data):
    """int32 arrays below and above 1 MiB (hashed as they are / by chunk values), across chunk bounds, with a tail
    of fewer than eight bytes: a copy agrees, one element changed anywhere (by any amount) does not."""
    a = np.random.default_rng(seed).integers(0, 400, n, dtype=np.int32)
    assert array_digest(a) == array_digest(a.copy())
    if n:
        i = data.draw(st.integers(0, n - 1))
        b = a.copy()
        b[i] += data.draw(st.sampled_from([1, -1, 1 << 16, 1 << 30]))
        assert array_digest(b) != array_digest(a)


def test_shape_dtype_order_and_none_are_part_of_the_digest():
    a = np.arange(12, dtype=np.int32)
    assert array_digest(a.reshape(3, 4)) != array_digest(a.reshape(4, 3))
    assert array_digest(a) != array_digest(a.view(np.float32)) != array_digest(a.view(np.uint32))
    assert array_digest(a, None) != array_digest(None, a) != array_digest(a)
    assert array_digest(a[::2]) == array_digest(np.ascontiguousarray(a[::2]))  # views digest as their contents
    assert len(array_digest(a, size=8)) == 8
    for n in (1, 3, 2 * CHUNK_WORDS + 1, 4 * CHUNK_WORDS + 3):  # the last element: in the bytes after whole words
        odd = np.zeros(n, np.int32)
        changed = odd.copy()
        changed[-1] = 1
        assert array_digest(odd) != array_digest(changed)
