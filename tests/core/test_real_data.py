"""Every file of the public data sets reads with read_scan and crops with crop_brain."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.crop import crop_brain
from core.io import read_scan

SETS = ("br35h", "nav", "mos")
EXPECTED_FILES = 4564  # see ../shared/data/SOURCES.md
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def test_every_shared_scan_reads_and_crops(shared_data):
    files = sorted(p for name in SETS for p in (shared_data / name).rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    assert len(files) == EXPECTED_FILES, "the shared data changed; update EXPECTED_FILES"

    failures: list[str] = []
    formats: Counter[str] = Counter()
    fell_back: Counter[str] = Counter()
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
        fell_back[where.split("/")[0]] += crop.fell_back

    print(f"\nformats by content: {dict(formats)}; crop fell back: {dict(fell_back)}")
    assert not failures, "\n".join(failures)
    # 19 files named .jpg hold PNG (SOURCES.md); they must be read by content.
    assert formats["PNG"] >= 19
