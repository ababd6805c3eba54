"""Every file of the public data sets reads with read_scan and crops with crop_brain."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from core.imaging.crop import crop_brain
from core.io import read_scan

#: Every scan folder under ../shared/data and its file count (../shared/data/SOURCES.md).
EXPECTED_FOLDERS = {
    "br35h/yes": 1500,
    "br35h/no": 1500,
    "nav/yes": 155,
    "nav/no": 98,
    "mos/Testing/glioma": 300,
    "mos/Testing/meningioma": 306,
    "mos/Testing/notumor": 405,
    "mos/Testing/pituitary": 300,
    "mos/Training/glioma": 1221,
    "mos/Training/meningioma": 1269,
    "mos/Training/notumor": 68,
    "mos/Training/pituitary": 1438,
    "lgg/yes": 607,
    "lgg/no": 1176,
    "lgg-t1pre/yes": 572,
    "lgg-t1pre/no": 1110,
    "lgg-t1post/yes": 545,
    "lgg-t1post/no": 1034,
}
EXPECTED_SCANS = 13604  # SOURCES.md's total
LGG_PATIENTS = 53
LGG_MASKS = 607
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
#: The LGG slices in plain and contrast T1: the same patients as lgg/ (SOURCES.md), and their patients' counts.
LGG_T1_FOLDERS = {"lgg-t1pre": 51, "lgg-t1post": 48}


def _files(folder):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def test_the_data_folders_hold_what_sources_md_says(shared_data):
    counts = {name: len(_files(shared_data / name)) for name in EXPECTED_FOLDERS}
    assert counts == EXPECTED_FOLDERS, "the shared data changed; update EXPECTED_FOLDERS from SOURCES.md"
    assert sum(counts.values()) == EXPECTED_SCANS
    # no scan folder outside the named ones (a new folder must be named here before it is trusted)
    top = {p.relative_to(shared_data).as_posix() for p in shared_data.glob("*/*")
           if p.is_dir() and p.parent.name != "mos"}
    top |= {p.relative_to(shared_data).as_posix() for p in shared_data.glob("mos/*/*") if p.is_dir()}
    assert top == set(EXPECTED_FOLDERS)


def test_lgg_manifest_names_every_slice_its_patient_and_mask(shared_data):
    with open(shared_data / "lgg" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {f"{sub}/{p.name}" for sub in ("yes", "no") for p in _files(shared_data / "lgg" / sub)}
    assert {row["file"] for row in rows} == files
    assert len({row["patient"] for row in rows}) == LGG_PATIENTS
    masks = {p.name for p in _files(shared_data / "lgg-masks")}
    assert len(masks) == LGG_MASKS
    for row in rows:
        tumour = row["file"].startswith("yes/")
        assert (row["label"] == "tumour") == tumour
        assert (int(row["mask_area_px"]) > 0) == tumour
        assert (row["file"].split("/")[1] in masks) == tumour


@pytest.mark.parametrize("folder", sorted(LGG_T1_FOLDERS))
def test_lgg_t1_manifests_match_the_flair_slices(shared_data, folder):
    """Each T1 slice names its patient and the FLAIR slice it was cut from, with that slice's label and outline."""
    with open(shared_data / "lgg" / "manifest.csv", newline="") as handle:
        flair = {f"lgg/{row['file']}": row for row in csv.DictReader(handle)}
    with open(shared_data / folder / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {f"{sub}/{p.name}" for sub in ("yes", "no") for p in _files(shared_data / folder / sub)}
    assert {row["file"] for row in rows} == files
    assert len({row["patient"] for row in rows}) == LGG_T1_FOLDERS[folder]
    for row in rows:
        twin = flair[row["flair_file"]]
        assert (row["patient"], row["label"], row["mask_area_px"]) == (
            twin["patient"], twin["label"], twin["mask_area_px"])
        assert row["file"].split("/")[0] == twin["file"].split("/")[0]


@pytest.mark.parametrize("folder", sorted({name.split("/")[0] for name in EXPECTED_FOLDERS}))
def test_every_shared_scan_reads_and_crops(shared_data, folder):
    files = [p for name in EXPECTED_FOLDERS if name.split("/")[0] == folder for p in _files(shared_data / name)]
    assert len(files) == sum(n for name, n in EXPECTED_FOLDERS.items() if name.split("/")[0] == folder)

    failures: list[str] = []
    formats: Counter[str] = Counter()
    fell_back = 0
    for path in files:
        where = str(path.relative_to(shared_data))
        try:
            scan = read_scan(path)
            crop = crop_brain(scan.pixels)
        except Exception as exc:  # noqa: BLE001 - collect every failure, then report them all
            failures.append(f"{where}: {type(exc).__name__}: {exc}")
            continue
        pixels = scan.pixels
        if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or pixels.shape[2:] == (3,)):
            failures.append(f"{where}: pixels {pixels.dtype} {pixels.shape}")
        if crop.image.size == 0:
            failures.append(f"{where}: empty crop {crop.box}")
        formats[scan.meta["format"]] += 1
        fell_back += crop.fell_back

    print(f"\n{folder}: formats by content {dict(formats)}; crop fell back {fell_back}")
    assert not failures, "\n".join(failures)
    if folder in ("br35h", "nav"):
        # 13 + 6 files named .jpg hold PNG (SOURCES.md); they must be read by content.
        assert formats["PNG"] >= {"br35h": 13, "nav": 6}[folder]
    if folder == "lgg":
        assert formats == {"PNG": len(files)}
    if folder in LGG_T1_FOLDERS:
        assert formats == {"JPEG": len(files)}
