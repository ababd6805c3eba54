"""End to end: the real Streamlit server driven by headless Chromium (Playwright with Debian's chromium).

Covers what AppTest cannot: the browser's upload path, images actually rendered, and two
browser sessions at once. Files are handed to the page from memory (Playwright buffers).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brain_mri import server as server_tools
from brain_mri.browser import CHROMIUM, CHROMIUM_ARGS, IMAGES_RENDERED, open_page, result_of, upload

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
def expected(tiny_model_dir):
    """The probability text the page must show for given bytes, computed through `core` here."""
    from core.scanio import read_scan
    from core.model import load_classifier

    classifier = load_classifier(tiny_model_dir)
    return lambda data: f"{float(classifier.predict([read_scan(data).pixels])[0]):.1%}"


def _open(browser, url):
    return open_page(browser, url, TIMEOUT_MS)


def test_upload_scan_then_pdf(server, browser, expected, jpeg_bytes, pdf_bytes, tmp_path):
    context, page = _open(browser, server)
    try:
        upload(page, "y0.jpg", jpeg_bytes)
        card = result_of(page, "y0.jpg")
        assert card.get_by_test_id("stMetricLabel").inner_text().strip() == "Tumour probability"
        assert card.get_by_test_id("stMetricValue").inner_text().strip() == expected(jpeg_bytes)
        assert "Label at the model's threshold" in card.inner_text()
        page.wait_for_function(IMAGES_RENDERED, arg=3)
        images = card.locator('[data-testid="stImage"] img')
        assert images.count() == 3
        assert all(images.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(3))
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
