"""Per-scan intensity normalisation inside the brain crop: part of preprocessing, the same in training, evaluation
and prediction. A model's card names its normalisation (`input.normalise`, one of NORMALISATIONS; absent = none)
and `core.model.classifier.Classifier.inputs_of` applies it before the network's caffe normalisation.

    none    the published recipe: the grey crop as it is
    brain   normalise_brain: the tissue's 1st and 99th grey-level percentiles mapped to BRAIN_LOW and BRAIN_HIGH
"""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.pixels import check_uint8, levels_at

#: Per-scan intensity normalisations (`--normalise`): none (the recipe) or brain (see normalise_brain).
NORMALISATIONS = ("none", "brain")
#: normalise_brain maps the tissue's 1st and 99th percentiles to these grey levels.
BRAIN_LOW, BRAIN_HIGH = 20.0, 235.0
#: Pixels below this fraction of the crop's 99th percentile (and below MIN_TISSUE) count as background.
TISSUE_FRACTION, MIN_TISSUE = 0.1, 8


def normalise_brain(image: np.ndarray) -> np.ndarray:
    """Per-scan intensity normalisation inside the brain crop.

    image: uint8 HxW grey crop [0, 255] -> uint8 HxW. Tissue = pixels at or above max(MIN_TISSUE,
    TISSUE_FRACTION x the crop's 99th-percentile grey level); the tissue's 1st and 99th-percentile grey
    levels (lowest levels reaching those shares) are mapped linearly to BRAIN_LOW and BRAIN_HIGH (clipped
    to [0, 255]); background pixels become 0. A crop without tissue (blank) is returned unchanged (as a
    copy). One 256-entry lookup table per crop; deterministic.
    """
    check_uint8(image, "crop", channels=())
    counts = np.bincount(image.ravel(), minlength=256)
    tissue_level = max(MIN_TISSUE, int(np.ceil(TISSUE_FRACTION * levels_at(counts, (0.99,))[0])))
    tissue = counts.copy()
    tissue[:tissue_level] = 0
    if tissue.sum() < 16:
        return image.copy()
    low, high = levels_at(tissue, (0.01, 0.99))
    if high - low < 1:
        return image.copy()
    levels = np.arange(256, dtype=np.float32)
    lut = np.clip(np.rint(BRAIN_LOW + (levels - low) * ((BRAIN_HIGH - BRAIN_LOW) / (high - low))), 0, 255)
    lut[:tissue_level] = 0
    return cv2.LUT(image, lut.astype(np.uint8))


def normaliser(mode: str):
    """The per-crop function for a --normalise mode: None for 'none', normalise_brain for 'brain'."""
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}. Received: {mode!r}")
    return normalise_brain if mode == "brain" else None


def normalise_crops(crops: np.ndarray, mode: str) -> np.ndarray:
    """uint8 (n, s, s) crops -> the same crops normalised by `mode` (the input itself for 'none')."""
    function = normaliser(mode)
    if function is None or len(crops) == 0:
        return crops
    return np.stack([function(crop) for crop in crops])
