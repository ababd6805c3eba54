"""What an analysed series gives the command line and the PDF: CSV rows (slices, then a summary) and pages."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator

from core.explain.registry import DEFAULT_METHOD
from core.predict.series.analysis import Assess, Check, SeriesAnalysis, SliceResult, analyse_files, analyse_series
from core.predict.series.archive import File
from core.predict.series.grouping import SeriesFile, group_series
from core.predict.status import UNREADABLE

#: Single slices (outside any series) read and predicted at once by series_rows: bounds memory.
SINGLES_BATCH = 32


def series_pages(classifier, analysis: SeriesAnalysis, method: str = DEFAULT_METHOD, target: str = "tumour",
                 alpha: float = 0.4) -> list:
    """One :class:`core.report.pdf.ReportPage` per read slice, in slice order, each with its explanation.

    Give them to `core.report.pdf.write_pdf(pages, classifier.card, heading=analysis.summary(),
    notes=[analysis.edge_summary])`.
    Slices assessed (see analyse_series) carry their verdict and (low, high) spread onto the page.
    """
    from core.explain import explain
    from core.model.tumour_type import describe_type
    from core.report.pdf import ReportPage

    count = len(analysis.slices)
    return [ReportPage.from_scan(s.name, s.digest, s.scan, s.probability, analysis.threshold,
                                 explain(classifier, s.scan, method=method, target=target), alpha,
                                 heading=f"Slice {s.index} of {count} of {analysis.series.label}",
                                 verdict=s.label(analysis.threshold), uncertainty=_spread(s.assessment),
                                 tumour_type=describe_type(getattr(s.assessment, "tumour_type", None)))
            for s in analysis.read]


def _spread(assessment: Any) -> tuple[float, float] | None:
    """An assessment's (low, high) probability over its views, or None without one."""
    low, high = getattr(assessment, "low", None), getattr(assessment, "high", None)
    return None if low is None or high is None else (float(low), float(high))


def series_rows(classifier, files: Iterable[File], on_scan: Callable[[Any, SliceResult], None] | None = None,
                failed: Iterable[tuple[str, str]] = (), *, row_type: Any, assess: Assess | None = None,
                check: Check | None = None,
                on_series: Callable[[SeriesAnalysis], None] | None = None) -> Iterator[Any]:
    """`python -m core predict --series`: CSV rows for files given as (name, bytes).

    Each series gives one row per slice in slice order, then a summary row whose
    path is 'series:<key> (<n> slices; max at slice <i> (<name>); <k> at or
    above threshold)', whose probability and label are the series maximum's and
    whose error counts the slices not analysed and names those at the ends of the
    volume (SeriesAnalysis.edge_summary).
    Single slices follow, one row each (SINGLES_BATCH at a time), then one
    error row per entry of `failed` (see read_for_series).
    row_type: the CLI's row dataclass (`core.predict.batch.Row`); only the fields it has are filled
        (path, status, probability, low, high, raw, label, threshold, box, fell_back, error).
    on_scan(row, result): called for every slice predicted, with its :class:`SliceResult` (scan,
        digest, index), e.g. to write its heatmap or collect a PDF page; it may set row.heatmap or row.error.
    assess, check: as in :func:`analyse_series`.
    on_series(analysis): called with each series' :class:`SeriesAnalysis` after its rows.
    """
    groups = group_series(files)
    for series in groups.series:
        analysis = analyse_series(classifier, series, assess=assess, check=check)
        yield from _rows(row_type, analysis.slices, analysis.threshold, on_scan)
        yield _summary_row(row_type, analysis)
        if on_series is not None:
            on_series(analysis)
    singles = [SeriesFile(name, data) for name, data in groups.singles]
    for start in range(0, len(singles), SINGLES_BATCH):
        results, threshold = analyse_files(classifier, singles[start : start + SINGLES_BATCH], assess, check)
        yield from _rows(row_type, results, threshold, on_scan)
    for path, error in failed:
        yield _row(row_type, path=path, status=UNREADABLE, error=error)


def _rows(row_type, results: Iterable[SliceResult], threshold: float, on_scan) -> Iterator[Any]:
    """One row per result; `on_scan` called for each one predicted."""
    for result in results:
        row = _row(row_type, **_values(result, threshold))
        if on_scan is not None and result.probability is not None:
            on_scan(row, result)
        yield row


def _values(result: SliceResult, threshold: float) -> dict[str, Any]:
    """A result as row fields: prediction (and the assessment's spread), crop box, status, error."""
    values: dict[str, Any] = {"path": result.name, "status": result.status, "error": result.error}
    if result.scan is not None:
        values.update(box=result.scan.crop.box, fell_back=result.scan.crop.fell_back)
    if result.probability is not None:
        values.update(probability=result.probability, threshold=threshold, label=result.label(threshold),
                      **{key: getattr(result.assessment, key, None) for key in ("low", "high", "raw", "tumour_type")})
    return values


def _row(row_type, **values: Any):
    """`row_type(**values)` with only the fields it has (and no None: its defaults stand)."""
    names = {item.name for item in dataclasses.fields(row_type)}
    return row_type(**{key: value for key, value in values.items() if key in names and value is not None})


def _summary_row(row_type, analysis: SeriesAnalysis):
    """The series' row: the maximum's prediction under 'series:<key> (...)'; no crop box."""
    series, peak = analysis.series, analysis.peak
    count = len(series.files)
    if peak is None:
        return _row(row_type, path=series.label, status=UNREADABLE,
                    error=f"none of the {count} slices could be analysed")
    failed = count - len(analysis.read) - len(analysis.edges)
    notes = [f"{failed} slices not analysed" if failed else "", analysis.edge_summary]
    values = {**_values(peak, analysis.threshold), "box": None, "fell_back": None,
              "error": "; ".join(note for note in notes if note)}
    values["path"] = (f"series:{series.key} ({count} slices; max at slice {peak.index} ({peak.name}); "
                      f"{analysis.above_threshold} at or above threshold)")
    return _row(row_type, **values)
