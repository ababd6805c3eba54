"""Fixtures for the trainer tests: small real data subsets, a private crop cache, and the real CLI.

Subsets are built in pytest's temporary folders from symlinks to ../shared/data (or copies
when a test plants modified files); nothing is written into the repository or ~/.cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` without `python -m`: make `core` and `train` importable
    sys.path.insert(0, str(REPO))

#: MOS Testing "notumor" files that are NOT byte-identical to any Br35H file (SOURCES.md: only 42 are not),
#: so they are genuinely different from any Br35H training subset.
MOS_NOTUMOR_NOT_IN_BR35H = ("Te-noTr_0000.jpg", "Te-noTr_0002.jpg", "Te-noTr_0003.jpg", "Te-noTr_0004.jpg",
                            "Te-noTr_0005.jpg", "Te-noTr_0006.jpg", "Te-no_0013.jpg", "Te-no_0015.jpg")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains real models through the CLI (minutes on 2 CPU cores)")


def link_files(sources, folder: Path) -> list[Path]:
    """Symlink each source file into `folder` (created); returns the links."""
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for source in sources:
        link = folder / Path(source).name
        link.symlink_to(source)
        links.append(link)
    return links


def first_files(folder: Path, count: int, start: int = 0) -> list[Path]:
    """A deterministic slice of the scans in one class folder (sorted by name)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert len(files) >= start + count, f"{folder} holds {len(files)} files, need {start + count}"
    return files[start : start + count]


def make_br35h_subset(shared_data: Path, root: Path, per_class: int, start: int = 0) -> Path:
    """root/{yes,no}/ with `per_class` real Br35H scans each."""
    for name in ("yes", "no"):
        link_files(first_files(shared_data / "br35h" / name, per_class, start), root / name)
    return root


def make_mos_subset(shared_data: Path, root: Path, tumour: int = 4, normal: int = 8) -> Path:
    """root/{glioma,pituitary,notumor}/: real MOS Testing scans that are not copies of Br35H files.

    `tumour` scans from each of glioma and pituitary (never Br35H copies), `normal` notumor scans.
    """
    mos = shared_data / "mos" / "Testing"
    for name in ("glioma", "pituitary"):
        link_files(first_files(mos / name, tumour), root / name)
    link_files([mos / "notumor" / name for name in MOS_NOTUMOR_NOT_IN_BR35H[:normal]], root / "notumor")
    return root


@pytest.fixture(scope="session")
def crop_cache(tmp_path_factory) -> Path:
    """A crop cache private to this test session (never ~/.cache)."""
    return tmp_path_factory.mktemp("crop_cache")


@pytest.fixture(scope="session")
def cli_env(crop_cache) -> dict:
    """Environment for trainer subprocesses: quiet TensorFlow, the private crop cache, no interrupt seam."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", BRAIN_MRI_CACHE=str(crop_cache))
    for name in ("BRAIN_MRI_INTERRUPT_AFTER_EPOCH", "KERAS_BACKEND", "XLA_FLAGS", "TF_CONFIG"):
        env.pop(name, None)
    return env


def run_module(module: str, args, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
