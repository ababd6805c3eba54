"""Per-scan helpers for the Streamlit app: plain Python, no Streamlit import.

Every number comes from `core`; this module only arranges it for display:
it runs `core` on one uploaded file, words the notes, draws the crop box and
packs the downloads (CSV, PNG, JSON). The benchmark calls the same functions.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.explain.registry import method_labels
from core.imaging.pipeline import prepare_pixels
from core.imaging.pixels import to_rgb
from core.model.labels import DISPLAY, display
from core.model.tumour_type import TYPES
from core.predict import analysis
from core.predict.analysis import Analysis, digest_of  # noqa: F401 - re-exported: the result type, cache key
from core.predict.assessment import assess
from core.predict.status import Status
from core.quality.input_check import InputCheck
from core.report.card_summary import (  # noqa: F401 - re-exported: the model panel
    RESULTS_NOTE,
    card_summary,
    describe,
    results_table,
)

#: Labels shown in the UI -> values `core.explain.explain` takes.
TARGETS = {shown: label for label, shown in DISPLAY.items()}
#: Crop-box colour (RGB) and line width as a fraction of the scan's longer side.
BOX_COLOUR = (0, 255, 0)
BOX_WIDTH = 0.006

DISCLAIMER = (
    "Research demo, not for clinical use. It has not been validated for diagnosis; "
    "never base a medical decision on it."
)


#: Every label and status, as the page shows it.
SHOWN = {**DISPLAY, "uncertain": "Uncertain", Status.NOT_BRAIN_MRI: "Not a brain MRI slice", "—": "—"}


def verdict_text(analysis: Analysis) -> str:
    """What the page says instead of a bare label."""
    if analysis.refused:
        return f"Not a brain MRI slice ({analysis.check.reason}). No tumour probability is given."
    result = analysis.assessment
    if result.uncertain:
        return (f"**Uncertain**: the probability is too close to the model's threshold ({result.threshold:.2f}), "
                "or the flipped views disagree, to call it either way.")
    return f"Label at the model's threshold ({result.threshold:.2f}): **{display(result.verdict)}**"


def methods() -> dict[str, str]:
    """{label shown: method name} for every registered explanation method, read at run time."""
    return method_labels()


def analyse(classifier, data: bytes, name: str) -> Analysis:
    """Decode, crop, check and assess one upload (`core.predict.analysis.analyse`). Raises `core.io.ScanError`
    for a bad file."""
    return analysis.analyse(classifier, data, name)


def explain_scan(classifier, analysis: Analysis, method: str, target: str):
    """`core.explain.explain` for an analysed scan, reusing its crop and model input."""
    from core.explain import explain

    return explain(classifier, analysis.scan, method=method, target=target)


def warm_up(classifier) -> None:
    """Run the model and the default explanation once on a blank image."""
    from core.explain import explain

    blank = prepare_pixels(np.zeros((classifier.input_size, classifier.input_size), dtype=np.uint8),
                           classifier.input_size)
    assess(classifier, [blank])  # compiles the batch of test-time views
    explain(classifier, blank, target="tumour")  # the default method, as the page first shows it


def notes(analysis: Analysis, explanation=None, target_label: str = "Tumour") -> list[str]:
    """Plain-language caveats for one result (empty when there is nothing to say)."""
    found = []
    if analysis.crop.fell_back:
        found.append("No brain outline was found, so the whole image was analysed. "
                      "Check that this is a brain MRI slice.")
    if explanation is not None and explanation.blank:
        found.append(f"The explanation map is blank: the model found no region that raises its "
                     f"evidence for '{target_label.lower()}'. Try the other target or method.")
    return found


def draw_box(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 HxW or HxWx3 scan -> uint8 HxWx3 RGB copy with the crop box drawn."""
    rgb = to_rgb(pixels)
    x0, y0, x1, y1 = box
    width = max(1, round(BOX_WIDTH * max(rgb.shape[:2])))
    cv2.rectangle(rgb, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), BOX_COLOUR, width)
    return rgb


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 HxW or HxWx3 RGB -> PNG file bytes (in memory)."""
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"Could not encode an image of shape {rgb.shape} as PNG.")
    return encoded.tobytes()


def _result(analysis: Analysis) -> dict[str, Any]:
    if analysis.refused:
        return {"status": Status.NOT_BRAIN_MRI, "reason": analysis.check.reason}
    result = analysis.assessment
    out = {"status": Status.OK, "tumour_probability": round(result.probability, 6),
           "probability_range": [round(result.low, 6), round(result.high, 6)],
           "raw_probability": round(result.raw, 6), "label": result.verdict, "threshold": round(result.threshold, 6)}
    if result.tumour_type is not None:
        call = result.tumour_type
        out["tumour_type"] = {"type": call.type or "uncertain",
                              "probabilities": {name: round(p, 6) for name, p in zip(TYPES, call.probabilities)}}
    return out


def report(analysis: Analysis, model_id: str, method: str, target: str) -> dict[str, Any]:
    """The JSON report of one scan: the result and how it was made; no DICOM tag, no pixels."""
    box = analysis.crop.box
    return {
        "file": analysis.name,
        "file_sha256": analysis.digest,
        **_result(analysis),
        "crop_box": {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]},
        "crop_fell_back": analysis.crop.fell_back,
        "explanation": None if analysis.refused else {"method": method, "target": target},
        "model_id": model_id,
        "note": DISCLAIMER,
    }


def report_json(report_dict: dict[str, Any]) -> bytes:
    return (json.dumps(report_dict, indent=2) + "\n").encode()


def table_row(name: str, analysis: Analysis | None = None, error: str | None = None) -> dict[str, Any]:
    """One row of the results table (data spelling): a result, a refused scan or an unreadable file."""
    row = {"file": name, "status": Status.UNREADABLE, "tumour_probability": None, "probability_low": None,
           "probability_high": None, "label": "—", "type": "", "crop_fell_back": None, "error": error or ""}
    if analysis is None:
        return row
    row.update(status=Status.NOT_BRAIN_MRI if analysis.refused else Status.OK, label=analysis.label,
               crop_fell_back=analysis.crop.fell_back, error=analysis.check.reason)
    if not analysis.refused:
        result = analysis.assessment
        row.update(tumour_probability=round(result.probability, 4), probability_low=round(result.low, 4),
                   probability_high=round(result.high, 4), type=type_cell(result.tumour_type))
    return row


def type_cell(call) -> str:
    """The results table's type cell: 'meningioma 71%', 'uncertain', or '' without a type call."""
    if call is None:
        return ""
    return "uncertain" if call.uncertain else f"{call.type} {call.ranked()[0][1]:.0%}"


def type_text(call) -> str:
    """Under the probability: '**Type: meningioma 71%** · glioma 22% · pituitary 7%', or
    '**Type uncertain**: ...' when no type reaches the head's level."""
    (top, p), *rest = call.ranked()
    others = " · ".join(f"{name} {q:.0%}" for name, q in rest)
    if call.uncertain:
        return f"**Type uncertain**: {top} {p:.0%} · {others}"
    return f"**Type: {top} {p:.0%}** · {others}"


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def faithfulness_text(classifier, explanation) -> str:
    """One sentence on what hiding the map's top 15% of the brain does to this scan's probability.

    The probabilities are calibrated as the page's are (`core.explain.metrics.faithfulness` measures raw outputs).
    """
    from core.explain.metrics.faithfulness import describe_faithfulness, faithfulness_summary

    summary = faithfulness_summary(classifier, explanation)
    keys = [key for key in ("probability", "after_top", "after_random") if summary.get(key) is not None]
    calibrated = classifier.calibration([summary[key] for key in keys])
    return describe_faithfulness({**summary, **{key: float(value) for key, value in zip(keys, calibrated)}})


def report_page(analysis: Analysis, explanation=None, heading: str = ""):
    """The PDF page (`core.report.pdf.ReportPage`) of one assessed scan."""
    from core.model.tumour_type import describe_type
    from core.report.pdf import ReportPage

    result = analysis.assessment
    return ReportPage.from_scan(analysis.name, analysis.digest, analysis.scan, result.probability, result.threshold,
                                explanation, notes=tuple(notes(analysis, explanation)),
                                uncertainty=(result.low, result.high), verdict=result.verdict, heading=heading,
                                tumour_type=describe_type(result.tumour_type))


def pdf_bytes(classifier, items: list[tuple[Analysis, Any]], heading: str = "", notes: tuple[str, ...] = ()) -> bytes:
    """A PDF report of assessed scans, [(analysis, explanation or None)]: one page each (plus a summary).

    heading, notes: lines for the summary page (see `core.report.pdf.write_pdf`).
    """
    from core.report.pdf import write_pdf

    pages = [report_page(analysis, explanation) for analysis, explanation in items if not analysis.refused]
    return write_pdf(pages, classifier.card, heading=heading, notes=notes)


@dataclass(frozen=True)
class Upload:
    """An upload sorted out: single scans, DICOM series of two or more slices, and files refused whole.

    singles: (name, bytes); series: `core.predict.series.Series`; failed: (name, message); message: what was
    mixed ("2 series in this upload: shown separately."), or None.
    """

    singles: list[tuple[str, bytes]]
    series: list[Any]
    failed: list[tuple[str, str]]
    message: str | None


def sort_upload(files: list[tuple[str, bytes]]) -> Upload:
    """Expand .zip archives in memory, group DICOM by series; a one-slice series counts as a single scan."""
    from core.io import ScanError
    from core.predict.series import expand_upload, group_series

    expanded, failed = [], []
    for name, data in files:
        try:
            expanded += expand_upload(name, data)
        except ScanError as error:
            failed.append((name, str(error)))
    groups = group_series(expanded)
    series = [s for s in groups.series if len(s.files) > 1]
    singles = [(f.name, f.data) for s in groups.series if len(s.files) == 1 for f in s.files]
    singles = list(groups.singles) + singles
    order = {name: index for index, (name, _) in enumerate(expanded)}
    singles.sort(key=lambda item: order[item[0]])
    return Upload(singles=singles, series=series, failed=failed, message=groups.message if series else None)


def analyse_series(classifier, series):
    """Every slice of a series read, checked and assessed in one batch (one view per slice, for speed)."""
    from core.predict.series import analyse_series as analyse

    return analyse(classifier, series, assess=lambda c, scans: assess(c, scans, tta=False), check=analysis.refusal)


def slice_analysis(result) -> Analysis:
    """A series slice (`core.predict.series.SliceResult` that was assessed) as an Analysis, to show it like a scan."""
    check = InputCheck(ok=result.assessment is not None, reason=result.error)
    return Analysis(name=result.name, digest=result.digest, scan=result.scan, check=check,
                    assessment=result.assessment)
