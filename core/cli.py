"""Command line: run the classifier over many scans.

    python -m core explain-eval [--data DIR] [--masks DIR] [--methods M ...]   (see core.explain.metrics.evaluation)
    python -m core predict PATH [PATH ...] [--model DIR] [--csv OUT.csv] [--pdf OUT.pdf]
                           [--heatmaps DIR] [--method M] [--target T] [--batch-size N] [--no-tta]
                           [--series]

PATHs are files or folders; folders are walked recursively (sorted; hidden
files and folders skipped), and every other file counts as a scan: files
that cannot be read get a row with the error, never stop the run.
One CSV row per scan (to OUT.csv, or stdout without --csv), see `core.predict.batch`:

    path, status, probability, probability_low, probability_high, raw_probability,
    label, type, p_glioma, p_meningioma, p_pituitary, threshold,
    box_x0, box_y0, box_x1, box_y1, crop_fell_back, heatmap, error

status is ok, not_brain_mri (the input check refused it: no probability; error
says why) or unreadable. probability is calibrated; low/high are its range
over test-time views; label is tumour, no_tumour or uncertain. type (glioma,
meningioma, pituitary, or uncertain) and its probabilities are filled only when
the label is tumour and the model has a type head (`core.model.tumour_type`). With --series,
DICOM files are grouped by series and ordered by slice position; each series
ends with a summary row ("series:<id> (...)", its most suspicious slice), and
refused slices at either end of a series are volume_edge (not assessed).
--pdf writes one page per assessed scan (core.report.pdf).

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
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from core.explain.registry import DEFAULT_METHOD, method_names
from core.io.atomic import atomic_path
from core.model.labels import LABELS, TUMOUR
from core.predict.assessment import UNCERTAIN
from core.predict.batch import (
    COLUMNS,
    NOT_BRAIN_MRI,
    OK,
    UNREADABLE,
    VOLUME_EDGE,
    Outputs,
    Row,
    UsageError,
    find_sources,
    predict_rows,
    series_predict_rows,
)

BATCH_SIZE = 32
#: Scans one PDF report may hold (pages stay in memory until it is written).
MAX_PDF_SCANS = 500


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
    predict.add_argument("--method", choices=method_names(), default=DEFAULT_METHOD,
                         help=f"heatmap method (default: {DEFAULT_METHOD})")
    predict.add_argument("--target", choices=LABELS, default=TUMOUR,
                         help="what the heatmap is evidence for (default: tumour)")
    predict.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                         help=f"scans read and predicted at once (default: {BATCH_SIZE})")
    predict.add_argument("--no-tta", dest="tta", action="store_false",
                         help="one view per scan: 4x faster, no probability range")
    predict.add_argument("--series", action="store_true",
                         help="group DICOM files (and .zip archives of them) by series: one row per slice in "
                              "slice order, then a summary row per series")
    predict.add_argument("--pdf", metavar="FILE",
                         help=f"also write a PDF report, one page per scan (at most {MAX_PDF_SCANS} scans)")
    from core.explain.metrics import command as explain_eval

    explain_eval.add_arguments(commands.add_parser(
        "explain-eval", help="measure the explanation maps against LGG tumour outlines",
        description=explain_eval.__doc__.split("\n\n")[0]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "explain-eval":
        from core.explain.metrics import command as explain_eval

        return explain_eval.run(args)
    try:
        return predict_command(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _check_predict_arguments(args: argparse.Namespace, sources) -> None:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1. Received: {args.batch_size}")
    for option in ("csv", "pdf"):
        if getattr(args, option) and Path(getattr(args, option)).is_dir():
            raise UsageError(f"--{option} must be a file, not a folder: {getattr(args, option)}")
    if args.pdf and len(sources) > MAX_PDF_SCANS:
        raise UsageError(f"--pdf holds at most {MAX_PDF_SCANS} scans; {len(sources)} were given. "
                         "Split the folder, or leave out --pdf.")


def predict_command(args: argparse.Namespace) -> int:
    sources = find_sources(args.paths)
    _check_predict_arguments(args, sources)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.model.classifier import load_classifier

    try:
        classifier = load_classifier(args.model)
    except (OSError, ValueError) as error:
        print(f"error: cannot load the model: {error}", file=sys.stderr)
        return 1
    outputs = Outputs(classifier, Path(args.heatmaps) if args.heatmaps else None, bool(args.pdf), args.method,
                      args.target)
    if args.series:
        rows = series_predict_rows(classifier, sources, outputs, args.tta)
    else:
        rows = predict_rows(classifier, sources, args.batch_size, outputs, args.tta)
    counts = _write_csv(args.csv, rows, len(sources))
    if outputs.pages:
        from core.report.pdf import write_pdf

        write_pdf(outputs.pages, classifier.card, args.pdf, notes=outputs.notes)
    series = f"{counts['series']} series, " if args.series else ""
    edges = f"{counts[VOLUME_EDGE]} at the ends of a volume not assessed, " if args.series else ""
    print(f"{series}{counts[OK]} scans assessed ({counts[TUMOUR]} tumour, {counts[UNCERTAIN]} uncertain), "
          f"{edges}{counts[NOT_BRAIN_MRI]} not brain MRI slices, {counts[UNREADABLE]} unreadable "
          f"(threshold {classifier.calibration([classifier.threshold])[0]:.3g}"
          f"{'' if classifier.calibration.method == 'none' else ', calibrated'}).", file=sys.stderr)
    return 0


def _write_csv(path: str | None, rows: Iterator[Row], total: int) -> Counter:
    """Write every row (atomically to `path`, or to stdout); returns counts of statuses and labels."""
    counts: Counter = Counter()
    with _open_csv(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in _progress(rows, total):
            writer.writerow(row.as_csv())
            kind = "series" if row.path.startswith("series:") else row.status
            counts[kind] += 1
            counts[row.label] += kind != "series"
    return counts


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
