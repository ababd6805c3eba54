"""core.predict.analysis: the one path prepare -> check -> assess, for one scan and for a batch."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from core.model.classifier import Classifier
from core.predict import analysis
from core.predict.status import Status
from tests.core.test_cli import tiny_model
from tests.support.paths import SHARED_DATA

SLICE = SHARED_DATA / "br35h" / "yes" / "y0.jpg"


@pytest.fixture(scope="module")
def classifier():
    return Classifier(model=tiny_model(size=32), card={"name": "tiny", "threshold": 0.5,
                                                       "explain_layer": "last_conv", "input": {"size": 32}})


def _photo() -> bytes:
    """A colour photo-like PNG: the input check refuses it."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_real_slice_is_checked_and_assessed_from_a_path_or_its_bytes(classifier, shared_data):
    from_path = analysis.analyse(classifier, SLICE)
    from_bytes = analysis.analyse(classifier, SLICE.read_bytes(), name="y0.jpg")
    assert from_path.name == from_bytes.name == "y0.jpg"
    assert from_path.digest == from_bytes.digest == hashlib.sha256(SLICE.read_bytes()).hexdigest()
    assert from_path.check.ok and not from_path.refused
    assert from_path.probability == pytest.approx(from_bytes.probability)
    assert from_path.label in ("tumour", "no_tumour", "uncertain")


def test_a_refused_scan_gets_its_reason_and_no_probability(classifier):
    result = analysis.analyse(classifier, io.BytesIO(_photo()), name="photo.png")
    assert result.refused and result.probability is None and result.label == Status.NOT_BRAIN_MRI
    assert "colour" in result.check.reason and analysis.refusal(result.scan) == result.check.reason


def test_a_batch_keeps_order_and_assesses_only_what_passes_in_one_call(classifier, shared_data, monkeypatch):
    from core.imaging.pipeline import prepare_scan

    scans = [prepare_scan(SLICE, 32), prepare_scan(_photo(), 32), prepare_scan(SLICE, 32)]
    calls = []
    real = analysis.assess
    monkeypatch.setattr(analysis, "assess", lambda c, batch, tta=True: calls.append(len(batch)) or real(c, batch, tta))
    results = analysis.analyse_prepared(classifier, scans, tta=False)
    assert calls == [2]
    assert [check.ok for check, _ in results] == [True, False, True]
    assert results[1][1] is None and results[0][1].probability == pytest.approx(results[2][1].probability)


def test_a_missing_file_is_a_scan_error_naming_it(classifier, tmp_path):
    from core.io import ScanError

    with pytest.raises(ScanError, match="'absent.png' could not be opened"):
        analysis.analyse(classifier, tmp_path / "absent.png")
