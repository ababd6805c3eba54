"""Throughput of `python -m core predict` in scans per second over MOS Testing scans.

Saves a full ResNet50 (224 px, random init) with save_classifier into a temporary
folder, then runs the real command line twice: on 1 scan (start-up: Python,
TensorFlow, model load) and on `--scans` scans (taken evenly from the four MOS
classes). Prints the end-to-end rate and the steady-state rate with start-up
subtracted. Run from the repo root:

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_predict_cli.py [--scans 200] [--heatmaps]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MOS = ROOT.parent / "shared" / "data" / "mos" / "Testing"


def mos_scans(count: int) -> list[Path]:
    """`count` scans, taken round-robin from the MOS class folders (sorted)."""
    classes = [sorted(folder.glob("*.jpg")) for folder in sorted(MOS.iterdir()) if folder.is_dir()]
    picked = [paths[i] for i in range(max(map(len, classes))) for paths in classes if i < len(paths)]
    return picked[:count]


def run(paths: list[Path], model: Path, work: Path, extra: list[str]) -> tuple[float, int]:
    """Wall seconds of one CLI run, and its CSV row count."""
    out = work / "out.csv"
    command = [sys.executable, "-m", "core", "predict", *map(str, paths), "--model", str(model),
               "--csv", str(out), *extra]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"CLI failed ({result.returncode}): {result.stderr[-2000:]}")
    print("   ", result.stderr.strip().splitlines()[-1])
    with open(out, newline="") as handle:
        return seconds, sum(1 for _ in csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--heatmaps", action="store_true", help="also write Grad-CAM overlays")
    args = parser.parse_args()
    if not MOS.is_dir():
        raise SystemExit(f"MOS Testing not found at {MOS}")

    from core.model.classifier import build_model, save_classifier

    paths = mos_scans(args.scans)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = save_classifier(build_model(weights=None), {"name": "bench-random-init"}, work / "model")
        extra = ["--heatmaps", str(work / "heatmaps")] if args.heatmaps else []
        print(f"{len(paths)} MOS Testing scans; ResNet50 224 px random init; heatmaps: {args.heatmaps}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        startup, _ = run(paths[:1], model, work, extra)
        total, rows = run(paths, model, work, extra)
    assert rows == len(paths), (rows, len(paths))
    print(f"start-up (1 scan): {startup:.1f} s")
    print(f"{rows} scans: {total:.1f} s end to end = {rows / total:.2f} scans/s; "
          f"steady state {(rows - 1) / max(total - startup, 1e-9):.2f} scans/s")


if __name__ == "__main__":
    main()
