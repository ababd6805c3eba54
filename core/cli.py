"""Command line: run the classifier over many scans.

    python -m core predict PATH [PATH ...] [--model DIR] [--csv OUT.csv]
                           [--heatmaps DIR] [--method M] [--target T] [--batch-size N]

PATHs are files or folders; folders are walked recursively (sorted; hidden
files and folders skipped), and every other file counts as a scan: files
that cannot be read get a row with the error, never stop the run.
One CSV row per scan (to OUT.csv, or stdout without --csv):

    path, probability, label, threshold, box_x0, box_y0, box_x1, box_y1,
    crop_fell_back, heatmap, error

Scans are read, cropped and preprocessed in batches of --batch-size, so a
folder of thousands of scans runs in bounded memory. A progress bar is drawn
on stderr when it is a terminal; a summary line ends the run.

Exit status: 0 when it ran (even if some files failed), 1 when the model
cannot be loaded, 2 for usage errors, missing paths or no files at all.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO


from core.atomic import atomic_path
from core.explain.registry import method_names
from core.labels import LABELS, TUMOUR, label_for

COLUMNS = (
    "path", "probability", "label", "threshold",
    "box_x0", "box_y0", "box_x1", "box_y1", "crop_fell_back", "heatmap", "error",
)
BATCH_SIZE = 32


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


@dataclass
class Source:
    """A file to predict, and the name its heatmap gets (relative, POSIX style)."""

    path: Path
    relative: str


@dataclass
class Row:
    """One scan's result; `error` is set (and the prediction empty) when it could not be read."""

    path: str
    probability: float | None = None
    label: str = ""
    threshold: float | None = None
    box: tuple[int, int, int, int] | None = None
    fell_back: bool | None = None
    heatmap: str = ""
    error: str = ""

    def as_csv(self) -> list[str]:
        box = [str(v) for v in self.box] if self.box else ["", "", "", ""]
        return [
            self.path,
            "" if self.probability is None else f"{self.probability:.6f}",
            self.label,
            "" if self.threshold is None else f"{self.threshold:g}",
            *box,
            "" if self.fell_back is None else str(self.fell_back).lower(),
            self.heatmap,
            self.error,
        ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Brain-tumour detector tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict", help="predict tumour / no tumour for scans and folders of scans",
        description="Predict every scan in the given files and folders (walked recursively).",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="scan files or folders")
    predict.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    predict.add_argument("--csv", metavar="OUT.csv", help="write the table here (default: stdout)")
    predict.add_argument("--heatmaps", metavar="DIR", help="write one overlay PNG per scan under DIR")
    predict.add_argument("--method", choices=method_names(), default="gradcam",
                         help="heatmap method (default: gradcam)")
    predict.add_argument("--target", choices=LABELS, default=TUMOUR,
                         help="what the heatmap is evidence for (default: tumour)")
    predict.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                         help=f"scans read and predicted at once (default: {BATCH_SIZE})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return predict_command(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def predict_command(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1. Received: {args.batch_size}")
    sources = find_sources(args.paths)
    if args.csv and Path(args.csv).is_dir():
        raise UsageError(f"--csv must be a file, not a folder: {args.csv}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.model import load_classifier

    try:
        classifier = load_classifier(args.model)
    except (OSError, ValueError) as error:
        print(f"error: cannot load the model: {error}", file=sys.stderr)
        return 1

    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    if heatmaps is not None:
        heatmaps.mkdir(parents=True, exist_ok=True)
    with _open_csv(args.csv) as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        counts = {"read": 0, "failed": 0, "tumour": 0}
        for row in _progress(predict_rows(classifier, sources, args.batch_size, heatmaps, args.method,
                                          args.target), len(sources)):
            writer.writerow(row.as_csv())
            counts["failed" if row.probability is None else "read"] += 1
            counts["tumour"] += row.label == TUMOUR
    print(
        f"{counts['read']} scans read, {counts['failed']} failed, "
        f"{counts['tumour']} predicted tumour (threshold {classifier.threshold:g}).",
        file=sys.stderr,
    )
    return 0


def find_sources(paths: Iterable[str]) -> list[Source]:
    """Files named and files under folders named, in order; raises UsageError for missing paths or none."""
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        raise UsageError("no such file or folder: " + ", ".join(missing))
    sources: list[Source] = []
    for given in paths:
        root = Path(given)
        if root.is_dir():
            prefix = root.resolve().name or "root"
            sources += [Source(path, f"{prefix}/{path.relative_to(root).as_posix()}") for path in walk(root)]
        else:
            sources.append(Source(root, root.name))
    if not sources:
        raise UsageError("no files found in " + ", ".join(paths))
    return sources


def walk(folder: Path) -> Iterator[Path]:
    """Regular files under `folder` in sorted path order (as `find | sort`), skipping hidden names."""
    with os.scandir(folder) as scanner:
        entries = sorted((entry for entry in scanner if not entry.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk(Path(entry.path))
        elif entry.is_file():
            yield Path(entry.path)


def predict_rows(classifier, sources: Sequence[Source], batch_size: int, heatmaps: Path | None,
                 method: str, target: str) -> Iterator[Row]:
    """One Row per source, in order, reading `batch_size` scans at a time."""
    names = _HeatmapNames(heatmaps) if heatmaps is not None else None
    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        read = [_read(source.path, classifier.input_size) for source in batch]
        prepared = [scan for _, scan in read if scan is not None]
        probabilities = iter(classifier.predict_prepared(prepared))
        for source, (row, scan) in zip(batch, read):
            if scan is not None:
                row.probability = float(next(probabilities))
                row.threshold = classifier.threshold
                row.label = label_for(row.probability, classifier.threshold)
                if names is not None:
                    _write_heatmap(classifier, row, scan, names.next(source.relative), method, target)
            yield row


def _read(path: Path, size: int):
    """(row, PreparedScan); the scan is None (and row.error set) when the file cannot be used."""
    from core.pipeline import prepare_scan
    from core.scanio import ScanError

    row = Row(path=str(path))
    try:
        scan = prepare_scan(path, size)
    except ScanError as error:
        row.error = str(error)
        return row, None
    except Exception as error:  # noqa: BLE001 - one bad file must never stop a run over thousands
        row.error = f"{type(error).__name__}: {error}"
        return row, None
    row.box, row.fell_back = scan.crop.box, scan.crop.fell_back
    return row, scan


def _write_heatmap(classifier, row: Row, scan, target_path: Path, method: str, target: str) -> None:
    """Explain one prepared scan and save its overlay as PNG; failures go to the row's error column."""
    import cv2

    from core.explain import explain

    try:
        overlay = explain(classifier, scan, method=method, target=target).overlay(on="scan")
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target_path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {target_path}")
    except Exception as error:  # noqa: BLE001 - keep the prediction, report the heatmap failure
        row.error = f"heatmap: {type(error).__name__}: {error}"
        return
    row.heatmap = str(target_path)


class _HeatmapNames:
    """Output paths `DIR/<relative path>.png`, made unique with -2, -3 ... when names collide."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used: set[str] = set()

    def next(self, relative: str) -> Path:
        stem, number = relative + ".png", 1
        candidate = stem
        while candidate.lower() in self.used:
            number += 1
            candidate = f"{relative}-{number}.png"
        self.used.add(candidate.lower())
        return self.folder / candidate


def _progress(rows: Iterator[Row], total: int) -> Iterator[Row]:
    """Wrap `rows` in a tqdm bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty():
        return rows
    from tqdm import tqdm

    return tqdm(rows, total=total, unit="scan", file=sys.stderr)


@contextlib.contextmanager
def _open_csv(path: str | None) -> Iterator[TextIO]:
    """The CSV file (newline='' as csv wants) or stdout, never closing stdout.

    The file is written under a temporary name and renamed into place when the
    run completes, so an interrupted run never leaves a half-written CSV.
    """
    if path is None:
        yield sys.stdout
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        yield handle
