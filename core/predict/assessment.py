"""What the app and the CLI report for a scan: a calibrated probability, its spread, and a verdict.

    assess(classifier, prepared_scans) -> list[Assessment]

The raw model output (what `train.evaluate` measures) goes through the card's
calibration (`core.model.calibration`); its uncertainty is the spread over
test-time augmentation: the scan and its horizontal, vertical and double flips
(the flips the model was trained with). The verdict is "uncertain" instead of a
label when the views fall on both sides of the threshold, or when the
probability lies within `UNCERTAIN_MARGIN` of it. A model with a tumour-type head (`core.model.tumour_type`)
also names the type of a scan whose verdict is tumour, from the same pass's pooled features of the scan as
given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from core.imaging.pipeline import PreparedScan, as_prepared
from core.model.labels import TUMOUR, label_for
from core.model.tumour_type import TypeCall

#: A calibrated probability this close to the (calibrated) threshold gets no label.
UNCERTAIN_MARGIN = 0.05
UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Assessment:
    """One scan's result.

    raw: the model's own output for the scan as given, in [0, 1].
    probability: raw, calibrated, in [0, 1]. low / high: the least and most calibrated
    probability over the test-time views. threshold: the card's threshold, calibrated.
    verdict: "tumour", "no_tumour" or "uncertain". tumour_type: the type call when the verdict is tumour and
    the model has a type head, else None.
    """

    raw: float
    probability: float
    low: float
    high: float
    threshold: float
    verdict: str
    tumour_type: TypeCall | None = None

    @property
    def uncertain(self) -> bool:
        return self.verdict == UNCERTAIN

    def describe(self) -> str:
        """'62% (views 55-70%)': the probability with its spread, for people."""
        return f"{self.probability:.0%} (views {self.low:.0%}–{self.high:.0%})"


def tta_views(model_inputs: np.ndarray) -> np.ndarray:
    """float32 (n, s, s, 3) -> float32 (4, n, s, s, 3): as given, flipped left-right, up-down, both."""
    return np.stack([model_inputs, model_inputs[:, :, ::-1], model_inputs[:, ::-1], model_inputs[:, ::-1, ::-1]])


def verdict(probability: float, low: float, high: float, threshold: float) -> str:
    """'uncertain' when the views straddle the threshold or the probability is within the margin."""
    if low < threshold <= high or abs(probability - threshold) < UNCERTAIN_MARGIN:
        return UNCERTAIN
    return label_for(probability, threshold)


def assess(classifier, scans: Sequence[PreparedScan], tta: bool = True) -> list[Assessment]:
    """Prepared scans -> one Assessment each, in order (one batched model call)."""
    if not scans:
        return []
    inputs = classifier.inputs_of(np.stack([as_prepared(scan, classifier.input_size).grey for scan in scans]))
    views = tta_views(inputs) if tta else inputs[None]
    flat = views.reshape(-1, *inputs.shape[1:])
    type_head = getattr(classifier, "type_head", None)
    if type_head is None:
        raw, features = classifier.predict_inputs(flat), None
    else:
        raw, features = classifier.predict_inputs_with_features(flat)
    raw = raw.reshape(len(views), len(inputs))
    calibrated = classifier.calibration(raw.ravel()).reshape(raw.shape)
    threshold = float(classifier.calibration([classifier.threshold])[0])
    results = []
    for index in range(len(inputs)):
        p, low, high = float(calibrated[0, index]), float(calibrated[:, index].min()), float(calibrated[:, index].max())
        results.append(Assessment(raw=float(raw[0, index]), probability=p, low=low, high=high,
                                  threshold=threshold, verdict=verdict(p, low, high, threshold)))
    tumours = [i for i, result in enumerate(results) if result.verdict == TUMOUR]
    if features is not None and tumours:  # views[0] is the scan as given: features[:len(inputs)]
        for index, call in zip(tumours, type_head.calls(features[tumours])):
            results[index] = replace(results[index], tumour_type=call)
    return results
