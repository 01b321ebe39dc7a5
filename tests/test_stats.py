"""The promise's statistics against small exact computations: p-values, their level, bounds, the fixed sequence."""

import math

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from accelsim.errors import ConfigError
from accelsim.optimize import stats
from accelsim.optimize.stats import PairedCounts, Promise, fixed_sequence, interval, upper_bound


def _outcomes(n):
    """Every (worse, better) of n images."""
    return [(w, b) for w in range(n + 1) for b in range(n + 1 - w)]


def _trinomial(n, pw, pb):
    """P(worse = w, better = b) for every outcome of n images."""
    out = {}
    for w, b in _outcomes(n):
        out[(w, b)] = (math.comb(n, w) * math.comb(n - w, b) * pw**w * pb**b * (1 - pw - pb) ** (n - w - b))
    return out


def _brute_p(promise, counts, grid=160):
    """Berger-Boos by brute force: beta + sup over the null parameters whose pi lies in the 1 - beta interval (a
    fine grid of pi, every outcome summed) of P(statistic <= observed)."""
    n = counts.n
    beta = stats.BETA_SHARE * promise.test_level
    k = counts.worse + counts.better
    lo = 0.0 if k == 0 else beta_dist.ppf(beta / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_dist.ppf(1 - beta / 2, k + 1, n - k)
    z_obs = stats._statistic(counts.worse, counts.better, n, promise.epsilon)
    best = 0.0
    for pi in np.linspace(max(lo, 1e-6), hi, grid):
        q = promise.null_q(pi)
        if q is None:
            continue
        dist = _trinomial(n, pi * q, pi * (1 - q))
        mass = sum(p for (w, b), p in dist.items() if stats._statistic(w, b, n, promise.epsilon) <= z_obs + 1e-12)
        best = max(best, mass)
    return min(1.0, best + beta)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.25])
def test_p_value_matches_a_brute_force_supremum_over_the_null(eps):
    """On 8 images, every outcome: the p-value equals a brute-force Berger-Boos p-value (the supremum over a fine
    grid of the nuisance interval, every outcome summed) up to the grids' resolution."""
    promise = Promise(eps, 0.8)
    for w, b in _outcomes(8):
        counts = PairedCounts(8, w, b)
        p = promise.p_value(counts)
        brute = _brute_p(promise, counts)
        assert p >= brute - 1e-3, (w, b, p, brute)
        assert p <= brute + 5e-3, (w, b, p, brute)  # the brute force's grid can miss a peak by a little


@pytest.mark.parametrize("images", [None, 12])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2])
def test_the_chance_of_accepting_a_spec_that_breaks_the_promise_is_at_most_delta(images, eps):
    """Exact over all outcomes of 16 validation images (and, with `images`, of the 12 test images): for parameters
    that break the promise, the chance the test accepts is at most delta; for promises about the test images, the
    chance that an accepted spec then loses more than epsilon on them is at most delta."""
    promise = Promise(eps, 0.8, images)
    n = 16
    accept = {(w, b): promise.accepts(PairedCounts(n, w, b)) for w, b in _outcomes(n)}
    for pi in (0.05, 0.15, 0.3, 0.6):
        for q in (0.5, 0.6, 0.75, 0.9, 1.0):
            pw, pb = pi * q, pi * (1 - q)
            p_accept = sum(p for o, p in _trinomial(n, pw, pb).items() if accept[o])
            if images is None:
                if pw - pb >= eps:  # the promise is broken
                    assert p_accept <= promise.delta + 1e-9, (pi, q, p_accept)
            else:
                m = images
                fail = sum(p for (w, b), p in _trinomial(m, pw, pb).items() if (w - b) / m > eps + 1e-12)
                assert p_accept * fail <= promise.delta + 1e-9, (pi, q, p_accept, fail)


def test_upper_bound_of_no_change_follows_the_rule_of_three():
    """No image changes on 300: the expected loss is below -ln(delta)/n with confidence 1 - delta (rule of three)."""
    ucb = upper_bound(PairedCounts(300, 0, 0), 0.9)
    assert math.isclose(ucb, -math.log(0.1) / 300, rel_tol=0.05)
    lo, hi = interval(PairedCounts(300, 0, 0), 0.9)
    assert lo == pytest.approx(-hi, abs=1e-4)


def test_bounds_bracket_the_estimate_and_tighten_with_more_images():
    small, large = PairedCounts(200, 12, 4), PairedCounts(2000, 120, 40)
    for c in (small, large):
        lo, hi = interval(c, 0.9)
        assert lo < c.loss < hi
    assert upper_bound(large, 0.9) - large.loss < upper_bound(small, 0.9) - small.loss
    assert upper_bound(small, 0.95) > upper_bound(small, 0.9)
    # a promise about 500 test images is harder to keep than one about the expected loss
    assert upper_bound(small, 0.9, 500) > upper_bound(small, 0.9)


def test_confidence_one_accepts_nothing_and_the_sequence_stops_at_the_first_failure():
    counts = [PairedCounts(400, 0, 0), PairedCounts(400, 1, 1), PairedCounts(400, 30, 0), PairedCounts(400, 0, 0)]
    assert not Promise(0.0, 1.0).accepts(counts[0])
    assert fixed_sequence(Promise(0.0, 1.0), counts.__getitem__, 4).chosen == -1
    seen = []

    def count(i):
        seen.append(i)
        return counts[i]

    res = fixed_sequence(Promise(0.03, 0.9), count, 4)
    assert res.chosen == 1 and seen == [0, 1, 2]  # step 3 passes but comes after a failure: never looked at
    assert res.p_values[2] > 0.1 >= max(res.p_values[:2])


def test_bad_promises_are_clear_errors():
    with pytest.raises(ConfigError, match="confidence"):
        Promise(0.01, 1.5)
    with pytest.raises(ConfigError, match="epsilon"):
        Promise(2.0)
    with pytest.raises(ConfigError, match="images"):
        Promise(0.01, 0.9, 0)
    with pytest.raises(ConfigError, match="worse"):
        PairedCounts(3, 2, 2)
