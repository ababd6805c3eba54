"""The head refit on every source as a model to ship: its split, and every number its card records.

Every kept scan of the pool (copies removed, LGG grouped by patient) goes to one side, by whole group:
train, validation (`--val-split` of each class, 10% by default: early stopping, the threshold by Youden's
J, the Platt calibration) and test (as much again: the numbers reported per source and pooled). `card_numbers`
computes all of them from the validation and test scans' raw probabilities, which `brain-mri refit`
writes to scores.json beside the table, so a test recomputes the card from that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.model.calibration import Calibration, fit_platt
from train import metrics
from train.data import dedup
from train.studies.calibrate import checked_calibration

SCORES_FILE = "scores.json"
#: Name of the pooled test set beside the per-source ones.
ALL_SOURCES = "all sources"


def three_way_split(groups: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """str (n,) "train" / "val" / "test": whole groups, about `fraction` of each class in val and in test.

    groups: int (n,) split groups (copies, LGG patients); labels: int (n,) in {0, 1}.
    """
    held = dedup.grouped_split(groups, labels, 2 * fraction, seed)
    inside = np.flatnonzero(held)
    test = dedup.grouped_split(groups[inside], labels[inside], 0.5, seed + 1)
    split = np.full(len(groups), "train", dtype=object)
    split[inside] = np.where(test, "test", "val")
    return split.astype(str)


def _part(scores: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    part = scores[name]
    return np.asarray(part["sources"]), np.asarray(part["labels"], dtype=int), np.asarray(part["probs"], float)


def _evaluate(labels, probs, thresholds: dict, seed: int) -> dict:
    return {k: v for k, v in metrics.evaluate(labels, probs, thresholds, seed=seed).items() if k != "reliability"}


def check_sets(scores: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{source, then ALL_SOURCES: (labels int (n,), raw probabilities float (n,))} of the test split."""
    sources, labels, probs = _part(scores, "test")
    sets = {name: (labels[sources == name], probs[sources == name]) for name in dict.fromkeys(sources.tolist())}
    return {**sets, ALL_SOURCES: (labels, probs)}


#: How a card's threshold is chosen: Youden's J on the raw validation probabilities (the head refit's card),
#: or 0.5 on the calibrated scale of a Platt map fitted with each class weighted equally.
YOUDEN, CALIBRATED_HALF = "youden", "calibrated 0.5"


def card_numbers(scores: dict, seed: int = 0, threshold_rule: str = YOUDEN) -> dict:
    """The card's threshold, metrics and calibration, from scores.json's payload.

    scores: {"val": {...}, "test": {...}}, each {"sources": [str], "labels": [0|1], "probs": [float in [0, 1]]}
    (raw probabilities). threshold_rule: YOUDEN (Platt fitted as the classes come) or CALIBRATED_HALF (Platt
    fitted with the classes weighted equally; the threshold is the raw probability it maps to 0.5).
    Returns {"threshold": float, "metrics": {"validation": ..., "test": {set: ...}},
    "calibration": Calibration.to_dict()}; every metric block as `train.metrics.evaluate` gives it, without
    the reliability bins.
    """
    if threshold_rule not in (YOUDEN, CALIBRATED_HALF):
        raise ValueError(f"threshold_rule must be {YOUDEN!r} or {CALIBRATED_HALF!r}. Received: {threshold_rule!r}")
    _, val_labels, val_probs = _part(scores, "val")
    slope, intercept = fit_platt(val_labels, val_probs, balanced=threshold_rule == CALIBRATED_HALF)
    if threshold_rule == YOUDEN:
        threshold = metrics.choose_threshold(val_labels, val_probs)
    else:
        threshold = Calibration(slope=slope, intercept=intercept).raw_threshold(0.5)
    checks = check_sets(scores)
    calibration = checked_calibration(slope, intercept, {"validation split, every source": {
        "tumour": int(val_labels.sum()), "no_tumour": int(len(val_labels) - val_labels.sum())}}, checks)
    return {
        "threshold": threshold,
        "metrics": {
            "validation": _evaluate(val_labels, val_probs, {"0.5": 0.5, "validation": threshold}, seed),
            "test": {name: _evaluate(labels, probs, {"0.5": 0.5, "card": threshold}, seed)
                     for name, (labels, probs) in checks.items()}},
        "calibration": calibration.to_dict(),
    }


def scores_payload(pool, split: np.ndarray, probs: dict[str, np.ndarray], root) -> dict:
    """scores.json: per split ("val", "test") every scan's path (relative to `root` where it lies inside),
    source, label and raw probability (float (n,) in `probs[split]`, in pool order)."""
    def where(path) -> str:
        path = Path(path)
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return str(path)

    payload = {}
    for part in ("val", "test"):
        mask = split == part
        payload[part] = {"paths": [where(s.path) for s, m in zip(pool.samples, mask) if m],
                         "sources": pool.sources[mask].tolist(),
                         "labels": [int(v) for v in pool.labels[mask]],
                         "probs": [float(v) for v in probs[part]]}
    return payload
