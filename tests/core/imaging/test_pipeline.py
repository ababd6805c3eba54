"""core.imaging.pipeline: one path from a scan to the model input, shared by every caller."""

from __future__ import annotations

import numpy as np
import pytest

from core import crop_brain, prepare_pixels, prepare_scan, to_model_input
from core.imaging.pipeline import as_prepared


def _scan(height=90, width=120):
    scan = np.zeros((height, width), np.uint8)
    scan[15:75, 20:100] = 140
    scan[30:40, 40:50] = 250
    return scan


def test_prepared_scan_equals_the_step_by_step_path():
    pixels = _scan()
    prepared = prepare_pixels(pixels, 64)
    crop = crop_brain(pixels)
    assert prepared.crop.box == crop.box and prepared.crop.fell_back == crop.fell_back
    assert prepared.grey.dtype == np.uint8 and prepared.grey.shape == (64, 64)
    assert prepared.model_input.dtype == np.float32 and prepared.model_input.shape == (64, 64, 3)
    assert np.array_equal(prepared.model_input, to_model_input(crop.image, 64))
    assert prepared.model_input is prepared.model_input  # computed once


def test_prepare_scan_reads_by_content(tmp_path):
    import cv2

    path = tmp_path / "slice.jpg"  # a PNG named .jpg: read by content
    assert cv2.imwrite(str(tmp_path / "slice.png"), _scan())
    (tmp_path / "slice.png").rename(path)
    prepared = prepare_scan(path, 32)
    assert prepared.meta["format"] == "PNG" and prepared.size == 32
    assert np.array_equal(prepared.pixels, _scan())


def test_as_prepared_reuses_or_reprepares():
    prepared = prepare_pixels(_scan(), 64)
    assert as_prepared(prepared, 64) is prepared
    other = as_prepared(prepared, 32)
    assert other.size == 32 and other.crop.box == prepared.crop.box
    assert as_prepared(_scan(), 32).size == 32


def test_bad_pixels_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="uint8"):
        prepare_pixels(np.zeros((40, 40), np.float32))
