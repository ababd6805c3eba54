"""Drive the app in headless Chromium (Playwright): shared by the browser tests and `bench/bench_app.py`; a test
helper, not part of the installed package.

Needs the `playwright` package (requirements-dev.txt) and Chromium at /usr/bin/chromium
(Debian's package) or at $CHROMIUM_PATH.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: JavaScript predicate: at least n images on the page have loaded.
IMAGES_RENDERED = """n => [...document.querySelectorAll('[data-testid="stImage"] img')]
                      .filter(img => img.complete && img.naturalWidth > 0).length >= n"""


def open_page(browser, url: str, timeout_ms: int):
    """(context, page) of a new browser session on the app, once its uploader is there."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    page.locator('input[type="file"]').wait_for(state="attached")
    return context, page


def upload(page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    """Hand one file to the page's uploader, from memory."""
    page.locator('input[type="file"]').set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def result_of(page, name: str):
    """The bordered container of one scan's result, once its probability is shown."""
    card = page.locator('[class*="st-key-scan-"]').filter(has=page.get_by_role("heading", name=name))
    card.get_by_test_id("stMetricValue").wait_for()
    return card
