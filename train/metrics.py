"""Classification metrics with their uncertainty.

All functions take labels int (n,) in {0, 1} (1 = tumour) and probabilities
float (n,) in [0, 1]. Undefined values (AUC of a single-class set, a rate with
an empty denominator) are None, never a made-up number.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

BOOTSTRAP_ROUNDS = 2000


def _rate(numerator: int, denominator: int) -> float | None:
    return float(numerator / denominator) if denominator else None


def auc_with_interval(labels, probs, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """ROC AUC and its bootstrap 95% percentile interval (resampling scans with replacement)."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if len(set(labels.tolist())) < 2:
        return {"auc": None, "auc_ci95": None}
    rng = np.random.default_rng(seed)
    resampled = _ResampledAuc(labels, probs)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].min() != labels[pick].max():
            values.append(resampled.auc(pick))
    auc = float(skm.roc_auc_score(labels, probs))
    if not values:  # no resample held both classes (a tiny set): no interval rather than a made-up one
        return {"auc": auc, "auc_ci95": None}
    low, high = np.percentile(values, [2.5, 97.5])
    return {"auc": auc, "auc_ci95": [float(low), float(high)]}


class _ResampledAuc:
    """ROC AUC of resamples of one set, from the scans' multiplicities: O(n) per resample instead of a sort.

    AUC = sum over tied-score groups g of P_g * (N_<g + N_g / 2) / (P * N), with P_g and N_g the
    positive and negative scans (counted with multiplicity) scoring the g-th lowest score; equal to
    sklearn's roc_auc_score on the resample.
    """

    def __init__(self, labels: np.ndarray, probs: np.ndarray):
        self.order = np.argsort(probs, kind="stable")
        ranked = probs[self.order]
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        self.positive = labels[self.order] == 1

    def auc(self, pick: np.ndarray) -> float:
        counts = np.bincount(pick, minlength=len(self.order))[self.order].astype(np.float64)
        pos = np.add.reduceat(np.where(self.positive, counts, 0.0), self.starts)
        neg = np.add.reduceat(np.where(self.positive, 0.0, counts), self.starts)
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + neg / 2)) / (pos.sum() * neg.sum()))


def at_threshold(labels, probs, threshold: float) -> dict:
    """Accuracy, balanced accuracy, sensitivity, specificity, F1 and the confusion matrix at one threshold."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    sensitivity, specificity = _rate(tp, tp + fn), _rate(tn, tn + fp)
    balanced = None if sensitivity is None or specificity is None else (sensitivity + specificity) / 2
    precision = _rate(tp, tp + fp)
    f1 = _rate(2 * tp, 2 * tp + fp + fn)
    return {
        "threshold": float(threshold),
        "accuracy": _rate(tp + tn, len(labels)),
        "balanced_accuracy": balanced,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": f1,
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
    }


def reliability(labels, probs, bins: int = 10) -> dict:
    """Mean predicted probability and observed tumour fraction per equal-width bin (empty bins left out)."""
    labels, probs = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    out = {"predicted": [], "observed": [], "count": []}
    for b in range(bins):
        mask = which == b
        if mask.any():
            out["predicted"].append(float(probs[mask].mean()))
            out["observed"].append(float(labels[mask].mean()))
            out["count"].append(int(mask.sum()))
    return out


def choose_threshold(labels, probs) -> float:
    """The threshold maximising Youden's J (sensitivity + specificity - 1) on these scans; 0.5 if undefined."""
    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        return 0.5
    fpr, tpr, thresholds = skm.roc_curve(labels, probs)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))


def evaluate(labels, probs, thresholds: dict[str, float], seed: int = 0) -> dict:
    """Every metric for one set: AUC with interval, Brier score, reliability, and each named threshold."""
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=np.float64)
    result = {
        "scans": int(len(labels)),
        "tumour": int(labels.sum()),
        "no_tumour": int(len(labels) - labels.sum()),
        **auc_with_interval(labels, probs, seed=seed),
        "brier": float(np.mean((probs - labels) ** 2)) if len(labels) else None,
        "reliability": reliability(labels, probs),
    }
    for name, threshold in thresholds.items():
        result[f"at_{name}"] = at_threshold(labels, probs, threshold)
    return result
