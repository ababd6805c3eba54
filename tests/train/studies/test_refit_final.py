"""train.studies.refit_final: the shipped head's three-way split and the card numbers computed from scores.json."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.calibration import Calibration, expected_calibration_error, logit, sigmoid
from train import metrics
from train.studies.refit_final import ALL_SOURCES, card_numbers, check_sets, three_way_split


def test_three_way_split_keeps_groups_whole_and_takes_a_share_of_each_class():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(400), 5)  # 400 groups (patients, copies) of 5 slices
    labels = (rng.random(len(groups)) < 0.3).astype(int)
    split = three_way_split(groups, labels, 0.1, seed=3)
    assert set(split.tolist()) == {"train", "val", "test"}
    for group in range(400):
        assert len(set(split[groups == group].tolist())) == 1, f"group {group} is split"
    for part in ("val", "test"):
        for label in (0, 1):
            share = np.sum((split == part) & (labels == label)) / np.sum(labels == label)
            assert 0.07 < share < 0.13, (part, label, share)
    assert np.array_equal(split, three_way_split(groups, labels, 0.1, seed=3))  # seeded


def _scores(rng, n: int, overconfident: float) -> dict:
    """Two sources; the true probability of tumour is sigmoid(z), the raw output sigmoid(overconfident * z)."""
    z = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < sigmoid(z)).astype(int)
    sources = np.where(np.arange(n) % 3 == 0, "a", "b")
    return {"sources": sources.tolist(), "labels": labels.tolist(), "probs": sigmoid(overconfident * z).tolist()}


def test_card_numbers_fit_the_threshold_and_calibration_on_validation_and_report_on_test():
    rng = np.random.default_rng(1)
    scores = {"val": _scores(rng, 3000, 3.0), "test": _scores(rng, 3000, 3.0)}
    numbers = card_numbers(scores, seed=0)
    val_labels, val_probs = np.array(scores["val"]["labels"]), np.array(scores["val"]["probs"])
    assert numbers["threshold"] == metrics.choose_threshold(val_labels, val_probs)
    assert numbers["metrics"]["validation"]["auc"] == pytest.approx(
        metrics.auc_with_interval(val_labels, val_probs, rounds=0)["auc"])
    test = numbers["metrics"]["test"]
    assert list(test) == ["a", "b", ALL_SOURCES]
    assert test["a"]["scans"] + test["b"]["scans"] == test[ALL_SOURCES]["scans"] == 3000
    assert test[ALL_SOURCES]["at_card"]["threshold"] == numbers["threshold"]
    calibration = Calibration.from_dict(numbers["calibration"])
    assert calibration.slope == pytest.approx(1 / 3, abs=0.05)  # undoes the planted overconfidence
    for name, (labels, probs) in check_sets(scores).items():
        assert numbers["calibration"]["before"][name]["ece"] == pytest.approx(expected_calibration_error(labels, probs))
        assert numbers["calibration"]["after"][name]["ece"] < 0.05 < numbers["calibration"]["before"][name]["ece"]
    assert np.allclose(logit(calibration(np.array([0.5]))), calibration.intercept)
