"""Whole series and PDF reports in the app: a DICOM upload mixing two series, and a per-scan PDF."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import app_support
from core.model.classifier import load_classifier
from tests.app.test_app import _app, _assert_clean, _page_text, _upload
from tests.core.predict.test_series import (
    EDGES_PATIENT,
    NORMAL,
    OTHER_PATIENT,
    PATIENT,
    PLANTED,
    lgg_slices,
    lgg_stack,
    make_dicom,
)


@pytest.fixture(scope="module")
def two_series(shared_data) -> list[tuple[str, bytes]]:
    """Four slices of one patient (by position, names shuffled) and three of another (instance numbers)."""
    numbers = [10, 11, 12, 13]
    first = [(f"IM{(k * 3) % 4}.dcm", make_dicom(pixels, "1.2.3.9.1", position=NORMAL * 4.0 * k))
             for k, pixels in enumerate(lgg_slices(shared_data, PATIENT, numbers))]
    second = [(f"other{k}.dcm", make_dicom(pixels, "1.2.3.9.2", instance=k + 1))
              for k, pixels in enumerate(lgg_slices(shared_data, OTHER_PATIENT, [10, 11, 12]))]
    return [first[2], second[0], first[0], second[2], first[3], second[1], first[1]]


def test_mixed_series_are_split_and_shown_as_strips(model_env, two_series):
    at = _upload(_app(), two_series)
    _assert_clean(at)
    text = _page_text(at)
    assert "2 series in this upload: shown separately." in text
    assert "(4 slices)" in text and "(3 slices)" in text and "Ordered by position" in text
    assert len(at.select_slider) == 2  # one slice stepper per series
    first = at.select_slider[0]
    assert list(first.options) == ["1", "2", "3", "4"]
    labels = [b.label for b in at.download_button]
    assert labels.count("Series report (PDF)") == 2
    assert not any(secret in text for secret in PLANTED)
    first.set_value(first.options[0]).run()
    _assert_clean(at)
    assert any(c == "Cropped brain (model input)" for img in at.image for c in img.captions)


def test_end_slices_of_a_series_are_one_line_after_the_strip(model_env, shared_data):
    """A whole LGG stack: its refused first and last slices are one summary line, after the strip."""
    files = lgg_stack(shared_data, EDGES_PATIENT, "1.2.3.9.3")
    at = _upload(_app(), files)
    _assert_clean(at)
    texts = [node.value for node in at.main if isinstance(getattr(node, "value", None), str)]
    edges = [i for i, text in enumerate(texts) if "at the ends of the volume not assessed" in text]
    assert len(edges) == 1, "one line for all the end slices"
    assert re.fullmatch(rf"\d+ slices? at the ends of the volume not assessed: 1(-\d+)?, (\d+-)?{len(files)}\.",
                        texts[edges[0]])
    assert edges[0] > texts.index("Most suspicious slices first:")  # after the strip, not before it
    assert not any("not a brain MRI slice" in text or text.startswith("Slice ") for text in texts)
    assert any(texts[edges[0]] == info.value for info in at.info)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not found: install poppler-utils")
def test_pdf_of_an_analysed_scan_renders_one_page(tiny_model_dir, jpeg_bytes, tmp_path):
    classifier = load_classifier(tiny_model_dir)
    analysis = app_support.analyse(classifier, jpeg_bytes, "y0.jpg")
    explanation = app_support.explain_scan(classifier, analysis, "gradcam", "tumour")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(app_support.pdf_bytes(classifier, [(analysis, explanation)]))
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 1
    import numpy as np
    from PIL import Image

    rendered = np.asarray(Image.open(pages[0]).convert("L"))
    assert rendered.std() > 10  # not a blank page
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "y0.jpg" in text and classifier.model_id in text and analysis.digest[:12] in text
