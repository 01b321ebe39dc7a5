import math

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import NumberFormat, fractional_length, integer_length, quantize


@pytest.mark.parametrize("max_abs, il", [(0.0, 1), (0.4, 0), (0.5, 1), (0.99, 1), (1.0, 2), (200.0, 9), (255.0, 9),
                                         (256.0, 10)])
def test_integer_length_covers_the_range_with_a_sign_bit(max_abs, il):
    assert integer_length(max_abs) == il
    if max_abs > 0:
        fl = 16 - il
        # the largest code 2^15-1 at this FL is at least max_abs minus one step (no gross saturation)
        assert (2**15 - 1) * 2.0**-fl >= max_abs - 2.0**-fl


def test_quantize_rounds_to_grid_and_saturates():
    fl, bits = 4, 8  # step 1/16, range [-8, 8 - 1/16]
    x = np.array([0.03, 0.032, -0.03125, 1.0 / 3, 100.0, -100.0])
    q = quantize(x, fl, bits)
    step = 2.0**-fl
    assert np.all(np.abs(q / step - np.round(q / step)) == 0)  # on the grid
    assert q[0] == 0.0 and q[1] == step  # 0.48 steps -> 0, 0.512 steps -> 1
    assert q[2] == 0.0  # -0.5 steps rounds half up to 0
    assert q[4] == (2**7 - 1) * step and q[5] == -(2**7) * step


def test_quantize_is_idempotent_and_exact_in_float64_products():
    rng = np.random.default_rng(0)
    w = quantize(rng.normal(size=1000), 15, 16)
    x = quantize(rng.uniform(0, 50, size=1000), 9, 16)
    assert np.array_equal(quantize(w, 15, 16), w)
    # products of two 16-bit codes summed over 1000 terms stay below 2^53: float64 sum is order independent
    s1 = float(np.sum(w * x))
    s2 = math.fsum(w * x)
    assert s1 == s2


def test_fractional_length_of_layer_outputs():
    assert fractional_length(200.0, 16) == 7  # Q9.7: CaffeNet's 16-bit format in Ristretto (spec B.1)


def test_number_format_validation():
    with pytest.raises(ConfigError, match="number_format: must be one of 'dynamic_fixed', 'fixed', 'minifloat', "
                       "'power_of_two', 'lightnn1', 'lightnn2', 'float32', got 'posit'"):
        NumberFormat(kind="posit")
    with pytest.raises(ConfigError, match="weight_bits"):
        NumberFormat(weight_bits=1)
    with pytest.raises(ConfigError, match="rounding"):
        NumberFormat(rounding="round_half_even")
