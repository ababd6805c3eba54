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
    for name in ("BRAIN_MRI_INTERRUPT_AFTER_EPOCH", "BRAIN_MRI_EAGER", "KERAS_BACKEND", "XLA_FLAGS", "TF_CONFIG"):
        env.pop(name, None)
    return env


def run_module(module: str, args, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def make_lgg_subset(shared_data: Path, root: Path, patients: int = 4, per_class: int = 3,
                    folder: str = "lgg") -> Path:
    """root/{yes,no}/ + manifest.csv: `per_class` tumour and no-tumour LGG slices of each of the first
    `patients` patients (sorted) that have enough of both, from `folder` (lgg, lgg-t1pre or lgg-t1post)."""
    import csv

    lgg = shared_data / folder
    with open(lgg / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_patient: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        by_patient.setdefault(row["patient"], {}).setdefault(row["file"].split("/")[0], []).append(row)
    chosen = [p for p in sorted(by_patient) if all(len(by_patient[p].get(c, [])) >= per_class for c in ("yes", "no"))]
    kept = [row for p in chosen[:patients] for c in ("yes", "no")
            for row in sorted(by_patient[p][c], key=lambda r: r["file"])[:per_class]]
    for row in kept:
        link_files([lgg / row["file"]], root / row["file"].split("/")[0])
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return root


def make_loso_sources(shared_data: Path, root: Path) -> dict[str, Path]:
    """Three small real sources for leave-one-source-out tests.

    br35h: 10 + 10 Br35H scans. mos: 5 glioma + 5 pituitary + 8 notumor MOS Testing scans that are not
    Br35H files, plus two planted exact copies of br35h scans (glioma/copy_of_br35h.jpg,
    notumor/copy_of_br35h.jpg) that the pool must attribute to br35h. lgg: 3 + 3 slices of each of 4 patients.
    """
    import shutil

    br35h = make_br35h_subset(shared_data, root / "br35h", per_class=10)
    mos = make_mos_subset(shared_data, root / "mos", tumour=5, normal=8)
    shutil.copyfile(sorted((br35h / "yes").iterdir())[2].resolve(), mos / "glioma" / "copy_of_br35h.jpg")
    shutil.copyfile(sorted((br35h / "no").iterdir())[4].resolve(), mos / "notumor" / "copy_of_br35h.jpg")
    lgg = make_lgg_subset(shared_data, root / "lgg")
    return {"br35h": br35h, "mos": mos, "lgg": lgg}
