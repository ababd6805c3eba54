"""core.report.pdf: PDF reports of real scans, rendered with poppler (pdftoppm, pdftotext) and checked.

Scans are real LGG FLAIR slices, one of them written as DICOM in memory with a planted patient name;
overlays are drawn from a made-up heatmap (no model needed: the layout is under test, not the map).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from core.explain import blend
from core.imaging.pipeline import prepare_pixels, prepare_scan
from core.model.card import ModelCard
from core.report.pdf import NOTICE, PRINT_SIDE, ReportPage, write_pdf
from tests.core.predict.test_series import PATIENT, PLANTED, lgg_slices, make_dicom

CREATED = datetime(2026, 11, 27, 9, 30, tzinfo=timezone.utc)
WEIGHTS = "ab" * 32
CARD = ModelCard.from_dict({
    "name": "test-model", "threshold": 0.364, "weights_sha256": WEIGHTS,
    "external_test": {"mos/Testing": {"auc": 0.748, "auc_ci95": [0.634, 0.845], "scans": 898, "no_tumour": 37}},
    "intended_use": "Research and teaching demo.",
})


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} not found: install poppler-utils (apt-get install poppler-utils) to render PDFs")
    return found


def render(pdf: bytes, tmp_path) -> list[np.ndarray]:
    """Every page of `pdf` rendered by pdftoppm at 30 dpi -> uint8 grey arrays."""
    (tmp_path / "report.pdf").write_bytes(pdf)
    subprocess.run([_poppler("pdftoppm"), "-r", "30", "-gray", "-png", str(tmp_path / "report.pdf"),
                    str(tmp_path / "page")], check=True, timeout=120)
    return [np.asarray(Image.open(path)) for path in sorted(tmp_path.glob("page-*.png"))]


def text_of(pdf: bytes, tmp_path) -> str:
    (tmp_path / "text.pdf").write_bytes(pdf)
    return subprocess.run([_poppler("pdftotext"), "-layout", str(tmp_path / "text.pdf"), "-"], check=True,
                          capture_output=True, text=True, timeout=120).stdout


def assert_not_blank(page: np.ndarray) -> None:
    """A page with text and images has many grey levels and dark pixels, not one flat colour."""
    assert page.std() > 10 and len(np.unique(page)) > 20 and (page < 128).mean() > 0.01


def _page(name: str, data: bytes, scan, probability: float, **extra) -> ReportPage:
    """A page for `scan` with an overlay from a made-up blob-shaped heatmap on its crop."""
    h, w = scan.crop.image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    heat = np.exp(-((yy - h / 2) ** 2 + (xx - w / 3) ** 2) / (2 * (w / 6) ** 2)).astype(np.float32)
    return ReportPage(name=name, file_sha256=hashlib.sha256(data).hexdigest(), pixels=scan.pixels,
                      box=scan.crop.box, crop=scan.crop.image, overlay=blend(scan.crop.image, heat, 0.4),
                      probability=probability, threshold=CARD.threshold, method="gradcam", target="tumour",
                      **extra)


@pytest.fixture(scope="module")
def dicom_page(shared_data):
    """A page made from a real slice written as DICOM with planted patient tags, as the app would."""
    data = make_dicom(lgg_slices(shared_data, PATIENT, [12])[0], "1.2.3.4", instance=1)
    assert PLANTED[0].encode() in data
    return data, _page("IM0012 $x$_1.dcm", data, prepare_scan(data, 224, name="IM0012.dcm"), 0.873,
                       notes=("The probability is close to the model's threshold.",), uncertainty=(0.81, 0.92))


def test_one_scan_page_carries_every_fact_and_no_patient_data(dicom_page, tmp_path):
    data, page = dicom_page
    pdf = write_pdf([page], CARD, created=CREATED)
    pages = render(pdf, tmp_path)
    assert len(pages) == 1
    assert_not_blank(pages[0])
    text = " ".join(text_of(pdf, tmp_path).split())
    for fact in ("IM0012 $x$_1.dcm", hashlib.sha256(data).hexdigest(), "Tumour probability 0.873",
                 "interval 0.810 to 0.920", "threshold 0.364: Tumour", "Grad-CAM", "evidence for 'tumour'",
                 "close to the model's threshold", CARD.model_id, WEIGHTS, "mos/Testing (never seen)",
                 "898 (37)", "0.748 [0.634, 0.845]", "AUC [95% CI]", "AUC on a source it never saw: mos/Testing 0.748",
                 "2026-11-27 09:30 UTC", NOTICE):
        assert fact in text, fact
    for planted in PLANTED:
        assert planted not in text and planted.encode() not in pdf


def test_batch_has_a_summary_page_first(dicom_page, shared_data, tmp_path):
    slices = lgg_slices(shared_data, PATIENT, [1, 11, 12])
    pages = [_page(f"slice{i}.png", s.tobytes(), prepare_pixels(s, 224), p, uncertainty="± 0.05")
             for i, (s, p) in enumerate(zip(slices, (0.1, 0.5, 0.9)), start=1)]
    pages[1] = dataclasses.replace(pages[1], verdict="uncertain")
    pdf = write_pdf([dicom_page[1], *pages], CARD, created=CREATED, heading="series:3fa9c1d2, max 0.9")
    rendered = render(pdf, tmp_path)
    assert len(rendered) == 1 + 4
    for page in rendered:
        assert_not_blank(page)
    text = text_of(pdf, tmp_path)
    first = text.split("\f")[0]
    assert "summary" in first and "slice3.png" in first and "series:3fa9c1d2, max 0.9" in first
    assert "page 1 of 5" in first and "± 0.05" in text and "Uncertain" in first
    assert "threshold 0.364: Uncertain (too close to the threshold to call)" in " ".join(text.split())
    assert not any(planted in text for planted in PLANTED)


def test_writes_atomically_to_a_path_or_into_a_file(dicom_page, tmp_path, monkeypatch):
    import core.report.pdf as report_pdf

    target = tmp_path / "out" / "report.pdf"
    assert write_pdf([dicom_page[1]], CARD, target) == target
    assert target.read_bytes().startswith(b"%PDF") and list(target.parent.iterdir()) == [target]
    with open(tmp_path / "handle.pdf", "wb") as handle:
        assert write_pdf([dicom_page[1]], CARD, handle) is None
    assert (tmp_path / "handle.pdf").read_bytes().startswith(b"%PDF")
    before = target.read_bytes()
    monkeypatch.setattr(report_pdf, "_scan_figure", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        write_pdf([dicom_page[1]], CARD, target)
    assert target.read_bytes() == before and list(target.parent.iterdir()) == [target]


def test_large_scans_are_shrunk_with_their_box():
    pixels = np.zeros((1024, 2048), np.uint8)
    page = ReportPage(name="big.png", file_sha256="0" * 64, pixels=pixels, box=(100, 200, 1100, 1000),
                      crop=pixels[200:1000, 100:1100], overlay=None, probability=0.2, threshold=0.5)
    assert max(page.pixels.shape) == PRINT_SIDE and page.box == (25.0, 50.0, 275.0, 250.0)
    assert max(page.crop.shape) == PRINT_SIDE and page.label == "no_tumour"


@pytest.mark.parametrize("change, message", [
    ({"probability": 1.5}, "probability must be a number in \\[0, 1\\]"),
    ({"threshold": float("nan")}, "threshold must be a number"),
    ({"pixels": np.zeros((8, 8), np.float32)}, "Expected a uint8 numpy ReportPage.pixels"),
    ({"verdict": "Tumour"}, "verdict must be one of"),
])
def test_bad_pages_are_refused(change, message):
    fields = {"name": "x.png", "file_sha256": "0" * 64, "pixels": np.zeros((64, 64), np.uint8),
              "box": (0, 0, 64, 64), "crop": np.zeros((64, 64), np.uint8), "overlay": None,
              "probability": 0.5, "threshold": 0.5}
    with pytest.raises(ValueError, match=message):
        ReportPage(**{**fields, **change})


def test_no_pages_is_refused():
    with pytest.raises(ValueError, match="at least one ReportPage"):
        write_pdf([], CARD)
