"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The read-only public data sets, beside the repository (see ../shared/data/SOURCES.md).
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared data folder; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA.resolve()} (they live beside the "
                    "repository, never inside it; see README)")
    return SHARED_DATA.resolve()
