"""Score cached crops with a model: the library behind `train.evaluate` and the end of a run."""

from __future__ import annotations

from typing import Callable

import numpy as np

from core.imaging.normalise import normalise_crops
from core.imaging.preprocess import caffe_normalise
from train import metrics

#: Cached crops turned into model inputs at a time (bounds memory: 64 x 224 x 224 x 3 float32 = 38 MB).
CHUNK = 64


def predict_crops(predict_inputs: Callable[[np.ndarray], np.ndarray], crops: np.ndarray,
                  batch_size: int = CHUNK, normalise: str = "none") -> np.ndarray:
    """uint8 (n, s, s) cached grey crops -> float32 (n,) probabilities through `predict_inputs`, each chunk
    normalised per scan by `normalise` (core.imaging.normalise) and caffe-preprocessed first."""
    out = [predict_inputs(caffe_normalise(normalise_crops(crops[i : i + batch_size], normalise)))
           for i in range(0, len(crops), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def evaluate_sets(predict_inputs, sets: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: dict[str, float],
                  seed: int = 0, normalise: str = "none") -> tuple[dict, dict]:
    """Metrics per named set of (crops, labels), the crops normalised by `normalise`; also returns
    {name: (labels, probs)}."""
    results, scores = {}, {}
    for name, (crops, labels) in sets.items():
        probs = predict_crops(predict_inputs, crops, normalise=normalise)
        scores[name] = (labels, probs)
        results[name] = metrics.evaluate(labels, probs, thresholds, seed=seed)
    return results, scores
