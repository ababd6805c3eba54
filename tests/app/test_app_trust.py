"""The app refuses what is not a brain MRI slice, and says "uncertain" instead of a label near the threshold."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import app_support
from core.model.classifier import load_classifier
from tests.app.test_app import _app, _assert_clean, _page_text, _upload


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    """scikit-image's astronaut photo: a colour photograph, not a scan."""
    from skimage import data

    return _png(data.astronaut())


def test_photo_is_refused_without_a_probability(model_env, photo_png, jpeg_bytes):
    at = _upload(_app(), [("astronaut.png", photo_png), ("scan.jpg", jpeg_bytes)])
    _assert_clean(at)
    text = _page_text(at)
    refused = [w.value for w in at.warning if w.value.startswith("Not a brain MRI slice")]
    assert len(refused) == 1 and "No tumour probability is given" in refused[0]
    assert len(at.metric) == 1  # only the real scan has a probability
    table = at.dataframe[0].value.set_index("file")
    assert table.loc["astronaut.png", "status"] == "not_brain_mri"
    assert np.isnan(table.loc["astronaut.png", "tumour_probability"])
    assert table.loc["scan.jpg", "status"] == "ok"
    assert "Traceback" not in text


@pytest.fixture()
def threshold_at_the_scan(tiny_model_dir, tmp_path, jpeg_bytes, monkeypatch):
    """The tiny model with its card's threshold set to this scan's own probability: a borderline result."""
    import shutil

    from core.model.card import CARD_FILE, read_card

    copy = tmp_path / "borderline"
    shutil.copytree(tiny_model_dir, copy)
    probability = app_support.analyse(load_classifier(tiny_model_dir), jpeg_bytes, "scan.jpg").probability
    (copy / CARD_FILE).write_text(read_card(copy).with_entries(threshold=float(probability)).to_json())
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(copy))
    return copy


def test_borderline_result_is_called_uncertain(threshold_at_the_scan, jpeg_bytes):
    at = _upload(_app(), [("scan.jpg", jpeg_bytes)])
    _assert_clean(at)
    assert "**Uncertain**" in _page_text(at)
    assert "Label at the model's threshold" not in _page_text(at)
    assert len(at.metric) == 1  # the probability is still shown, with its range
