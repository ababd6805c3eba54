"""A series analysed: every slice read, checked and assessed in one batch; refusals at its ends are volume edges."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from core.imaging.pipeline import PreparedScan, prepare_scan
from core.io import ScanError
from core.model.labels import label_for
from core.predict.analysis import digest_of
from core.predict.series.grouping import Series, SeriesFile
from core.predict.status import NOT_BRAIN_MRI, OK, UNREADABLE, VOLUME_EDGE

#: The reason given to a refused slice at either end of a series (skull base, vertex), see mark_volume_edges.
VOLUME_EDGE_REASON = "edge of the volume: too little brain to assess"


#: How a refusal from the file's own tags begins (DICOM modality CT, body part knee...); never a volume edge.
_DECLARED = "not a brain MRI slice: the file"


#: How many of the most suspicious slices a summary lists.
TOP_SLICES = 5


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
    slices, threshold = analyse_files(classifier, series.files, assess, check)
    return SeriesAnalysis(series=series, slices=mark_volume_edges(slices), threshold=threshold)


def analyse_files(classifier, files: Sequence[SeriesFile], assess: Assess | None = None,
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
        results.append(SliceResult(index=index, name=item.name, digest=digest_of(item.data),
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
