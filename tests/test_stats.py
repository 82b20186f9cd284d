"""The statistics against independent computations: statsmodels, scikit-learn, brute force, a bootstrap."""

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import f1_score, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from xraybench import stats
from xraybench.stats import delong


def scores(n=300, separation=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.6).astype(int)
    return labels, rng.normal(separation * labels, 1.0)


@pytest.mark.parametrize("k, n", [(0, 10), (7, 10), (10, 10), (560, 624), (1, 3)])
def test_wilson_equals_statsmodels(k, n):
    assert stats.wilson(k, n) == pytest.approx(list(proportion_confint(k, n, alpha=0.05, method="wilson")), abs=1e-9)
    assert stats.wilson(0, 0) is None


def test_wilson_half_width_at_the_briefs_scale():
    low, high = stats.wilson(round(0.9 * 624), 624)
    assert 0.022 < (high - low) / 2 < 0.026  # "about ±2.4 points" (STATS.md)


def test_fast_delong_equals_the_pairwise_definition():
    labels, s = scores(80)
    s = np.round(s, 1)  # ties, which count one half
    auc, v10, v01 = delong.structural_components(labels, s)
    pos, neg = s[labels == 1], s[labels == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert auc[0] == pytest.approx(kernel.mean()) and auc[0] == pytest.approx(roc_auc_score(labels, s))
    assert v10[0] == pytest.approx(kernel.mean(axis=1)) and v01[0] == pytest.approx(kernel.mean(axis=0))


def test_delong_variance_agrees_with_a_bootstrap():
    labels, s = scores(400, separation=1.2, seed=1)
    estimate = delong.auc_with_variance(labels, s)
    rng = np.random.default_rng(2)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, len(labels), len(labels))
        if labels[i].min() != labels[i].max():
            boot.append(roc_auc_score(labels[i], s[i]))
    assert estimate.variance == pytest.approx(np.var(boot), rel=0.15)
    low, high = estimate.interval()
    assert low < estimate.auc < high


def test_delong_test_of_two_aucs():
    labels, s = scores(400, separation=1.5, seed=3)
    noise = np.random.default_rng(4).normal(0, 2.0, len(s))
    same = delong.compare_aucs(labels, s, s)
    assert same.difference == 0 and same.p_value == 1.0
    worse = delong.compare_aucs(labels, s, s + noise)  # the noisy copy has a clearly lower AUC
    assert worse.difference > 0.05 and worse.p_value < 0.001
    a_bit = delong.compare_aucs(labels, s, s + 0.05 * noise)
    assert a_bit.p_value > 0.05
    with pytest.raises(ValueError, match="positive and one negative"):
        delong.compare_aucs(np.ones(5), s[:5], s[:5])


def test_sign_test_with_one_seed_is_exact_mcnemar():
    rng = np.random.default_rng(5)
    a, b = rng.random(200) < 0.85, rng.random(200) < 0.80
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    expected = mcnemar(table, exact=True).pvalue
    assert stats.mcnemar_exact(a, b) == pytest.approx(expected)
    assert stats.paired_accuracy(a[None], b[None]).p_value == pytest.approx(expected)


def test_paired_accuracy_pools_seeds_per_image():
    rng = np.random.default_rng(6)
    truth_hard = rng.random(400) < 0.2  # images every model tends to get wrong
    a = np.stack([(rng.random(400) < 0.95) & ~truth_hard for _ in range(3)])
    b = np.stack([(rng.random(400) < 0.80) & ~truth_hard for _ in range(3)])
    result = stats.paired_accuracy(a, b)
    assert result.difference == pytest.approx(a.mean() - b.mean())
    assert result.significant and result.low > 0 and result.seeds_a == 3
    tie = stats.paired_accuracy(a, a[::-1])
    assert (not tie.significant and tie.low < 0 < tie.high) or tie.difference == 0


def test_f1_interval_contains_the_estimate():
    labels, s = scores(300, seed=7)
    intervals = stats.test_intervals(labels, 1 / (1 + np.exp(-s)))
    f1 = f1_score(labels, s >= 0)
    assert intervals["f1"][0] < f1 < intervals["f1"][1]
    assert set(intervals) == {"acc", "sensitivity", "specificity", "auc", "f1"}
    one_class = stats.test_intervals(np.ones(20, dtype=int), np.full(20, 0.9))
    assert one_class["auc"] is None and one_class["specificity"] is None and one_class["acc"][1] == 1.0


def test_across_seeds():
    summary = stats.across_seeds([0.80, 0.84, 0.82])
    assert summary.mean == pytest.approx(0.82) and summary.sd == pytest.approx(0.02)
    assert summary.low < 0.80 and summary.high > 0.84  # t with 2 degrees of freedom: wide
    single = stats.across_seeds([0.9])
    assert single.sd is None and single.low is None
    assert stats.across_seeds([]) is None


def test_beat_probability():
    clear = stats.beat_probability([0.9, 0.91, 0.92], [0.8, 0.81, 0.82])
    assert clear.p == 1.0 and clear.low == 1.0
    mixed = stats.beat_probability([0.80, 0.85, 0.90], [0.82, 0.84, 0.88])
    assert 0.3 < mixed.p < 0.7 and mixed.low < 0.5 < mixed.high
    assert stats.beat_probability([0.9], [0.8, 0.7]) is None


def test_mann_whitney_direction_and_floor():
    assert stats.mann_whitney_worse([0.9, 0.91, 0.92], [0.8, 0.81, 0.82], higher_is_better=True) == pytest.approx(0.05)
    assert stats.mann_whitney_worse([0.9, 0.91, 0.92], [0.8, 0.81, 0.82], higher_is_better=False) > 0.9
    assert stats.smallest_mann_whitney_p(3, 3) == pytest.approx(0.05)
    assert stats.detectable_difference(0.01) == pytest.approx(0.028, abs=1e-3)


def test_pair_seeds_pairs_common_seeds_first_and_equal_counts():
    assert stats.pair_seeds([0, 1, 2], [2]) == ([2], [0])
    assert stats.pair_seeds([0, 1, 2], [5, 6]) == ([0, 1], [0, 1])
    assert stats.pair_seeds([3, 4], [4, 3, 9]) == ([0, 1], [1, 0])


def test_pair_seeds_shared_only_pairs_the_same_seeds_or_none():
    """One case against its baseline: only the seeds both ran (two seeds of one case differ on many images)."""
    assert stats.pair_seeds([0, 1, 2], [2, 0], shared_only=True) == ([0, 2], [1, 0])
    assert stats.pair_seeds([0, 1, 2], [5, 6], shared_only=True) == ([], [])
    with pytest.raises(ValueError, match="as many seeds"):
        stats.paired_accuracy(np.ones((3, 5)), np.ones((1, 5)))


def test_paired_auc_with_one_seed_is_delong_and_is_unbiased_between_equal_models():
    labels, s = scores(300, seed=8)
    noisy = s + np.random.default_rng(9).normal(0, 1.0, len(s))
    assert stats.paired_auc(labels, s[None], noisy[None]).p_value == pytest.approx(
        delong.compare_aucs(labels, s, noisy).p_value
    )
    rng = np.random.default_rng(10)
    rejections = 0
    for _ in range(200):  # two equally good models, three seeds each: about 5% rejections at α = 0.05
        a = np.stack([labels + rng.normal(0, 1.2, len(labels)) for _ in range(3)])
        b = np.stack([labels + rng.normal(0, 1.2, len(labels)) for _ in range(3)])
        rejections += stats.paired_auc(labels, a, b).p_value < 0.05
    assert rejections / 200 < 0.10


def test_one_rule_declares_a_difference():
    """Tested, p below α (p = α is not), the direction the sign of Δ; nothing tested: None."""
    assert stats.direction(0.03, 0.01) == 1 and stats.direction(-0.03, 0.01) == -1
    assert stats.direction(0.03, stats.ALPHA) == 0
    assert stats.direction(0.03, 0.01, testable=False) is None and stats.direction(0.03, None) is None
    assert stats.significant(0.01) and not stats.significant(0.01, testable=False) and not stats.significant(None)


def test_welch_direction_and_no_spread():
    assert stats.welch_worse([0.90, 0.91, 0.89], [0.80, 0.82, 0.81], higher_is_better=True) < 0.01
    assert stats.welch_worse([0.90, 0.91, 0.89], [0.80, 0.82, 0.81], higher_is_better=False) > 0.99
    assert stats.welch_worse([0.9, 0.9, 0.9], [0.8, 0.8, 0.8], higher_is_better=True) == 0.0
    assert stats.welch_worse([0.9, 0.9, 0.9], [0.9, 0.9, 0.9], higher_is_better=True) == 1.0


def test_procedure_difference_counts_seeds_and_images_with_bound_read_satterthwaite_df():
    """Welch–Satterthwaite's degrees of freedom on each variance part read at its upper 85% chi-square bound."""
    rng = np.random.default_rng(3)
    correct_a, correct_b = rng.random((3, 400)) < 0.85, rng.random((5, 400)) < 0.80
    d = stats.accuracy_difference(correct_a, correct_b)
    seed_a, seed_b = correct_a.mean(axis=1), correct_b.mean(axis=1)
    per_image = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    parts = [(seed_a.var(ddof=1) / 3, 2), (seed_b.var(ddof=1) / 5, 4), (per_image.var(ddof=1) / 400, 399)]
    variance = sum(v for v, _ in parts)
    assert d.difference == pytest.approx(seed_a.mean() - seed_b.mean())
    assert d.se == pytest.approx(np.sqrt(variance))
    bounds = [(v * f / scipy_stats.chi2.ppf(0.15, f), f) for v, f in parts]
    assert d.df == pytest.approx(sum(v for v, _ in bounds) ** 2 / sum(v**2 / f for v, f in bounds))
    t = scipy_stats.t(d.df)
    assert d.p_value == pytest.approx(2 * t.sf(abs(d.difference) / d.se))
    assert d.high - d.difference == pytest.approx(t.ppf(0.975) * d.se)
    assert (d.p_value < 0.05) == (d.low > 0 or d.high < 0) == d.significant


def test_procedure_difference_needs_three_seeds_a_side():
    d = stats.accuracy_difference(np.ones((1, 50)), np.zeros((3, 50)))
    assert d.difference == 1.0 and not d.testable and not d.significant and d.p_value == 1.0
    rng = np.random.default_rng(5)
    two = stats.accuracy_difference(rng.random((2, 50)) < 0.9, rng.random((3, 50)) < 0.5)
    assert not two.testable and not two.significant and two.verdict().outcome == "untested"


def test_auc_difference_is_the_mean_of_per_seed_aucs():
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.6
    probs_a = rng.random((3, 300)) * 0.6 + 0.3 * y
    probs_b = rng.random((3, 300)) * 0.6 + 0.1 * y
    d = stats.auc_difference(y, probs_a, probs_b)
    expected = np.mean([roc_auc_score(y, p) for p in probs_a]) - np.mean([roc_auc_score(y, p) for p in probs_b])
    assert d.difference == pytest.approx(expected) and d.significant and d.low > 0


def test_holm_adjusts_step_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([]) == []


def test_clopper_pearson_matches_statsmodels_beta_interval():
    for hits, trials in [(0, 20), (3, 20), (20, 20), (72, 2000)]:
        assert stats.clopper_pearson(hits, trials) == pytest.approx(
            list(proportion_confint(hits, trials, alpha=0.05, method="beta")), abs=1e-9
        )
