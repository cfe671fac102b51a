"""The report's statistics against closed forms: vectorised scores equal the official
``score_from_stats``, bootstrap intervals match normal and seed-only intervals, a hand case
whose replicate values can be listed, the trend's slope equals ``np.polyfit``, and the seed
decides every number."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts_jax.metrics import STAT_KINDS, score_from_stats
from xstilts_jax.report import stats


def test_kind_widths_agree_with_metrics():
    assert stats.KIND_WIDTHS == {kind: len(names) for kind, names in STAT_KINDS.items()}


@pytest.mark.parametrize("kind", sorted(STAT_KINDS))
def test_scores_from_sums_equals_score_from_stats(kind):
    rng = np.random.default_rng(1)
    k = len(STAT_KINDS[kind])
    sums = rng.integers(0, 40, size=(200, k)).astype(np.float64)
    if kind == "prf":  # zero counts in every position, and all zero
        sums[:30, 0] = 0
        sums[30:60, 1] = 0
        sums[60:90, 2] = 0
        sums[90:100] = 0
    else:
        sums = sums / 40.0 * 50  # sums of per-example values in [0, 1] over 50 examples
    n = 50
    got = stats.scores_from_sums(kind, sums.reshape(20, 10, k), n).ravel()
    want = [score_from_stats(kind, list(s), n) for s in sums]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_scores_from_sums_refuses_a_wrong_width_and_no_examples():
    with pytest.raises(ValueError, match="expected 3 sums"):
        stats.scores_from_sums("prf", np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match="no examples"):
        stats.scores_from_sums("accuracy", np.zeros((4, 1)), 0)
    with pytest.raises(ValueError, match="unknown"):
        stats.scores_from_sums("bleu", np.zeros((4, 1)), 3)


def _cells(*arrays):
    """[cells, n, k] from per-cell [n, k] arrays."""
    return np.stack([np.asarray(a, dtype=np.float64) for a in arrays])


def test_accuracy_interval_matches_the_normal_interval():
    """(a) One language, one pair, direct constant at 0: the gain is the X-STILTs accuracy,
    whose 95 % interval is p ± 1.96 sqrt(p(1-p)/n)."""
    n, p = 20000, 0.7
    correct = (np.random.default_rng(0).random(n) < p).astype(np.float64)[:, None]
    gain = stats.paired_gain_bootstrap("accuracy", [_cells(correct)], [_cells(np.zeros((n, 1)))],
                                       [0], [0], bootstrap=2000, seed=3)
    p_hat = correct.mean()
    assert gain.mean == pytest.approx(100 * p_hat)
    half = 1.96 * np.sqrt(p_hat * (1 - p_hat) / n) * 100
    assert (gain.high - gain.low) / 2 == pytest.approx(half, rel=0.06)
    assert (gain.low + gain.high) / 2 == pytest.approx(100 * p_hat, abs=0.1 * half)
    assert gain.n_pairs == 1 and gain.unpaired == 0


def test_seed_only_interval_matches_the_interval_of_the_mean_of_seed_gains():
    """(b) Every example of a cell has the same EM/F1 (no test-set variance at all), so only
    the seed pairs vary: the interval is the one of the mean of the pairs' gains."""
    m, n = 40, 30
    rng = np.random.default_rng(5)
    gains = rng.normal(2.0, 1.0, size=m)
    base = rng.uniform(40, 60, size=m)
    x = [np.full((n, 2), (b + g) / 100) for b, g in zip(base, gains)]
    d = [np.full((n, 2), b / 100) for b in base]
    est = stats.paired_gain_bootstrap("em_f1", [_cells(*x)], [_cells(*d)], list(range(m)),
                                      list(range(m)), bootstrap=4000, seed=0)
    assert est.mean == pytest.approx(gains.mean(), abs=1e-9)
    half = 1.96 * gains.std(ddof=1) / np.sqrt(m)
    assert (est.high - est.low) / 2 == pytest.approx(half, rel=0.15)


def test_hand_case_with_two_pairs_and_two_examples():
    """(c) x0 = (1, 0), x1 = (1, 1), d0 = (0, 0), d1 = (1, 0). A resample of the two examples
    gives x0 = d1 = s in {0, 50, 100} (probabilities 1/4, 1/2, 1/4); the pair gains are s and
    100 - s, so a replicate is s, 50 or 100 - s: 0, 50 or 100 with probabilities 1/8, 3/4, 1/8."""
    x = _cells([[1], [0]], [[1], [1]])
    d = _cells([[0], [0]], [[1], [0]])
    est = stats.paired_gain_bootstrap("accuracy", [x], [d], [7, 8], [8, 7], bootstrap=20000,
                                      seed=1)
    # pairs by target seed: x0 (seed 7) with d1, x1 (seed 8) with d0.
    assert est.mean == pytest.approx(((50 - 50) + (100 - 0)) / 2)
    # Re-pair as in the docstring (x0 with d0) to check the listed distribution.
    est = stats.paired_gain_bootstrap("accuracy", [x], [d], [7, 8], [7, 8], bootstrap=20000,
                                      seed=1)
    assert est.mean == 50.0
    values, counts = np.unique(est.replicates, return_counts=True)
    assert set(values) <= {0.0, 50.0, 100.0}
    np.testing.assert_allclose(counts / counts.sum(), [1 / 8, 3 / 4, 1 / 8], atol=0.01)
    assert est.low in values and est.high in values
    assert (est.low, est.high) == (0.0, 100.0)


def test_unpaired_cells_are_left_out_and_counted():
    x = _cells([[1], [0]], [[1], [1]], [[0], [0]])
    d = _cells([[0], [0]])
    est = stats.paired_gain_bootstrap("accuracy", [x], [d], [0, 1, 0], [0], bootstrap=50)
    assert (est.n_pairs, est.unpaired) == (2, 1)
    assert est.mean == pytest.approx((50 + 0) / 2)
    with pytest.raises(ValueError, match="no pairs"):
        stats.paired_gain_bootstrap("accuracy", [x], [d], [1, 1, 1], [0], bootstrap=50)


def test_per_language_gains_and_subsets():
    """The gain over languages is the mean of the per-language gains, replicate by replicate;
    over() recomputes it for a subset."""
    rng = np.random.default_rng(2)
    n = 300
    x = [_cells(*(rng.random((3, n, 1)) < p).astype(float)) for p in (0.6, 0.7, 0.8)]
    d = [_cells(*(rng.random((3, n, 1)) < 0.5).astype(float)) for _ in range(3)]
    est = stats.paired_gain_bootstrap("accuracy", x, d, [0, 1, 2], [0, 1, 2],
                                      languages=["en", "de", "fr"], bootstrap=300, seed=4)
    per = est.per_language
    assert list(per) == ["en", "de", "fr"]
    assert est.mean == pytest.approx(np.mean([per[lang][0] for lang in per]))
    np.testing.assert_allclose(est.replicates, est.language_replicates.mean(axis=1))
    sub = est.over(["de", "fr"])
    assert sub.mean == pytest.approx((per["de"][0] + per["fr"][0]) / 2)
    assert sub.languages == ("de", "fr") and sub.n_pairs == 3
    for lang, (mean, low, high) in per.items():
        assert low <= mean <= high
    assert est.to_json()["per_language"]["en"]["mean"] == per["en"][0]


def test_arm_mean_interval_covers_its_mean():
    rng = np.random.default_rng(0)
    stats_l = [_cells(*(rng.random((3, 400, 1)) < 0.6).astype(float))]
    est = stats.arm_mean_bootstrap("accuracy", stats_l, bootstrap=500, seed=0)
    assert est.mean == pytest.approx(100 * stats_l[0].mean())
    assert est.low < est.mean < est.high and est.n_pairs == 3


def test_prf_resampling_rescores_the_summed_counts():
    """Resampled chunk counts are scored as a micro F1 of their sums, zero counts included."""
    x = _cells([[1, 1, 1], [0, 0, 1], [2, 3, 2], [0, 0, 0]])
    res = stats.resample_scores("prf", [x], bootstrap=200, seed=0)
    assert res.point[0, 0] == pytest.approx(score_from_stats("prf", [3, 4, 4], 4))
    assert np.all((res.boot >= 0) & (res.boot <= 100))


def test_the_seed_decides_every_number():
    """(e) Same seed, same numbers; another seed, other replicates."""
    rng = np.random.default_rng(9)
    x = [_cells(*(rng.random((4, 100, 1)) < 0.7).astype(float))]
    d = [_cells(*(rng.random((4, 100, 1)) < 0.6).astype(float))]
    run = lambda seed: stats.paired_gain_bootstrap("accuracy", x, d, [0, 1, 2, 3], [0, 1, 2, 3],
                                                   bootstrap=200, seed=seed)
    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert (a.low, a.high) == (b.low, b.high)
    assert not np.array_equal(a.replicates, c.replicates)
    assert a.mean == c.mean  # the point estimate does not depend on the seed


def test_trend_slope_is_polyfit_and_its_interval_covers_the_true_slope():
    """(d) Gains linear in log10(parameters) plus noise; replicates spread as the noise."""
    params = np.array([1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9])
    true_slope, sd, B = 2.5, 0.8, 2000
    rng = np.random.default_rng(0)
    truth = 1.0 + true_slope * np.log10(params)
    points = truth + rng.normal(0, sd, size=len(params))
    reps = [p + rng.normal(0, sd, size=B) for p in points]
    fit = stats.trend(params, reps, points)
    slope, intercept = np.polyfit(np.log10(params), points, 1)
    assert fit.slope == pytest.approx(slope)
    assert fit.intercept == pytest.approx(intercept)
    assert fit.low < true_slope < fit.high
    # The interval's width is about that of OLS with known noise: 2 * 1.96 * sd / sqrt(Sxx).
    x = np.log10(params)
    assert fit.high - fit.low == pytest.approx(2 * 1.96 * sd / np.sqrt(((x - x.mean()) ** 2).sum()),
                                               rel=0.1)
    np.testing.assert_allclose(fit.predict(params), intercept + slope * np.log10(params))
    grid, values = fit.line(10)
    assert grid[0] == pytest.approx(1e6) and grid[-1] == pytest.approx(1e9) and len(values) == 10


def test_trend_needs_two_sizes():
    assert stats.trend([1e8], [np.zeros(10)], [1.0]) is None
    assert stats.trend([1e8, 1e8], [np.zeros(10), np.ones(10)], [1.0, 2.0]) is None
    assert stats.trend([], [], []) is None


def test_combine_averages_replicates():
    rng = np.random.default_rng(0)
    x = [_cells(*(rng.random((2, 50, 1)) < 0.7).astype(float))]
    d = [_cells(*(rng.random((2, 50, 1)) < 0.5).astype(float))]
    a = stats.paired_gain_bootstrap("accuracy", x, d, [0, 1], [0, 1], bootstrap=100, seed=0)
    b = stats.paired_gain_bootstrap("accuracy", x, d, [0, 1], [0, 1], bootstrap=100, seed=1)
    both = stats.combine([a, b], ["t1", "t2"])
    assert both.mean == pytest.approx((a.mean + b.mean) / 2)
    np.testing.assert_allclose(both.replicates, (a.replicates + b.replicates) / 2)
