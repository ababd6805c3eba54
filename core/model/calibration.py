"""Calibrated, honest probabilities: Platt scaling on the logit, fitted on scans the model never trained on.

The network's sigmoid output is a score, not a frequency: on sources it never
saw, a "90%" is right far less often than 9 times in 10. A :class:`Calibration`
maps the raw probability p to ``sigmoid(slope * logit(p) + intercept)`` (Platt
scaling; slope = 1/T is temperature scaling, the intercept absorbs a shift of
the base rate). It is monotone, so the ranking (AUC) is unchanged and the
card's threshold maps to the same decisions. It is fitted by
`brain-mri calibrate` and stored in the model card under `calibration`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Raw probabilities are clipped to [EPS, 1 - EPS] before taking the logit.
EPS = 1e-7


def logit(probabilities) -> np.ndarray:
    """float (n,) in [0, 1] -> float64 (n,) log-odds (clipped away from +-inf)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(values) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64)))


@dataclass(frozen=True)
class Calibration:
    """p -> sigmoid(slope * logit(p) + intercept), and how it was obtained and checked.

    fitted_on / checked_on: {set name: {"tumour": n, "no_tumour": n}}.
    before / after: {set name: {"ece": float, "brier": float}} on the check sets.
    """

    slope: float = 1.0
    intercept: float = 0.0
    method: str = "platt"
    fitted_on: dict[str, Any] = field(default_factory=dict)
    checked_on: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    def __call__(self, probabilities) -> np.ndarray:
        """float (n,) raw probabilities in [0, 1] -> float64 (n,) calibrated probabilities in (0, 1)."""
        return sigmoid(self.slope * logit(probabilities) + self.intercept)

    def raw_threshold(self, level: float = 0.5) -> float:
        """The raw probability in (0, 1) that this map takes to the calibrated `level` in (0, 1)."""
        return float(sigmoid((logit([level])[0] - self.intercept) / self.slope))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entries: dict[str, Any]) -> "Calibration":
        """From the card's `calibration` entry; ValueError naming what is wrong."""
        if not isinstance(entries, dict):
            raise ValueError(f"calibration must be an object. Received: {type(entries).__name__}")
        known = {name: entries[name] for name in cls.__dataclass_fields__ if name in entries}
        calibration = cls(**known)
        for name in ("slope", "intercept"):
            value = getattr(calibration, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"calibration.{name} must be a finite number. Received: {value!r}")
        if calibration.slope <= 0:
            raise ValueError(f"calibration.slope must be positive (a monotone map). Received: {calibration.slope}")
        return calibration


IDENTITY = Calibration(method="none")


def fit_platt(labels, probabilities, balanced: bool = False) -> tuple[float, float]:
    """(slope, intercept) of the logistic regression of the labels on logit(raw probability).

    labels: int (n,) in {0, 1}, both classes present; probabilities: float (n,) in [0, 1].
    Unregularised maximum likelihood (scikit-learn), so it is Platt scaling itself. balanced: weigh each
    class equally, so the calibrated probability assumes even odds of tumour before the scan is seen (and 0.5
    on that scale is the decision that weighs a missed tumour and a false alarm alike), whatever the share
    of tumour scans in the fitting set.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(int)
    if len(set(labels.tolist())) < 2:
        raise ValueError("Calibration needs scans of both classes in the fitting set.")
    model = LogisticRegression(C=np.inf, solver="lbfgs", class_weight="balanced" if balanced else None)
    model.fit(logit(probabilities)[:, None], labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def expected_calibration_error(labels, probabilities, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of |observed - mean predicted| x bin share."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        raise ValueError("ECE of an empty set is undefined.")
    which = np.clip(np.digitize(probabilities, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(labels[mask].mean() - probabilities[mask].mean())
    return float(error)


def ece_uncertainty(labels, probabilities, draws: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How much an ECE measured on these scans says, from `draws` seeded resamplings.

    labels: int (n,) in {0, 1}; probabilities: float (n,) in [0, 1] (the ones being judged).
    Returns {"ece_ci95": [low, high]}, the bootstrap interval of the ECE (scans resampled with
    replacement), and {"ece_if_calibrated": [mean, 95th percentile]}, the ECE that a perfectly calibrated
    model giving these probabilities would show on this many scans (labels drawn from the probabilities):
    the part of a small set's ECE that sampling alone explains.
    """
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(labels)
    resampled = [expected_calibration_error(labels[i], probabilities[i])
                 for i in (rng.integers(0, n, n) for _ in range(draws))]
    calibrated = [expected_calibration_error(rng.random(n) < probabilities, probabilities) for _ in range(draws)]
    return {"ece_ci95": [float(v) for v in np.quantile(resampled, [0.025, 0.975])],
            "ece_if_calibrated": [float(np.mean(calibrated)), float(np.quantile(calibrated, 0.95))]}
