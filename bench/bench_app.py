"""Benchmark the app through the real server and a headless browser. Prints figures; asserts nothing.

    python bench/bench_app.py [--model-dir DIR] [--scans 100] [--latency-runs 5] [--sessions 10]

1. Latency: time from handing one 512x512 JPEG to the page until its probability and
   three images are shown, after warm-up; plus the app's per-scan compute in-process
   (`app_support.analyse` + `explain_scan`, the calls the app makes) for comparison.
2. Load: `--sessions` browser sessions (default 10) each upload a different scan at once;
   each must show its own probability (checked against `app_support.analyse` in-process);
   p50/p95/max upload-to-result over the sessions and the server's memory are printed.
3. Memory: the server's resident memory (VmRSS) while one browser session uploads,
   views and removes `--scans` different scans one after another, printed every 20.

Model: --model-dir, else $BRAIN_MRI_MODEL_DIR, else the shipped model, else a temporary
random-init 224-px ResNet50 (same graph and cost as the real one; its numbers are meaningless).
Needs Chromium at /usr/bin/chromium (or $CHROMIUM_PATH) and the data under ../shared/data.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from brain_mri import server as server_tools  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, IMAGES_RENDERED, open_page, upload  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "br35h"


def jpeg_512(path: Path) -> bytes:
    """A real scan resized to 512x512 and encoded as JPEG, in memory."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").resize((512, 512)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def model_dir(choice: str | None, scratch: Path) -> tuple[Path, str]:
    from core.model.classifier import DEFAULT_MODEL_DIR, build_model, save_classifier

    for candidate, what in ((choice, "--model-dir"), (os.environ.get("BRAIN_MRI_MODEL_DIR"), "$BRAIN_MRI_MODEL_DIR"),
                            (str(DEFAULT_MODEL_DIR), "shipped model")):
        if candidate and (Path(candidate) / "model_card.json").is_file():
            return Path(candidate), what
    card = {"name": "bench-random-init", "threshold": 0.5, "data": "none (random initialisation)",
            "metrics": {}}
    return save_classifier(build_model(weights=None, input_size=224), card, scratch / "model"), \
        "temporary random-init 224-px ResNet50"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_process_latency(directory: Path, scans: list[bytes]) -> list[float]:
    import app_support
    from core.explain.registry import DEFAULT_METHOD
    from core.model.classifier import load_classifier

    classifier = load_classifier(directory)
    app_support.warm_up(classifier)
    times = []
    for data in scans:
        start = time.perf_counter()
        analysis = app_support.analyse(classifier, data, "scan.jpg")
        app_support.explain_scan(classifier, analysis, DEFAULT_METHOD, "tumour").overlay(0.4, on="crop")
        times.append(time.perf_counter() - start)
    return times


def show(page, name: str, data: bytes) -> float:
    """Upload one scan and wait for its probability and three rendered images; seconds taken."""
    card = page.locator('[class*="st-key-scan-"]').filter(has=page.get_by_role("heading", name=name))
    start = time.perf_counter()
    upload(page, name, data)
    card.get_by_test_id("stMetricValue").wait_for()
    shown = time.perf_counter() - start
    page.wait_for_function(IMAGES_RENDERED, arg=3)
    if os.environ.get("BENCH_VERBOSE"):
        print(f"    {name}: probability after {shown:.2f} s, images after {time.perf_counter() - start:.2f} s")
    return time.perf_counter() - start


def expected_texts(directory: Path, scans: dict[str, bytes]) -> dict[str, str]:
    """The probability text each scan must show, computed in-process through the app's own calls."""
    import app_support
    from core.model.classifier import load_classifier

    classifier = load_classifier(directory)
    return {name: f"{app_support.analyse(classifier, data, name).probability:.1%}" for name, data in scans.items()}


def concurrent_sessions(browser, url: str, scans: dict[str, bytes], expected: dict[str, str]) -> None:
    """Open one session per scan, upload all at once, poll until each shows its result; print the figures."""
    sessions = {name: open_page(browser, url, 600_000) for name in scans}
    try:
        started = {}
        for name, (_, page) in sessions.items():
            started[name] = time.perf_counter()
            upload(page, name, scans[name])
        done, wrong = {}, []
        while len(done) < len(sessions):
            for name, (_, page) in sessions.items():
                value = page.locator('[class*="st-key-scan-"]').get_by_test_id("stMetricValue")
                if name not in done and value.count():
                    done[name] = time.perf_counter() - started[name]
                    shown = value.first.inner_text().strip()
                    if shown != expected[name] or any(other in page.inner_text("body")
                                                      for other in scans if other != name):
                        wrong.append(f"{name}: shows {shown}, expected {expected[name]}")
            time.sleep(0.1)
        times = sorted(done.values())
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{len(sessions)} sessions at once, upload -> own result: p50 {statistics.median(times):.2f} s, "
              f"p95 {p95:.2f} s, max {times[-1]:.2f} s; {len(sessions) - len(wrong)} of {len(sessions)} correct")
        for line in wrong:
            print(f"  WRONG: {line}")
    finally:
        for context, _ in sessions.values():
            context.close()


def remove_all(page) -> None:
    while page.get_by_test_id("stFileChipDeleteBtn").count():
        page.get_by_test_id("stFileChipDeleteBtn").first.locator("button").click()
        page.wait_for_timeout(100)
    page.locator('[class*="st-key-scan-"]').first.wait_for(state="detached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir")
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=10, help="browser sessions uploading at once")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    files = sorted((DATA / "yes").glob("*.jpg"))[: args.scans] + sorted((DATA / "no").glob("*.jpg"))
    files = files[: max(args.scans, args.latency_runs) + 1]
    with tempfile.TemporaryDirectory() as scratch:
        directory, what = model_dir(args.model_dir, Path(scratch))
        print(f"model: {what} ({directory}); cpu cores: {os.cpu_count()}; load average: {os.getloadavg()}")
        latency_scans = [jpeg_512(f) for f in files[1 : args.latency_runs + 1]]
        compute = in_process_latency(directory, latency_scans)
        print(f"in-process per-scan compute (read, crop, predict, Grad-CAM, overlay) for a 512x512 JPEG: "
              f"median {statistics.median(compute):.3f} s, max {max(compute):.3f} s over {len(compute)}")

        port = server_tools.free_port()
        env = {**os.environ, "BRAIN_MRI_MODEL_DIR": str(directory)}
        log = Path(scratch) / "streamlit.log"
        server = server_tools.start(port, log, env)
        try:
            url = f"http://127.0.0.1:{port}"
            server_tools.wait_healthy(url, server, log)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                _, page = open_page(browser, url, 300_000)
                warm = show(page, "warm-up.jpg", jpeg_512(files[0]))
                remove_all(page)
                print(f"first scan (model already warmed up at load): {warm:.2f} s; "
                      f"server RSS {rss_mb(server.pid):.0f} MB")
                times = []
                for i, data in enumerate(latency_scans):
                    times.append(show(page, f"latency-{i}.jpg", data))
                    remove_all(page)
                print(f"upload -> probability + 3 images in the browser, 512x512 JPEG, after warm-up: "
                      f"median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)}")
                load = {f"s{i:02d}.jpg": jpeg_512(files[(i + 1) % len(files)]) for i in range(args.sessions)}
                concurrent_sessions(browser, url, load, expected_texts(directory, load))
                print(f"server RSS after the concurrent sessions: {rss_mb(server.pid):.0f} MB")

                print(f"memory: server RSS while one session views {args.scans} scans one after another")
                start = time.perf_counter()
                for i in range(args.scans):
                    show(page, f"m{i:03d}.jpg", jpeg_512(files[i % len(files)]))
                    remove_all(page)
                    if i == 0 or (i + 1) % 20 == 0:
                        print(f"  after {i + 1:3d} scans: {rss_mb(server.pid):.0f} MB "
                              f"({time.perf_counter() - start:.0f} s)", flush=True)
                browser.close()
        finally:
            server_tools.stop(server)


if __name__ == "__main__":
    main()
