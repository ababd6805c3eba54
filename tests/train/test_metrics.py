"""train.metrics on hand-made examples, checked against scikit-learn where it applies."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from train import metrics


def test_at_threshold_confusion_counts():
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    probs = [0.9, 0.6, 0.5, 0.2, 0.7, 0.5, 0.4, 0.1, 0.0, 0.3]
    r = metrics.at_threshold(labels, probs, 0.5)  # >= threshold counts as tumour
    assert r["confusion"] == {"tp": 3, "fn": 1, "fp": 2, "tn": 4}
    assert r["threshold"] == 0.5
    assert r["accuracy"] == pytest.approx(7 / 10)
    assert r["sensitivity"] == pytest.approx(3 / 4)
    assert r["specificity"] == pytest.approx(4 / 6)
    assert r["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert r["precision"] == pytest.approx(3 / 5)
    assert r["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    high = metrics.at_threshold(labels, probs, 0.95)
    assert high["confusion"] == {"tp": 0, "fn": 4, "fp": 0, "tn": 6}
    assert high["precision"] is None and high["f1"] == 0.0  # no positive predictions: precision undefined


def test_at_threshold_single_class_rates_are_none():
    r = metrics.at_threshold([1, 1, 1], [0.2, 0.7, 0.9], 0.5)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    assert r["specificity"] is None and r["balanced_accuracy"] is None


def test_auc_equals_sklearn_and_interval_contains_it():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 120)
    probs = np.clip(labels * 0.3 + rng.normal(0.35, 0.25, 120), 0, 1)
    out = metrics.auc_with_interval(labels, probs, rounds=500, seed=0)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)
    low, high = out["auc_ci95"]
    assert 0 <= low < out["auc"] < high <= 1
    assert high - low < 0.3  # 120 scans: an interval, not [0, 1]
    assert metrics.auc_with_interval(labels, probs, rounds=500, seed=0) == out  # seeded
    # ties and a perfect ranking
    assert metrics.auc_with_interval([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], rounds=50)["auc"] == 0.5
    perfect = metrics.auc_with_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], rounds=50)
    assert perfect["auc"] == 1.0 and perfect["auc_ci95"] == [1.0, 1.0]


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_single_class_auc_is_none(labels):
    assert metrics.auc_with_interval(labels, [0.5] * len(labels), rounds=20) == {"auc": None, "auc_ci95": None}


def test_choose_threshold_maximises_youden_j():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.3, 0.5, 0.45, 0.6, 0.7, 0.8, 0.9])
    t = metrics.choose_threshold(labels, probs)

    def youden(threshold):
        r = metrics.at_threshold(labels, probs, threshold)
        return r["sensitivity"] + r["specificity"] - 1

    best = max(youden(c) for c in np.unique(probs))
    assert youden(t) == pytest.approx(best)
    assert youden(t) == pytest.approx(0.8)  # at 0.6: sensitivity 4/5, specificity 1 (0.45 gives 0.75)
    assert t == pytest.approx(0.6)
    assert metrics.choose_threshold([1, 1], [0.3, 0.8]) == 0.5  # undefined on one class


def test_choose_threshold_is_a_probability():
    # roc_curve's first threshold is +inf; it must never come back as the operating point.
    assert metrics.choose_threshold([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2]) <= 1.0


def test_reliability_bins():
    labels = [0, 0, 1, 1, 1, 0]
    probs = [0.05, 0.08, 0.55, 0.58, 1.0, 0.95]
    r = metrics.reliability(labels, probs, bins=10)
    assert r["count"] == [2, 2, 2]  # bins [0, .1), [.5, .6), [.9, 1.0] (1.0 in the last bin); empty bins left out
    assert r["predicted"] == pytest.approx([0.065, 0.565, 0.975])
    assert r["observed"] == pytest.approx([0.0, 1.0, 0.5])
    assert sum(metrics.reliability(labels, probs, bins=3)["count"]) == 6


def test_evaluate_bundles_everything():
    labels = [0, 1, 0, 1, 1]
    probs = [0.2, 0.8, 0.6, 0.4, 0.9]
    r = metrics.evaluate(labels, probs, {"0.5": 0.5, "validation": 0.3}, seed=0)
    assert (r["scans"], r["tumour"], r["no_tumour"]) == (5, 3, 2)
    assert r["brier"] == pytest.approx(np.mean((np.array(probs) - labels) ** 2))
    assert r["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert r["at_0.5"]["confusion"] == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}
    assert r["at_validation"]["confusion"] == {"tp": 3, "fn": 0, "fp": 1, "tn": 1}


def test_no_interval_when_no_resample_holds_both_classes():
    # two scans, one per class: 1 in 2 resamples mixes them, so a single round can easily miss;
    # with zero rounds there is never a resample, and the interval must be None, not an error
    result = metrics.auc_with_interval([0, 1], [0.2, 0.8], rounds=0)
    assert result["auc"] == 1.0 and result["auc_ci95"] is None


def test_resampled_auc_equals_sklearn_on_resamples_with_ties():
    from train.metrics import _ResampledAuc

    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(5, 300))
        labels, probs = rng.integers(0, 2, n), np.round(rng.random(n), int(rng.integers(1, 4)))
        resampled = _ResampledAuc(labels, probs)
        for _ in range(4):
            pick = rng.integers(0, n, n)
            if labels[pick].min() != labels[pick].max():
                assert resampled.auc(pick) == pytest.approx(roc_auc_score(labels[pick], probs[pick]), abs=1e-12)
