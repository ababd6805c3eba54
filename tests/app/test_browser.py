"""End to end: the real Streamlit server driven by headless Chromium (Playwright with Debian's chromium).

Covers what AppTest cannot: the browser's upload path, images actually rendered, and two
browser sessions at once. Files are handed to the page from memory (Playwright buffers).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import app_support
from brain_mri import server as server_tools
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, IMAGES_RENDERED, open_page, result_of, upload

TIMEOUT_MS = 180_000  # two CPU cores shared with other work: be patient, never flaky

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason=f"Chromium not found at {CHROMIUM} (CI installs Debian's chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")

@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """`streamlit run streamlit_app.py` on a free local port, with the tiny model."""
    port = server_tools.free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "BRAIN_MRI_MODEL_DIR": str(tiny_model_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = server_tools.start(port, log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        server_tools.wait_healthy(url, process, log)
        yield url
    finally:
        server_tools.stop(process)
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    from core.model.classifier import load_classifier

    return load_classifier(tiny_model_dir)


@pytest.fixture(scope="module")
def expected(classifier):
    """The probability text the page must show for given bytes, computed through `core` here."""
    from core.io import read_scan

    return lambda data: f"{float(classifier.predict([read_scan(data).pixels])[0]):.1%}"


def _open(browser, url):
    return open_page(browser, url, TIMEOUT_MS)


def _downloaded_pdf_pages(page, button, folder) -> int:
    """Click a PDF download button; the number of pages of the file the browser received (pdfinfo)."""
    with page.expect_download() as download:
        button.click()
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def test_upload_scan_then_pdf(server, browser, classifier, expected, jpeg_bytes, pdf_bytes, tmp_path):
    context, page = _open(browser, server)
    try:
        upload(page, "y0.jpg", jpeg_bytes)
        card = result_of(page, "y0.jpg")
        assert card.get_by_test_id("stMetricLabel").inner_text().strip() == "Tumour probability"
        assert card.get_by_test_id("stMetricValue").inner_text().strip() == expected(jpeg_bytes)
        assert "Label at the model's threshold" in card.inner_text() or "Uncertain" in card.inner_text()
        page.wait_for_function(IMAGES_RENDERED, arg=3)
        images = card.locator('[data-testid="stImage"] img')
        assert images.count() == 3
        assert all(images.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(3))
        verdict = app_support.analyse(classifier, jpeg_bytes, "y0.jpg").assessment.verdict
        assert ("Uncertain" in card.inner_text()) == (verdict == "uncertain")  # the seeded tiny model: uncertain
        card.get_by_text("Hiding the highlighted 15% of the brain").wait_for()  # the map's faithfulness
        pages = _downloaded_pdf_pages(page, card.get_by_role("button", name="Report (PDF)"), tmp_path)
        assert pages == 1
        screenshot = tmp_path / "app-result.png"
        page.set_viewport_size({"width": 1400, "height": 1700})  # the app scrolls inside its own pane
        page.screenshot(path=str(screenshot))
        assert screenshot.stat().st_size > 10_000

        upload(page, "report.pdf", pdf_bytes, "application/pdf")
        error = page.get_by_test_id("stAlertContentError").filter(has_text="report.pdf")
        error.wait_for()
        assert "PDF" in error.inner_text()
        page.get_by_test_id("stDataFrame").wait_for()
        page.set_viewport_size({"width": 1400, "height": 2400})
        page.wait_for_timeout(1000)  # the table draws on a canvas after the resize
        page.screenshot(path=str(tmp_path / "app-pdf-error.png"))
        assert result_of(page, "y0.jpg").get_by_test_id("stMetricValue").inner_text().strip() == \
            expected(jpeg_bytes)
        assert "Traceback" not in page.content()
        assert "Research demo, not for clinical use" in page.inner_text("body")
        print(f"screenshots: {screenshot} and {tmp_path / 'app-pdf-error.png'}")
    finally:
        context.close()


def test_two_sessions_at_once_each_get_their_own_result(server, browser, expected, jpeg_bytes,
                                                         normal_jpeg_bytes):
    scans = {"tumour.jpg": jpeg_bytes, "normal.jpg": normal_jpeg_bytes}
    sessions = {name: _open(browser, server) for name in scans}
    try:
        for name, (_, page) in sessions.items():  # both uploads are in flight before either is awaited
            upload(page, name, scans[name])
        for name, (_, page) in sessions.items():
            card = result_of(page, name)
            assert card.get_by_test_id("stMetricValue").inner_text().strip() == expected(scans[name])
            other = next(n for n in scans if n != name)
            assert other not in page.inner_text("body"), "a session must never show another's scan"
            page.wait_for_function(IMAGES_RENDERED, arg=3)
    finally:
        for context, _ in sessions.values():
            context.close()


def test_photo_is_refused_and_a_series_is_shown_as_a_strip(server, browser, shared_data, tmp_path):
    import io

    from PIL import Image
    from skimage import data

    from tests.core.predict.test_series import NORMAL, PATIENT, lgg_slices, make_dicom

    photo = io.BytesIO()
    Image.fromarray(data.astronaut()).save(photo, format="PNG")
    files = [{"name": "astronaut.png", "mimeType": "image/png", "buffer": photo.getvalue()}]
    files += [{"name": f"IM{k}.dcm", "mimeType": "application/dicom",
               "buffer": make_dicom(pixels, "1.2.3.7.1", position=NORMAL * 4.0 * k)}
              for k, pixels in enumerate(lgg_slices(shared_data, PATIENT, [10, 11, 12]))]
    context, page = _open(browser, server)
    try:
        page.locator('input[type="file"]').set_input_files(files=files)
        refused = page.locator('[class*="st-key-scan-"]').filter(has=page.get_by_role("heading", name="astronaut.png"))
        refused.get_by_text("Not a brain MRI slice").wait_for()
        assert refused.get_by_test_id("stMetricValue").count() == 0  # no probability for a photo
        strip = page.locator(".st-key-series-0")
        strip.get_by_text("(3 slices)").first.wait_for()
        strip.get_by_test_id("stMetricValue").wait_for()  # the chosen slice's probability
        assert "Ordered by position" in strip.inner_text()
        assert _downloaded_pdf_pages(page, strip.get_by_role("button", name="Series report (PDF)"), tmp_path) == 4
        page.screenshot(path=str(tmp_path / "app-series.png"), full_page=True)
        assert "Traceback" not in page.content()
    finally:
        context.close()
