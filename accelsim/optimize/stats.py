"""The promise of predictive mode: a paired, exact test that a spec's top-1 loss against the dense network is within
epsilon on new images, and the fixed-sequence rule that picks the most aggressive spec of a path that passes it.

Per validation image the spec either agrees with the dense network about being right or it does not: `worse`
images the dense network gets right and the spec wrong, `better` the other way round. The loss is
L = P(worse) - P(better), estimated by (worse - better) / n. Two promises are offered (docs/optimize.md):

- `images=None`: the expected loss on new images (drawn like the validation images) is at most epsilon.
  Null hypothesis H0: L > epsilon.
- `images=m`: the loss measured on a set of m new images is at most epsilon. Null hypothesis H0: P(loss on m images
  > epsilon) > delta/2, tested at delta/2 (so the chance that the promise fails is at most delta/2 + delta/2).

Both nulls are sets of the two parameters (pi = P(worse) + P(better), q = P(worse) / pi). The p-value is exact
(Berger & Boos 1994): the largest probability, over the null parameters whose discordance pi lies in a 1 - beta
confidence interval for pi, of a statistic at least as favourable as the one observed, plus beta. The statistic is
the studentised loss Z = (worse - better - n * epsilon) / sqrt(worse + better + 1). Every probability is a sum over
the exact trinomial distribution; nothing is asymptotic. The supremum over pi is taken on a grid refined around
its maximum (a grid can only miss a narrow peak; the tests compare it with a brute-force supremum).

`fixed_sequence` walks a path of specs from the least to the most aggressive and stops at the first one whose
p-value exceeds delta (Bauer 1991; Angelopoulos et al. 2021, "Learn then test"): the spec it returns fails its
promise with probability at most delta, however many specs the path holds, as long as the path was chosen without
looking at the validation images.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import binom

from accelsim.errors import ConfigError

BETA_SHARE = 0.01  # Berger-Boos: the nuisance interval's miss probability, as a share of the test's level
_PI_GRID = 48  # grid points over the nuisance interval, before refinement
_TAIL = 12.0  # binomial standard deviations kept on each side of the mean (the rest is below 1e-30)


@dataclass(frozen=True)
class PairedCounts:
    """Per-image agreement of a spec with the dense network about being right, on one image set."""

    n: int  # images
    worse: int  # dense right, spec wrong
    better: int  # dense wrong, spec right

    def __post_init__(self) -> None:
        if self.n < 0 or self.worse < 0 or self.better < 0 or self.worse + self.better > self.n:
            raise ConfigError(f"paired counts must satisfy 0 <= worse + better <= n, got {self}")

    @classmethod
    def from_correct(cls, dense_correct: np.ndarray, spec_correct: np.ndarray) -> PairedCounts:
        d, s = np.asarray(dense_correct, dtype=bool), np.asarray(spec_correct, dtype=bool)
        if d.shape != s.shape:
            raise ConfigError(f"per-image correctness of different lengths: {d.shape} and {s.shape}")
        return cls(int(d.size), int(np.count_nonzero(d & ~s)), int(np.count_nonzero(~d & s)))

    @property
    def loss(self) -> float:
        """Dense top-1 minus spec top-1 on these images (fraction)."""
        return (self.worse - self.better) / self.n if self.n else 0.0

    def swapped(self) -> PairedCounts:
        return PairedCounts(self.n, self.better, self.worse)


def _support(n: int, p: float) -> tuple[int, int]:
    """The counts k of Binomial(n, p) outside of which the probability is negligible."""
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    return max(0, int(math.floor(mean - _TAIL * sd - 2))), min(n, int(math.ceil(mean + _TAIL * sd + 2)))


def _conditional_cdf(n_total: int, pi: float, q: float, cut: Callable[[np.ndarray], np.ndarray]) -> float:
    """P(K+ <= cut(K)) where K ~ Binomial(n_total, pi) discordant images and K+ | K ~ Binomial(K, q)."""
    lo, hi = _support(n_total, pi)
    k = np.arange(lo, hi + 1)
    c = np.floor(cut(k) + 1e-9)  # K+ <= c (tolerance: the observed point itself is inside)
    return float(min(1.0, np.sum(binom.pmf(k, n_total, pi) * binom.cdf(c, k, q))))


def _pi_interval(k: int, n: int, beta: float) -> tuple[float, float]:
    """Clopper-Pearson interval for a binomial proportion, each side missing with probability beta/2."""
    low = 0.0 if k == 0 else float(beta_dist.ppf(beta / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta_dist.ppf(1 - beta / 2, k + 1, n - k))
    return low, high


@dataclass(frozen=True)
class Promise:
    """What a spec must keep: top-1 loss <= epsilon against the dense network, with probability >= confidence.

    `images=None`: the expected loss on new images; `images=m`: the loss measured on m new images.
    """

    epsilon: float
    confidence: float = 0.9
    images: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and -1.0 <= self.epsilon <= 1.0):
            raise ConfigError(f"epsilon must be a top-1 loss between 0 and 1, got {self.epsilon!r}")
        if not (isinstance(self.confidence, (int, float)) and 0.5 <= self.confidence <= 1.0):
            raise ConfigError(f"confidence must lie in [0.5, 1], got {self.confidence!r}")
        if self.images is not None and (isinstance(self.images, bool) or not isinstance(self.images, int)
                                        or self.images <= 0):
            raise ConfigError(f"promise images must be a positive number of images (or None), got {self.images!r}")

    @property
    def delta(self) -> float:
        """The chance the promise may fail."""
        return 1.0 - self.confidence

    @property
    def test_level(self) -> float:
        """The level each validation test runs at (all of delta, or half of it when the promise is about m images)."""
        return self.delta if self.images is None else self.delta / 2

    def null_q(self, pi: float) -> float | None:
        """The smallest q = P(worse)/pi in the null hypothesis at discordance pi (None: no null parameter there).

        The probability of a favourable statistic falls as q grows, so the null's worst case at pi is this q.
        """
        if pi <= 0.0:
            return None
        if self.images is None:  # H0: L = pi (2q - 1) >= epsilon
            q = 0.5 * (1.0 + self.epsilon / pi)
            return None if q > 1.0 + 1e-12 else min(1.0, max(0.0, q))
        return _predictive_null_q(self.images, self.epsilon, self.delta / 2, pi)

    def p_value(self, counts: PairedCounts) -> float:
        """Exact p-value of H0 (the spec breaks the promise) from the validation counts; 1 when delta is 0."""
        return _p_value(self, counts)

    def accepts(self, counts: PairedCounts) -> bool:
        level = self.test_level
        return level > 0 and self.p_value(counts) <= level


@functools.lru_cache(maxsize=65536)
def _predictive_null_q(m: int, eps: float, level: float, pi: float) -> float | None:
    """The q at which P(loss on m images > eps) equals `level` (the null is q above it); None if no q reaches it.

    The tail grows with q: a vectorised scan of 65 values of q brackets the crossing, bisection narrows it to 1e-6.
    """
    if pi <= 0.0:
        return None
    lo_k, hi_k = _support(m, pi)
    k = np.arange(lo_k, hi_k + 1)
    weight = binom.pmf(k, m, pi)
    c = np.floor((eps * m + k) / 2.0 + 1e-9)  # loss > eps  <=>  J+ > (eps m + J) / 2

    def tails(q: np.ndarray) -> np.ndarray:
        return 1.0 - (weight[:, None] * binom.cdf(c[:, None], k[:, None], q[None, :])).sum(axis=0)

    grid = np.linspace(0.0, 1.0, 65)
    t = tails(grid)
    if t[-1] <= level:
        return None
    if t[0] > level:
        return 0.0
    i = int(np.argmax(t > level))  # first grid q over the level
    lo, hi = float(grid[i - 1]), float(grid[i])
    while hi - lo > 1e-6:
        mids = np.linspace(lo, hi, 9)[1:-1]
        over = tails(mids) > level
        j = int(np.argmax(over)) if over.any() else len(mids)
        lo, hi = (float(mids[j - 1]) if j > 0 else lo), (float(mids[j]) if j < len(mids) else hi)
    return lo


def _statistic(worse: np.ndarray | int, better: np.ndarray | int, n: int, eps: float) -> np.ndarray | float:
    return (np.asarray(worse) - np.asarray(better) - n * eps) / np.sqrt(np.asarray(worse) + np.asarray(better) + 1.0)


def _favourable(promise: Promise, counts: PairedCounts, pi: float) -> float:
    """P(statistic <= observed) at discordance pi and the null's worst q (0 where pi holds no null parameter).

    For promises about m images, pi is first rounded to 4 significant digits (so the null boundary, which costs a
    search, is found once per rounded pi): the point evaluated is still a parameter of the null."""
    if promise.images is not None and pi > 0:
        pi = float(f"{pi:.4g}")
    q = promise.null_q(pi)
    if q is None:
        return 0.0
    n, eps = counts.n, promise.epsilon
    z = float(_statistic(counts.worse, counts.better, n, eps))
    # Z <= z  <=>  2 K+ - K - n eps <= z sqrt(K + 1)  <=>  K+ <= (z sqrt(K + 1) + K + n eps) / 2
    return _conditional_cdf(n, pi, q, lambda k: (z * np.sqrt(k + 1.0) + k + n * eps) / 2.0)


def _p_value(promise: Promise, counts: PairedCounts) -> float:
    level = promise.test_level
    if level <= 0.0:
        return 1.0
    if counts.n == 0:
        return 1.0
    beta = BETA_SHARE * level
    lo, hi = _pi_interval(counts.worse + counts.better, counts.n, beta)
    lo, hi = max(lo, 1e-12), max(hi, 1e-12)
    grid = np.unique(np.concatenate([np.linspace(lo, hi, _PI_GRID), [lo, hi]]))
    values = np.array([_favourable(promise, counts, float(p)) for p in grid])
    best = int(np.argmax(values))
    sup = float(values[best])
    # Refine around the best grid point (golden-section on the bracket of its neighbours).
    a, b = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)])
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = _favourable(promise, counts, c), _favourable(promise, counts, d)
    for _ in range(20):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = _favourable(promise, counts, c)
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = _favourable(promise, counts, d)
    sup = max(sup, fc, fd)
    return min(1.0, sup + beta)


def upper_bound(counts: PairedCounts, confidence: float, images: int | None = None) -> float:
    """The smallest epsilon whose promise (at `confidence`, about `images` new images) the counts pass: an upper
    confidence bound of the loss (fraction, in [-1, 1]; 1.0 when no epsilon passes). Found by bisection to 1e-5."""
    if counts.n == 0 or confidence >= 1.0:
        return 1.0

    def passes(eps: float) -> bool:
        return Promise(eps, confidence, images).accepts(counts)

    if not passes(1.0):
        return 1.0
    lo, hi = -1.0, 1.0
    while hi - lo > 1e-5:
        mid = 0.5 * (lo + hi)
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def interval(counts: PairedCounts, confidence: float) -> tuple[float, float]:
    """(lower, upper) confidence bounds of the expected loss, each side at `confidence` (a 2c-1 interval)."""
    return -upper_bound(counts.swapped(), confidence), upper_bound(counts, confidence)


@dataclass(frozen=True)
class SequenceResult:
    """Where the fixed-sequence walk stopped: `chosen` is the index of the last step that passed (-1: none)."""

    chosen: int
    p_values: list[float]
    stopped_by: str  # "p-value above the level", "end of the path", "confidence 1: nothing can be accepted"


def fixed_sequence(promise: Promise, counts_of: Callable[[int], PairedCounts], steps: int) -> SequenceResult:
    """Walk steps 0..steps-1 (least aggressive first); keep going while a step's p-value is within the level.

    `counts_of(i)` evaluates step i on the validation images (called in order, and only until the walk stops).
    """
    if promise.test_level <= 0.0:
        return SequenceResult(-1, [], "confidence 1: nothing can be accepted")
    p_values: list[float] = []
    for i in range(steps):
        p = promise.p_value(counts_of(i))
        p_values.append(p)
        if p > promise.test_level:
            return SequenceResult(i - 1, p_values, "p-value above the level")
    return SequenceResult(steps - 1, p_values, "end of the path")


def walk_many(promises: Sequence[Promise], counts_of: Callable[[int], PairedCounts], steps: int
              ) -> list[SequenceResult]:
    """`fixed_sequence` for several promises along one path, evaluating each step once."""
    cache: dict[int, PairedCounts] = {}

    def cached(i: int) -> PairedCounts:
        if i not in cache:
            cache[i] = counts_of(i)
        return cache[i]

    return [fixed_sequence(p, cached, steps) for p in promises]
