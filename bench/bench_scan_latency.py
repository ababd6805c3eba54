"""Per-scan latency of read_scan + crop_brain + to_model_input for a typical 512x512 JPEG.

Uses a real MOS Testing scan of 512x512 when ../shared/data is present (else a
synthetic JPEG) and prints the median and 90th percentile over the runs, for
the whole path and each step. Target: < 10 ms median. Run from the repo root:

    .venv/bin/python bench/bench_scan_latency.py [--runs 200]
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

from core import crop_brain, read_scan, to_model_input  # noqa: E402

MOS = ROOT.parent / "shared" / "data" / "mos" / "Testing"


def typical_jpeg() -> tuple[bytes, str]:
    """JPEG bytes of a 512x512 scan and where they came from."""
    for path in sorted(MOS.glob("*/*.jpg")):
        data = path.read_bytes()
        pixels = read_scan(data).pixels
        if pixels.shape[:2] == (512, 512):
            return data, f"{path.relative_to(MOS.parent.parent)} {pixels.shape}"
    image = np.zeros((512, 512), np.uint8)
    cv2.ellipse(image, (256, 250), (200, 170), 0, 0, 360, 1, -1)
    texture = cv2.GaussianBlur(np.random.default_rng(0).normal(110, 40, image.shape), (5, 5), 0)
    image = np.where(image > 0, np.clip(texture, 1, 255), 0).astype(np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes(), "synthetic 512x512 grey JPEG (no MOS data)"


def summary(name: str, seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"{name:<16} median {np.median(ms):6.2f} ms   p90 {np.percentile(ms, 90):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0: OpenCV's default)")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)

    data, source = typical_jpeg()
    steps: dict[str, list[float]] = {"read_scan": [], "crop_brain": [], "to_model_input": [], "total": []}
    cpu: list[float] = []
    for run in range(args.runs + 10):
        c0 = time.process_time()
        t0 = time.perf_counter()
        pixels = read_scan(data).pixels
        t1 = time.perf_counter()
        crop = crop_brain(pixels)
        t2 = time.perf_counter()
        tensor = to_model_input(crop.image)
        t3 = time.perf_counter()
        c1 = time.process_time()
        if run >= 10:
            cpu.append(c1 - c0)  # warm-up runs are not counted
            for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                steps[name].append(seconds)
    print(f"scan: {source}, box {crop.box}, fell_back {crop.fell_back}, input {tensor.shape} {tensor.dtype}")
    print(f"{args.runs} runs, cv2 threads {cv2.getNumThreads()}")
    for name, seconds in steps.items():
        print(summary(name, seconds))
    print(f"{'total CPU time':<16} median {np.median(cpu) * 1000:6.2f} ms   (all threads of this process;"
          " on a shared machine closer to a free machine's latency)")
    median = np.median(steps["total"]) * 1000
    print(f"target < 10 ms median: {'met' if median < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
