"""Latency of explain() per method for one scan with the full ResNet50 (224 px, random init).

Uses a real MOS Testing scan when ../shared/data is present (else a synthetic
one). Prints the one-off explainer build time, then per method the median and
90th percentile of `--runs` calls after `--warmup` calls, next to the plain
classifier.predict latency. Target: Grad-CAM median under 300 ms. Run from the
repo root:

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_explain.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from core.explain import METHODS, explain  # noqa: E402
from core.scanio import read_scan  # noqa: E402
from core.model import Classifier, build_model  # noqa: E402

MOS = ROOT.parent / "shared" / "data" / "mos" / "Testing"


def a_scan() -> tuple[np.ndarray, str]:
    for path in sorted(MOS.glob("glioma/*.jpg"))[:1]:
        return read_scan(path).pixels, str(path.relative_to(MOS.parent.parent))
    rng = np.random.default_rng(0)
    scan = np.zeros((512, 512), dtype=np.uint8)
    scan[60:450, 80:430] = rng.integers(40, 220, size=(390, 350))
    return scan, "synthetic 512x512"


def timed(function, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    ms = np.array(times) * 1000
    return f"median {np.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms   min {ms.min():7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    scan, source = a_scan()
    classifier = Classifier(model=build_model(weights=None), card={"name": "bench-random-init"})
    print(f"scan: {source} {scan.shape}; ResNet50 224 px, random init; "
          f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    start = time.perf_counter()
    explain(classifier, scan, "gradcam")
    print(f"first explain() (clone + compile, once per classifier): {time.perf_counter() - start:.2f} s")

    for _ in range(args.warmup):
        classifier.predict([scan])
    print(f"{'classifier.predict':>18}: {summary(timed(lambda: classifier.predict([scan]), args.runs))}")
    for method in args.methods:
        for _ in range(args.warmup):
            explain(classifier, scan, method)
        runs = args.runs if method != "scorecam" else max(3, args.runs // 3)
        print(f"{method:>18}: {summary(timed(lambda: explain(classifier, scan, method), runs))}")


if __name__ == "__main__":
    main()
