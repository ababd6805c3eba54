"""Fixtures shared by every test package, and the CI rule that a skipped test is a failed one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The read-only public data sets, beside the repository (see ../shared/data/SOURCES.md).
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
#: Set by .ci/run: a test that would skip for want of data, Chromium or a package fails instead.
STRICT_ENV = "BRAIN_MRI_STRICT_TESTS"
#: Skip reasons that stay skips under CI: they depend on optional plugins or on peer models installed by hand
#: (README, "Side by side"), not on the set-up. Such a skip's reason starts with "optional:".
OPTIONAL_SKIPS = ("a decoder for", "optional:")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared data folder; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA.resolve()} (they live beside the "
                    "repository, never inside it; see README)")
    return SHARED_DATA.resolve()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get(STRICT_ENV) and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(allowed in reason for allowed in OPTIONAL_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (f"{item.nodeid} would have skipped ({reason}), but {STRICT_ENV} is set: CI must have "
                       "../shared/data, Chromium and every test package. Fix the set-up, not the test.")


def pytest_collection_modifyitems(config, items):
    """Test files holding slow tests first, the trainer's (the longest) before the others, order otherwise kept:
    with two workers, each taking whole files (scripts/run_tests.sh), the long end-to-end runs start at once and
    the short tests fill in around them, instead of one long file running alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in slow_files, "train" not in item.path.parts))
