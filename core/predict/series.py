"""Whole DICOM series: unpack an upload, group its slices by series, order them, classify them all.

    expand_upload(name, bytes) -> [(name, bytes), ...]    a .zip is unpacked in memory, anything else passes
    group_series(files) -> SeriesGroups                    DICOM slices by SeriesInstanceUID, in slice order
    analyse_series(classifier, series) -> SeriesAnalysis   every slice read, cropped and predicted in one batch
    mark_volume_edges(slices) -> slices                    refusals at either end of a series: VOLUME_EDGE
    series_rows(classifier, files, row_type=Row) -> rows  the command line's CSV rows (slices + summary)

Only the tags in ``SERIES_TAGS`` are parsed to group and order slices (pydicom
``specific_tags``), and decoding a slice parses only the display tags of
:mod:`core.io.dicom`, so patient tags are never read. A series is named by
a short hash of its SeriesInstanceUID (``series:3fa9c1d2``), never by the UID
itself, which can embed dates and device serial numbers. Nothing is written to
disk: a .zip is read member by member into memory, under limits on the number
of files and their total size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from core.explain.registry import DEFAULT_METHOD
from core.imaging.pipeline import PreparedScan, prepare_scan
from core.io import ScanError
from core.io.sniff import read_bytes, sniff
from core.model.labels import label_for
from core.predict.status import NOT_BRAIN_MRI, OK, UNREADABLE, VOLUME_EDGE  # noqa: F401 - re-exported

#: The only DICOM elements parsed to group and order slices. None identifies a patient.
SERIES_TAGS = ["SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ImagePositionPatient",
               "ImageOrientationPatient", "InstanceNumber", "SliceLocation"]
#: Limits on a .zip upload: members (directories not counted) and their total uncompressed size.
MAX_ZIP_FILES = 2000
MAX_ZIP_BYTES = 512 * 2**20
#: The reason given to a refused slice at either end of a series (skull base, vertex), see mark_volume_edges.
VOLUME_EDGE_REASON = "edge of the volume: too little brain to assess"
#: How a refusal from the file's own tags begins (DICOM modality CT, body part knee...); never a volume edge.
_DECLARED = "not a brain MRI slice: the file"
#: How many of the most suspicious slices a summary lists.
TOP_SLICES = 5
#: Single slices (outside any series) read and predicted at once by series_rows: bounds memory.
SINGLES_BATCH = 32
#: Orientation vectors whose slice normals differ by more than this (1 - |cos|) are not one stack.
_PARALLEL_TOLERANCE = 1e-3

File = tuple[str, bytes]


@dataclass(frozen=True)
class SeriesFile:
    """One DICOM slice of a series: its name, bytes and where it sits in the stack.

    position: mm along the slice normal (ImagePositionPatient . (row x column direction)), None when unknown.
    instance: InstanceNumber, None when absent.
    """

    name: str
    data: bytes = field(repr=False)
    position: float | None = None
    instance: int | None = None
    normal: tuple[float, float, float] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Series:
    """The slices of one DICOM series, in slice order.

    key: 8 hex digits of the SHA-256 of the SeriesInstanceUID (the UID itself is not kept).
    ordered_by: "position" (along the slice normal), "instance number" or "file name".
    description: SeriesDescription (e.g. "AX FLAIR"), "" when absent.
    """

    key: str
    files: tuple[SeriesFile, ...]
    ordered_by: str
    number: int | None = None
    description: str = ""

    @property
    def label(self) -> str:
        """'series:3fa9c1d2 (30 slices)', the name tables and the CSV use."""
        count = len(self.files)
        return f"series:{self.key} ({count} slice{'s' if count != 1 else ''})"


@dataclass(frozen=True)
class SeriesGroups:
    """An upload split into DICOM series (in order of first appearance) and single slices.

    singles: (name, bytes) of files that are not DICOM, or DICOM without a SeriesInstanceUID,
    in upload order; they are analysed one by one, as before.
    """

    series: tuple[Series, ...]
    singles: tuple[File, ...] = ()

    @property
    def message(self) -> str | None:
        """'2 series in this upload: shown separately.' when the upload mixes things, else None."""
        parts = []
        if len(self.series) > 1 or (self.series and self.singles):
            parts.append(f"{len(self.series)} series")
        if self.singles and self.series:
            parts.append(f"{len(self.singles)} single slice{'s' if len(self.singles) != 1 else ''}")
        return f"{' and '.join(parts)} in this upload: shown separately." if parts else None


def expand_upload(name: str, data: bytes, max_files: int = MAX_ZIP_FILES,
                  max_bytes: int = MAX_ZIP_BYTES) -> list[File]:
    """One upload -> its files as (name, bytes): a .zip's members in archive order, else [(name, data)].

    Members are named '<zip name>/<path in the archive>'; directories and
    macOS/hidden entries are skipped; nothing is written to disk, so member
    paths ('../x', '/etc/x') are only labels. Raises ScanError for a damaged or
    encrypted archive, an empty one, or one over `max_files` members or
    `max_bytes` uncompressed bytes (checked from the directory before anything
    is decompressed, and again on the bytes actually read).
    """
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return [(name, data)]
    label = f"'{name}'"
    if _declared_entries(data) > 4 * max_files:  # before zipfile builds an object per entry
        raise ScanError(_too_many(label, _declared_entries(data), max_files))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if _wanted(info)]
            _check_zip_limits(members, label, max_files, max_bytes)
            return _read_members(archive, members, name, label, max_bytes)
    except ScanError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError):
        raise ScanError(f"{label} is a damaged or unsupported ZIP archive, so it cannot be unpacked. "
                        "Create the archive again (plain ZIP, no password) and upload it.") from None
    except NotImplementedError:
        raise ScanError(f"{label} uses a ZIP compression method this app cannot read. Create the "
                        "archive again with ordinary (deflate) compression.") from None


def _wanted(info: zipfile.ZipInfo) -> bool:
    """False for directories and the hidden files archivers add (__MACOSX/, .DS_Store, ._name)."""
    parts = info.filename.replace("\\", "/").split("/")
    return not info.is_dir() and parts[0] != "__MACOSX" and not parts[-1].startswith(".")


def _check_zip_limits(members: list[zipfile.ZipInfo], label: str, max_files: int, max_bytes: int) -> None:
    if not members:
        raise ScanError(f"{label} is a ZIP archive with no files in it. Put the DICOM files of the "
                        "series (or the scans) in the archive and upload it again.")
    if len(members) > max_files:
        raise ScanError(_too_many(label, len(members), max_files))
    if any(info.flag_bits & 0x1 for info in members):
        raise ScanError(f"{label} is password-protected. Create the archive again without a password.")
    declared = sum(info.file_size for info in members)
    if declared > max_bytes:
        raise ScanError(_zip_too_large(label, declared, max_bytes))


def _declared_entries(data: bytes) -> int:
    """The entry count in a ZIP's end-of-central-directory record (ZIP64 too); 0 when it has none."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return 0
    count = int.from_bytes(data[end + 10 : end + 12], "little")
    zip64 = data.rfind(b"PK\x06\x06", 0, end)
    if count == 0xFFFF and zip64 >= 0 and len(data) >= zip64 + 40:
        count = int.from_bytes(data[zip64 + 32 : zip64 + 40], "little")
    return count


def _too_many(label: str, count: int, max_files: int) -> str:
    return (f"{label} holds {count} files; the limit is {max_files}. Upload one series at a time, "
            "or fewer slices.")


def _zip_too_large(label: str, size: int, max_bytes: int) -> str:
    return (f"{label} unpacks to {size / 2**20:.0f} MB or more; the limit is {max_bytes / 2**20:.0f} MB. "
            "Upload one series at a time, or fewer slices.")


def _read_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], name: str, label: str,
                  max_bytes: int) -> list[File]:
    """Each member's bytes, never reading more than `max_bytes` in all (a lying directory cannot pass)."""
    files, total = [], 0
    for info in members:
        with archive.open(info) as member:
            content = member.read(max_bytes - total + 1)
        total += len(content)
        if total > max_bytes:
            raise ScanError(_zip_too_large(label, total, max_bytes))
        files.append((f"{name}/{info.filename.lstrip('/')}", content))
    return files


def group_series(files: Iterable[File]) -> SeriesGroups:
    """(name, bytes) files -> DICOM series in slice order, plus the single slices.

    Series appear in the order their first file was given. Within a series,
    slices are ordered by position along the slice normal when every slice has
    ImagePositionPatient and parallel ImageOrientationPatient; else by
    InstanceNumber when every slice has one; else by file name. Ties fall back
    to InstanceNumber, then the file name.
    """
    stacks: dict[str, list[SeriesFile]] = {}
    facts: dict[str, tuple[int | None, str]] = {}
    singles: list[File] = []
    for name, data in files:
        header = _series_header(data)
        uid = str(header.get("SeriesInstanceUID") or "").strip() if header is not None else ""
        if not uid:
            singles.append((name, data))
            continue
        stacks.setdefault(uid, []).append(_series_file(name, data, header))
        facts.setdefault(uid, (_number(header.get("SeriesNumber"), int),
                               str(header.get("SeriesDescription") or "").strip()))
    series = tuple(_ordered(uid, stack, *facts[uid]) for uid, stack in stacks.items())
    return SeriesGroups(series=series, singles=tuple(singles))


def _series_header(data: bytes):
    """The SERIES_TAGS of a DICOM file (a pydicom Dataset), or None for anything that is not DICOM."""
    try:
        if sniff(data, "file") != "DICOM":
            return None
    except ScanError:
        return None
    import pydicom  # imported here: most uploads are not DICOM

    try:
        return pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM", stop_before_pixels=True,
                               specific_tags=SERIES_TAGS)
    except Exception:  # noqa: BLE001 - damaged files become single slices; their reading says why
        return None


def _series_file(name: str, data: bytes, header) -> SeriesFile:
    """A SeriesFile with its position along the slice normal, when the header allows."""
    position = _vector(header.get("ImagePositionPatient"), 3)
    orientation = _vector(header.get("ImageOrientationPatient"), 6)
    normal = None
    if orientation is not None:
        cross = np.cross(orientation[:3], orientation[3:])
        length = float(np.linalg.norm(cross))
        normal = tuple(float(v) for v in cross / length) if length > 1e-6 else None
    along = float(np.dot(position, normal)) if position is not None and normal is not None else None
    return SeriesFile(name=name, data=data, position=along, instance=_number(header.get("InstanceNumber"), int),
                      normal=normal)


def _vector(value: Any, length: int) -> np.ndarray | None:
    """A DICOM multi-valued number as a float64 array of `length`, or None when absent or malformed."""
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return vector if vector.shape == (length,) and np.isfinite(vector).all() else None


def _number(value: Any, kind: Callable = float):
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _ordered(uid: str, stack: list[SeriesFile], number: int | None, description: str) -> Series:
    """A Series with `stack` sorted by position, else instance number, else file name (see group_series)."""
    if _one_stack(stack):
        key, ordered_by = (lambda f: (f.position, f.instance or 0, f.name)), "position"
    elif all(f.instance is not None for f in stack):
        key, ordered_by = (lambda f: (f.instance, f.name)), "instance number"
    else:
        key, ordered_by = (lambda f: f.name), "file name"
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    return Series(key=digest, files=tuple(sorted(stack, key=key)), ordered_by=ordered_by, number=number,
                  description=description)


def _one_stack(stack: list[SeriesFile]) -> bool:
    """True when every slice has a position and all slice normals are parallel (not a 3-plane localiser)."""
    if any(f.position is None or f.normal is None for f in stack):
        return False
    first = np.array(stack[0].normal)
    return all(1.0 - abs(float(np.dot(first, f.normal))) <= _PARALLEL_TOLERANCE for f in stack)


@dataclass(frozen=True, eq=False)
class SliceResult:
    """One slice of an analysed series (or one single file).

    index: 1-based place in slice order. digest: hex SHA-256 of the file's bytes.
    status: OK, UNREADABLE (no scan), NOT_BRAIN_MRI (the input check refused it) or VOLUME_EDGE (refused,
        but at an end of a series whose other slices passed: see mark_volume_edges); `error` says why.
    scan: the PreparedScan (pixels, crop, model input), None when unreadable.
    probability: tumour probability in [0, 1] (the assessment's when one was made), None unless OK.
    assessment: what the `assess` callable returned for the slice (e.g. `core.predict.assessment.Assessment`), or None.
    """

    index: int
    name: str
    digest: str
    scan: PreparedScan | None = None
    probability: float | None = None
    error: str = ""
    status: str = OK
    assessment: Any = None

    def label(self, threshold: float) -> str | None:
        """The assessment's verdict when it has one ('uncertain' ...), else the label at `threshold`."""
        if self.probability is None:
            return None
        return getattr(self.assessment, "verdict", None) or label_for(self.probability, threshold)


@dataclass(frozen=True, eq=False)
class SeriesAnalysis:
    """A series' slices with their probabilities, in slice order, and what to say about them.

    threshold: the threshold the probabilities are compared with (the assessment's, calibrated, when the
    slices were assessed; else the model card's).
    """

    series: Series
    slices: tuple[SliceResult, ...]
    threshold: float

    @property
    def read(self) -> list[SliceResult]:
        """The slices that were read, passed the input check and were predicted, in slice order."""
        return [s for s in self.slices if s.probability is not None]

    @property
    def peak(self) -> SliceResult | None:
        """The slice with the highest tumour probability (the first of equals); None when none was read."""
        return max(self.read, key=lambda s: s.probability, default=None)

    @property
    def above_threshold(self) -> int:
        """How many slices have a probability at or above the threshold."""
        return sum(s.probability >= self.threshold for s in self.read)

    def most_suspicious(self, count: int = TOP_SLICES) -> list[SliceResult]:
        """Up to `count` read slices, highest probability first (slice order among equals)."""
        return sorted(self.read, key=lambda s: (-s.probability, s.index))[:count]

    @property
    def edges(self) -> list[SliceResult]:
        """The slices at the ends of the volume that were not assessed (VOLUME_EDGE), in slice order."""
        return [s for s in self.slices if s.status == VOLUME_EDGE]

    @property
    def edge_summary(self) -> str:
        """'36 slices at the ends of the volume not assessed: 1-16, 69-88', or '' when there are none."""
        count = len(self.edges)
        if not count:
            return ""
        return (f"{count} slice{'s' if count != 1 else ''} at the ends of the volume not assessed: "
                f"{slice_ranges(s.index for s in self.edges)}")

    def summary(self) -> str:
        """'30 slices; max 0.912 at slice 14 (IM14.dcm); 6 at or above the threshold 0.364; 1 not analysed'.

        Slices at the ends of the volume are not counted as 'not analysed': edge_summary names them.
        """
        peak = self.peak
        text = f"{len(self.slices)} slices"
        if peak is not None:
            text += (f"; max {peak.probability:.3f} at slice {peak.index} ({peak.name}); "
                     f"{self.above_threshold} at or above the threshold {self.threshold:.3f}")
        failed = len(self.slices) - len(self.read) - len(self.edges)
        return text + (f"; {failed} not analysed" if failed else "")


def slice_ranges(numbers: Iterable[int]) -> str:
    """Slice numbers as sorted ranges: [1, 2, 3, 7, 9, 10] -> '1-3, 7, 9-10'."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(f"{first}-{last}" if last > first else str(first) for first, last in runs)


def mark_volume_edges(slices: Sequence[SliceResult]) -> tuple[SliceResult, ...]:
    """`slices` (in series order) with the refusals at either end re-labelled VOLUME_EDGE.

    The ends are the slices before the first accepted (OK) slice and after the last one: skull base
    and vertex, real MR slices with too little brain for the input check. Their refusals get
    VOLUME_EDGE and VOLUME_EDGE_REASON. Refusals between accepted slices, unreadable slices and
    refusals the file declares (e.g. DICOM modality CT) are kept; so is a series with no accepted slice.
    """
    accepted = [i for i, s in enumerate(slices) if s.status == OK]
    if not accepted:
        return tuple(slices)
    first, last = accepted[0], accepted[-1]
    return tuple(_as_edge(s) if (i < first or i > last) and _refused_by_pixels(s) else s
                 for i, s in enumerate(slices))


def _refused_by_pixels(result: SliceResult) -> bool:
    """True for a slice the input check refused for what it shows, not for what its tags declare."""
    return result.status == NOT_BRAIN_MRI and not result.error.startswith(_DECLARED)


def _as_edge(result: SliceResult) -> SliceResult:
    return dataclasses.replace(result, status=VOLUME_EDGE, error=VOLUME_EDGE_REASON)


Assess = Callable[[Any, Sequence[PreparedScan]], Sequence[Any]]
Check = Callable[[PreparedScan], str]


def analyse_series(classifier, series: Series, *, assess: Assess | None = None,
                   check: Check | None = None) -> SeriesAnalysis:
    """Read, crop and classify every slice of `series`, predicting all of them in one batched call.

    classifier: a :class:`core.model.classifier.Classifier`.
    assess: optional `core.predict.assessment.assess`-like callable (classifier, scans) -> one object per scan
        with `.probability` and `.threshold` (and optionally `.verdict`, `.low`, `.high`, `.raw`), so
        series report the same calibrated numbers as single scans; default: `classifier.predict_prepared`
        and the card's threshold.
    check: optional input check, scan -> "" when fine, else the reason it is not a brain MR slice
        (e.g. from `core.quality.input_check.check_input`); refused slices get no probability.
    Slices that cannot be read get an error; the rest still run. Refused slices at either end of the
    series become VOLUME_EDGE (see mark_volume_edges). Returns results in slice order.
    """
    slices, threshold = _analyse_files(classifier, series.files, assess, check)
    return SeriesAnalysis(series=series, slices=mark_volume_edges(slices), threshold=threshold)


def _analyse_files(classifier, files: Sequence[SeriesFile], assess: Assess | None = None,
                   check: Check | None = None) -> tuple[tuple[SliceResult, ...], float]:
    """(SliceResults index 1..n for `files` in order, threshold); one batched prediction for all read."""
    prepared = [(item, *_prepare(item, classifier.input_size, check)) for item in files]
    scans = [scan for _, scan, status, _ in prepared if status == OK]
    if assess is None:
        outcomes = [(float(p), None) for p in classifier.predict_prepared(scans)]
    else:
        outcomes = [(float(a.probability), a) for a in assess(classifier, scans)]
    threshold = float(outcomes[0][1].threshold) if assess is not None and outcomes else classifier.threshold
    found = iter(outcomes)
    results = []
    for index, (item, scan, status, error) in enumerate(prepared, start=1):
        probability, assessment = next(found) if status == OK else (None, None)
        results.append(SliceResult(index=index, name=item.name, digest=hashlib.sha256(item.data).hexdigest(),
                                   scan=scan, probability=probability, error=error, status=status,
                                   assessment=assessment))
    return tuple(results), threshold


def _prepare(item: SeriesFile, size: int, check: Check | None) -> tuple[PreparedScan | None, str, str]:
    """(scan, status, error); one bad slice never stops the others."""
    try:
        scan = prepare_scan(item.data, size, name=item.name)
    except ScanError as error:
        return None, UNREADABLE, str(error)
    except Exception as error:  # noqa: BLE001 - as the command line: report it on the slice's row
        return None, UNREADABLE, f"{type(error).__name__}: {error}"
    reason = check(scan) if check is not None else ""
    return scan, (NOT_BRAIN_MRI if reason else OK), reason


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


def read_for_series(paths: Iterable[str | os.PathLike]) -> tuple[list[File], list[tuple[str, str]]]:
    """Files on disk -> ((path, bytes) with each .zip expanded in memory, (path, error) for files that failed).

    A file over the scan size limit, unreadable, or a refused .zip (see
    expand_upload) goes to the errors; the others are still returned.
    """
    files: list[File] = []
    failed: list[tuple[str, str]] = []
    for path in paths:
        try:
            files += expand_upload(str(path), read_bytes(path, f"'{path}'"))
        except ScanError as error:
            failed.append((str(path), str(error)))
    return files, failed


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
        results, threshold = _analyse_files(classifier, singles[start : start + SINGLES_BATCH], assess, check)
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


def safe_relative(name: str) -> str:
    """A name as a relative POSIX path that stays inside any folder it is joined to.

    '/data/x.dcm' -> 'data/x.dcm', 'up.zip/../../a.dcm' -> 'up.zip/a.dcm', 'C:\\s\\b.dcm' -> 'C/s/b.dcm':
    for heatmap files named after slices and zip members.
    """
    parts = [part.strip().rstrip(":") for part in name.replace("\\", "/").split("/")]
    kept = [part for part in parts if part not in ("", ".", "..")]
    return "/".join(kept) or "scan"


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
