"""Latency of explain() per registered method for one scan with the full ResNet50 (224 px).

Uses the shipped model (or `--model DIR`; a random-init ResNet50 when there is
none) and a real MOS Testing scan when ../shared/data is present (else a
synthetic one). Prints the one-off explainer build time, then for every method
in the registry the median and 90th percentile of `--runs` calls after
`--warmup` calls (slow methods, Score-CAM and occlusion, a fifth of the runs),
next to the plain classifier.predict latency, and the load average (the CPUs
may be shared). Target: the default method (explain()'s default,
core.explain.DEFAULT_METHOD) under 150 ms per scan on 2 cores, on the card's
layer. `--layer NAME` times another layer (e.g. conv4_block6_out). Prints
figures, asserts nothing. Run from the repo root:

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_explain.py [--runs 15] [--methods gradcam hirescam]
        [--layer conv4_block6_out]
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from core import Classifier, build_model, explain, load_classifier, read_scan  # noqa: E402
from core.explain import METHODS  # noqa: E402
from core.model.classifier import LAST_CONV_LAYER  # noqa: E402

MOS = ROOT.parent / "shared" / "data" / "mos" / "Testing"
#: explain()'s default method: the one the target applies to.
DEFAULT_METHOD = inspect.signature(explain).parameters["method"].default
TARGET_MS = 150.0
SLOW = ("scorecam", "occlusion")


def a_scan() -> tuple[np.ndarray, str]:
    for path in sorted(MOS.glob("glioma/*.jpg"))[:1]:
        return read_scan(path).pixels, str(path.relative_to(MOS.parent.parent))
    rng = np.random.default_rng(0)
    scan = np.zeros((512, 512), dtype=np.uint8)
    scan[60:450, 80:430] = rng.integers(40, 220, size=(390, 350))
    return scan, "synthetic 512x512"


def a_classifier(model_dir: str | None) -> tuple[Classifier, str]:
    try:
        classifier = load_classifier(model_dir)
        return classifier, f"model {classifier.model_id}"
    except FileNotFoundError:
        return Classifier(model=build_model(weights=None), card={"name": "bench-random-init"}), "random-init ResNet50"


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
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--layer", help="layer to explain (default: the model card's)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    scan, source = a_scan()
    classifier, model = a_classifier(args.model)
    print(f"scan: {source} {scan.shape}; {model}, {classifier.input_size} px; TF {tf.__version__}, "
          f"Keras {keras.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    layer = args.layer or classifier.card.explain_layer or LAST_CONV_LAYER
    start = time.perf_counter()
    explain(classifier, scan, DEFAULT_METHOD, layer=layer)
    print(f"first explain() on {layer} (clone + compile, once per classifier and layer): "
          f"{time.perf_counter() - start:.2f} s")

    for _ in range(args.warmup):
        classifier.predict([scan])
    print(f"{'classifier.predict':>18}: {summary(timed(lambda: classifier.predict([scan]), args.runs))}")
    medians = {}
    for method in args.methods:
        runs = max(3, args.runs // 5) if method in SLOW else args.runs
        for _ in range(args.warmup if method not in SLOW else 1):
            explain(classifier, scan, method, layer=layer)
        times = timed(lambda: explain(classifier, scan, method, layer=layer), runs)
        medians[method] = float(np.median(times) * 1000)
        print(f"{method:>18}: {summary(times)}")
    if DEFAULT_METHOD in medians:
        verdict = "met" if medians[DEFAULT_METHOD] < TARGET_MS else "NOT met"
        print(f"default method {DEFAULT_METHOD} on {layer}: median {medians[DEFAULT_METHOD]:.0f} ms per scan, target < "
              f"{TARGET_MS:.0f} ms: {verdict} (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
