"""Throughput of the recipe's training augmentation in one process.

Augments pre-cropped 224x224 uint8 images (real Br35H crops when ../shared/data
is present, else synthetic slices) with every recipe step on (histogram
matching p=0.3, one affine warp with flips, brightness) and prints images per
second. Target: >= 1000 img/s. Run from the repo root:

    .venv/bin/python bench/bench_augment.py [--images 200] [--seconds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from train.transforms.augment import recipe_augmentation, reference_histogram  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "br35h"


def real_crops(count: int) -> list[np.ndarray]:
    from core import crop_brain, prepare_crop, read_scan

    paths = sorted(DATA.glob("*/*.jpg"))[:: max(1, 3000 // count)][:count]
    return [prepare_crop(crop_brain(read_scan(path).pixels).image) for path in paths]


def synthetic_crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        image = np.zeros((224, 224), np.uint8)
        cv2.ellipse(image, (112, 112), (100, 90), 0, 0, 360, 1, -1)
        texture = cv2.GaussianBlur(rng.normal(110, 40, image.shape), (5, 5), 0)
        crops.append(np.where(image > 0, np.clip(texture, 1, 255), 0).astype(np.uint8))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="distinct crops to cycle through")
    parser.add_argument("--seconds", type=float, default=5.0, help="time to run")
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (0: OpenCV's default)")
    args = parser.parse_args()

    if args.threads:
        cv2.setNumThreads(args.threads)
    source = "Br35H crops" if DATA.is_dir() else "synthetic slices (no data at ../shared/data)"
    crops = real_crops(args.images) if DATA.is_dir() else synthetic_crops(args.images)
    augment = recipe_augmentation(reference_histogram(crops))
    rng = np.random.default_rng(0)

    for crop in crops[:20]:  # warm-up
        augment(crop, rng)
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < args.seconds:
        for crop in crops:
            augment(crop, rng)
        done += len(crops)
    rate = done / (time.perf_counter() - start)
    cpu_rate = done / (time.process_time() - cpu_start)
    print(f"{augment}")
    print(f"{len(crops)} {source}, 224x224 uint8, cv2 threads {cv2.getNumThreads()}")
    print(f"augmentation: {rate:,.0f} img/s wall clock, {cpu_rate:,.0f} img/s per CPU-second of this process")
    print("(on a shared machine the CPU-second figure is the closer estimate of one free core)")
    print(f"target >= 1000 img/s: {'met' if rate >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
