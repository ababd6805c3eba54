"""Predict many scan files: find them, read and check them, assess them in batches, write overlays.

`python -m core predict` is a thin layer over :func:`predict_rows`: one :class:`Row`
per file, in order, `batch_size` scans in memory at a time. Every file is read
by content (`core.imaging.pipeline`), checked (`core.quality.input_check`: anything that does
not look like a brain MR slice gets no probability), and assessed
(`core.predict.assessment`: calibrated probability, its spread over test-time views,
and "uncertain" instead of a label near the threshold).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from core.model.tumour_type import TypeCall
from core.predict.status import NOT_BRAIN_MRI, OK, UNREADABLE, VOLUME_EDGE  # noqa: F401 - re-exported

COLUMNS = (
    "path", "status", "probability", "probability_low", "probability_high", "raw_probability", "label",
    "type", "p_glioma", "p_meningioma", "p_pituitary", "threshold", "box_x0", "box_y0", "box_x1", "box_y1",
    "crop_fell_back", "heatmap", "error",
)


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


@dataclass
class Source:
    """A file to predict, and the name its heatmap gets (relative, POSIX style)."""

    path: Path
    relative: str


@dataclass
class Row:
    """One file's result. status: "ok", "not_brain_mri" (error holds the reason), "unreadable", or with --series
    "volume_edge" (refused at an end of a series whose other slices passed; see
    `core.predict.series.mark_volume_edges`).

    probability / low / high: calibrated, in [0, 1], only when status is ok; raw: the model's own output.
    label: "tumour", "no_tumour" or "uncertain"; threshold: the card's threshold, calibrated.
    tumour_type: a `core.model.tumour_type.TypeCall` when the label is tumour and the model has a type head (CSV:
    `type` is the type, or "uncertain"; p_glioma, p_meningioma, p_pituitary its probabilities).
    """

    path: str
    status: str = OK
    probability: float | None = None
    low: float | None = None
    high: float | None = None
    raw: float | None = None
    label: str = ""
    tumour_type: TypeCall | None = None
    threshold: float | None = None
    box: tuple[int, int, int, int] | None = None
    fell_back: bool | None = None
    heatmap: str = ""
    error: str = ""

    def as_csv(self) -> list[str]:
        def number(value):
            return "" if value is None else f"{value:.6f}"

        box = [str(v) for v in self.box] if self.box else ["", "", "", ""]
        call = self.tumour_type
        typed = ["", "", "", ""] if call is None else [
            "uncertain" if call.uncertain else call.type, *(number(p) for p in call.probabilities)]
        return [self.path, self.status, number(self.probability), number(self.low), number(self.high),
                number(self.raw), self.label, *typed, "" if self.threshold is None else f"{self.threshold:g}", *box,
                "" if self.fell_back is None else str(self.fell_back).lower(), self.heatmap, self.error]

    def assessed(self, assessment) -> None:
        """Fill the prediction from a `core.predict.assessment.Assessment`."""
        self.probability, self.low, self.high = assessment.probability, assessment.low, assessment.high
        self.raw, self.threshold, self.label = assessment.raw, assessment.threshold, assessment.verdict
        self.tumour_type = assessment.tumour_type


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


class Outputs:
    """What is made besides the CSV for every assessed scan: overlay PNGs (`--heatmaps`), PDF pages (`--pdf`).

    Each scan is explained once for both. A failure to explain or write is put in the row's
    error column; the prediction stands. notes: lines for the PDF's summary page (series' volume edges).
    """

    def __init__(self, classifier, heatmaps: Path | None, pdf: bool, method: str, target: str) -> None:
        self.classifier, self.method, self.target = classifier, method, target
        self.names = _HeatmapNames(heatmaps) if heatmaps is not None else None
        self.pages: list | None = [] if pdf else None
        self.notes: list[str] = []

    def add(self, row: Row, scan, relative: str, digest: str | None = None) -> None:
        """Explain one assessed scan; write its overlay under `relative`.png and/or keep its PDF page."""
        if self.names is None and self.pages is None:
            return
        from core.explain import explain

        try:
            explanation = explain(self.classifier, scan, method=self.method, target=self.target)
            if self.names is not None:
                row.heatmap = str(_write_overlay(explanation, self.names.next(relative)))
            if self.pages is not None:
                self.pages.append(_page(row, scan, explanation, digest))
        except Exception as error:  # noqa: BLE001 - keep the prediction, report what failed
            row.error = f"heatmap: {type(error).__name__}: {error}"


def _write_overlay(explanation, target_path: Path) -> Path:
    import cv2

    target_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target_path), cv2.cvtColor(explanation.overlay(on="scan"), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {target_path}")
    return target_path


def _page(row: Row, scan, explanation, digest: str | None):
    from core.model.classifier import sha256_of
    from core.model.tumour_type import describe_type
    from core.report.pdf import ReportPage

    return ReportPage.from_scan(row.path, digest or sha256_of(row.path), scan, row.probability, row.threshold,
                                explanation, verdict=row.label, uncertainty=(row.low, row.high),
                                tumour_type=describe_type(row.tumour_type))


def predict_rows(classifier, sources: Sequence[Source], batch_size: int, outputs: Outputs,
                 tta: bool = True) -> Iterator[Row]:
    """One Row per source, in order, reading `batch_size` scans at a time."""
    from core.predict.analysis import analyse_prepared

    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        read = [_read(source.path, classifier.input_size) for source in batch]
        results = iter(analyse_prepared(classifier, [scan for row, scan in read if row.status == OK], tta=tta))
        for source, (row, scan) in zip(batch, read):
            if row.status == OK:
                check, assessment = next(results)
                if assessment is None:
                    row.status, row.error = NOT_BRAIN_MRI, check.reason
                else:
                    row.assessed(assessment)
                    outputs.add(row, scan, source.relative)
            yield row


def series_predict_rows(classifier, sources: Sequence[Source], outputs: Outputs, tta: bool = True) -> Iterator[Row]:
    """`--series`: DICOM files (and .zip archives) grouped by series, rows in slice order plus a summary row.

    See `core.predict.series.series_rows`; every slice is checked and assessed as single scans are.
    """
    from core.predict.analysis import refusal
    from core.predict.assessment import assess
    from core.predict.series import read_for_series, safe_relative, series_rows

    files, failed = read_for_series([source.path for source in sources])

    def on_scan(row, result):
        outputs.add(row, result.scan, safe_relative(row.path), result.digest)

    def on_series(analysis):
        if analysis.edge_summary:
            outputs.notes.append(f"{analysis.series.label}: {analysis.edge_summary}")

    yield from series_rows(classifier, files, on_scan, failed, row_type=Row, on_series=on_series,
                           assess=lambda c, scans: assess(c, scans, tta=tta), check=refusal)


def _read(path: Path, size: int):
    """(row, PreparedScan or None): read and crop one file; the row says what went wrong."""
    from core.imaging.pipeline import prepare_scan
    from core.io import ScanError

    row = Row(path=str(path))
    try:
        scan = prepare_scan(path, size)
    except ScanError as error:
        row.status, row.error = UNREADABLE, str(error)
        return row, None
    except Exception as error:  # noqa: BLE001 - one bad file must never stop a run over thousands
        row.status, row.error = UNREADABLE, f"{type(error).__name__}: {error}"
        return row, None
    row.box, row.fell_back = scan.crop.box, scan.crop.fell_back
    return row, scan


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


