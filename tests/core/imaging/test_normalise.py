"""core.imaging.normalise: the per-scan intensity normalisation (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.normalise import normalise_brain, normalise_crops, normaliser
from tests.support.synthetic import brain


def test_normalise_brain_undoes_global_intensity_changes():
    image = brain(level=120)
    darker = (image.astype(np.float32) * 0.6).astype(np.uint8)
    a, b = normalise_brain(image), normalise_brain(darker)
    assert a.dtype == np.uint8 and a.shape == image.shape
    tissue = image >= 8
    assert np.all(a[~tissue] == 0)
    low, high = np.percentile(a[tissue], [1, 99])
    assert abs(low - 20) <= 2 and abs(high - 235) <= 2
    assert np.abs(a.astype(int) - b).mean() < 3  # brightness and contrast of the scan no longer matter
    assert np.abs(image.astype(int) - darker).mean() > 20


def test_normalise_blank_and_modes():
    blank = np.zeros((32, 32), np.uint8)
    np.testing.assert_array_equal(normalise_brain(blank), blank)
    with pytest.raises(ValueError, match="HxW"):
        normalise_brain(np.zeros((8, 8, 3), np.uint8))
    crops = np.stack([brain(32), brain(32, level=60, seed=1)])
    assert normalise_crops(crops, "none") is crops
    out = normalise_crops(crops, "brain")
    assert out.shape == crops.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], normalise_brain(crops[1]))
    assert normaliser("none") is None
    with pytest.raises(ValueError, match="normalise must be one of none, brain"):
        normaliser("zscore")
