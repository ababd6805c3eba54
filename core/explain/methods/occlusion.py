"""Occlusion sensitivity (Zeiler & Fergus 2014; MONAI's ``occlusion_sensitivity``): hide a patch, watch the score.

GRID x GRID patches, centred on the cells of a GRID x GRID grid over the model
input and PATCH_SCALE times a cell wide (neighbours overlap), are hidden one at a
time by filling them from their surroundings (:func:`core.explain.imputation.impute`,
the neutral fill the faithfulness check uses, not a black square the model could
read as a shape). All hidden inputs are scored in batches through the
Explainer's compiled backbone and head. The map at a cell is the drop of the
target's logit score (+logit for tumour, -logit for no_tumour; probability drops
vanish when the sigmoid saturates), ReLU'd: evidence for the target.
Model-agnostic and gradient-free, but GRID**2 forward passes per scan
(49 at GRID = 7: seconds on a CPU, where a gradient CAM takes one backward pass).
"""

from __future__ import annotations

import numpy as np

from core.explain.base import Method
from core.explain.imputation import impute
from core.imaging.preprocess import CAFFE_MEAN_BGR, caffe_normalise
from core.model.labels import TUMOUR

#: Patches per side: the map is GRID x GRID (7 x 7, like ResNet50's conv5 at 224 px).
GRID = 7
#: Patch width over cell width: 1.5 = 48 px patches every 32 px at 224 px.
PATCH_SCALE = 1.5
#: Hidden inputs scored per forward pass.
BATCH = 16


def compute(explainer, model_input, features, target):
    grey = grey_of(model_input[0])
    hidden = caffe_normalise(np.stack([impute(grey, patch) for patch in patches(grey.shape[0])]))
    scores = np.concatenate([_scores(explainer, hidden[i : i + BATCH], target) for i in range(0, len(hidden), BATCH)])
    base = _scores(explainer, None, target, features)
    return np.maximum(base - scores, 0.0).reshape(GRID, GRID).astype(np.float32)


def grey_of(model_input: np.ndarray) -> np.ndarray:
    """float32 (s, s, 3) caffe-normalised grey input -> the uint8 (s, s) grey it was made from."""
    return np.clip(np.round(model_input[..., 0] + CAFFE_MEAN_BGR[0]), 0, 255).astype(np.uint8)


def patches(size: int) -> list[np.ndarray]:
    """GRID**2 bool (size, size) masks, row by row: patch (i, j) centred on cell (i, j) of a GRID x GRID grid."""
    cell = size / GRID
    half = PATCH_SCALE * cell / 2
    bounds = [(max(int(round((k + 0.5) * cell - half)), 0), min(int(round((k + 0.5) * cell + half)), size))
              for k in range(GRID)]
    masks = []
    for y0, y1 in bounds:
        for x0, x1 in bounds:
            mask = np.zeros((size, size), dtype=bool)
            mask[y0:y1, x0:x1] = True
            masks.append(mask)
    return masks


def _scores(explainer, inputs, target, features=None) -> np.ndarray:
    """The target's logit score, float (n,), of model inputs (or of given layer features)."""
    import tensorflow as tf

    if features is None:
        features = explainer.backbone(tf.constant(inputs, dtype=tf.float32))
    logit = np.asarray(explainer.head(features)[0], dtype=np.float64)[:, 0]
    return logit if target == TUMOUR else -logit


METHOD = Method("occlusion", "Occlusion", compute)
