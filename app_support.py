"""Per-scan helpers for the Streamlit app: plain Python, no Streamlit import.

Every number comes from `core`; this module only arranges it for display:
it runs `core` on one uploaded file, words the notes, draws the crop box and
packs the downloads (CSV, PNG, JSON). The benchmark calls the same functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.card import ModelCard
from core.explain.registry import method_labels
from core.labels import DISPLAY, label_for
from core.pixels import to_rgb
from core.pipeline import OfScan, PreparedScan, prepare_pixels, prepare_scan

#: Labels shown in the UI -> values `core.explain.explain` takes.
TARGETS = {shown: label for label, shown in DISPLAY.items()}
#: A probability within this distance of the threshold is called uncertain.
NEAR_THRESHOLD = 0.10
#: Crop-box colour (RGB) and line width as a fraction of the scan's longer side.
BOX_COLOUR = (0, 255, 0)
BOX_WIDTH = 0.006

DISCLAIMER = (
    "Research demo, not for clinical use. It has not been validated for diagnosis; "
    "never base a medical decision on it."
)


@dataclass(frozen=True)
class Analysis(OfScan):
    """One upload run through `core`: the prepared scan (pixels, crop, model input) and its probability."""

    name: str
    digest: str
    scan: PreparedScan
    probability: float
    threshold: float

    @property
    def label(self) -> str:
        """'tumour' or 'no_tumour' at the threshold (data spelling; `core.labels.display` for the screen)."""
        return label_for(self.probability, self.threshold)


def methods() -> dict[str, str]:
    """{label shown: method name} for every registered explanation method, read at run time."""
    return method_labels()


def digest_of(data: bytes) -> str:
    """Hex SHA-256 of the uploaded bytes (the per-session cache key; never stored on disk)."""
    return hashlib.sha256(data).hexdigest()


def analyse(classifier, data: bytes, name: str) -> Analysis:
    """Decode, crop and classify one upload. Raises `core.scanio.ScanError` for a bad file."""
    scan = prepare_scan(data, classifier.input_size, name=name)
    probability = float(classifier.predict_prepared([scan])[0])
    return Analysis(name=name, digest=digest_of(data), scan=scan, probability=probability,
                    threshold=classifier.threshold)


def explain_scan(classifier, analysis: Analysis, method: str, target: str):
    """`core.explain.explain` for an analysed scan, reusing its crop and model input."""
    from core.explain import explain

    return explain(classifier, analysis.scan, method=method, target=target)


def warm_up(classifier) -> None:
    """Run the model and the default explanation once on a blank image."""
    from core.explain import explain

    blank = prepare_pixels(np.zeros((classifier.input_size, classifier.input_size), dtype=np.uint8),
                           classifier.input_size)
    classifier.predict_prepared([blank])
    explain(classifier, blank, method="gradcam", target="tumour")


def notes(analysis: Analysis, explanation=None, target_label: str = "Tumour") -> list[str]:
    """Plain-language caveats for one result (empty when there is nothing to say)."""
    found = []
    if analysis.crop.fell_back:
        found.append("No brain outline was found, so the whole image was analysed. "
                      "Check that this is a brain MRI slice.")
    if abs(analysis.probability - analysis.threshold) < NEAR_THRESHOLD:
        found.append(f"The probability is close to the model's threshold ({analysis.threshold:.2f}): "
                     "treat this result as uncertain.")
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


def report(analysis: Analysis, model_id: str, method: str, target: str) -> dict[str, Any]:
    """The JSON report of one scan: the result and how it was made; no DICOM tag, no pixels."""
    return {
        "file": analysis.name,
        "file_sha256": analysis.digest,
        "tumour_probability": round(analysis.probability, 6),
        "label": analysis.label,
        "threshold": analysis.threshold,
        "crop_box": {"x0": analysis.crop.box[0], "y0": analysis.crop.box[1],
                     "x1": analysis.crop.box[2], "y1": analysis.crop.box[3]},
        "crop_fell_back": analysis.crop.fell_back,
        "explanation": {"method": method, "target": target},
        "model_id": model_id,
        "note": DISCLAIMER,
    }


def report_json(report_dict: dict[str, Any]) -> bytes:
    return (json.dumps(report_dict, indent=2) + "\n").encode()


def table_row(name: str, analysis: Analysis | None = None, error: str | None = None) -> dict[str, Any]:
    """One row of the results table: a result or a file that could not be read."""
    if analysis is None:
        return {"file": name, "tumour_probability": None, "label": "—", "crop_fell_back": None,
                "near_threshold": None, "error": error or ""}
    return {"file": name, "tumour_probability": round(analysis.probability, 4), "label": analysis.label,
            "crop_fell_back": analysis.crop.fell_back,
            "near_threshold": abs(analysis.probability - analysis.threshold) < NEAR_THRESHOLD,
            "error": ""}


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


def describe(value: Any) -> str:
    """A card entry (number, text, list, nested dict) as one readable line."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if _is_interval_key(key):
                continue
            text = f"{key} {describe(item)}"
            interval = _interval_for(key, value)
            if interval is not None:
                text += f" (95% CI {_number(interval[0])}–{_number(interval[1])})"
            parts.append(text)
        return "; ".join(parts)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{_number(value[0])}–{_number(value[1])}"
        return ", ".join(describe(item) for item in value)
    return _number(value)


def _is_interval_key(key: str) -> bool:
    key = str(key).lower()
    return key.endswith(("_ci", "_ci95", "_interval")) or key in ("ci", "ci95", "interval")


def _interval_for(key: str, siblings: dict) -> Any:
    for suffix in ("_ci", "_ci95", "_interval"):
        found = siblings.get(f"{key}{suffix}")
        if isinstance(found, (list, tuple)) and len(found) == 2:
            return found
    return None


def _training_data(card: ModelCard) -> str:
    """'train: data/br35h 1348 tumour / 1347 no tumour; val: ...' from a trainer-written card."""
    counts = card.data.get("counts_after_deduplication") if isinstance(card.data, dict) else None
    parts = []
    for split, sources in (counts.items() if isinstance(counts, dict) else ()):
        for source, n in (sources.items() if isinstance(sources, dict) else ()):
            if not isinstance(n, dict):
                continue
            parts.append(f"{split}: {source} {n.get('tumour', 0)} tumour / {n.get('no_tumour', 0)} no tumour")
    if card.initialisation:
        parts.append(f"initialisation: {card.initialisation}")
    return "; ".join(parts)


def _external_result(source: str, result: dict[str, Any]) -> str:
    """One phrase for one external test source: AUC with its interval, balanced accuracy, size."""
    if result.get("auc") is None:
        return f"{source}: AUC not defined ({result.get('scans', 0)} scans of one class)"
    low, high = result.get("auc_ci95") or (float("nan"), float("nan"))
    at = result.get("at_card", {})
    removed = result.get("duplicates_removed") or {}
    text = (f"{source}: AUC {_number(result['auc'])} (95% CI {_number(low)}–{_number(high)}), "
            f"balanced accuracy {_number(at.get('balanced_accuracy'))} at the threshold, "
            f"{result.get('scans')} scans ({result.get('no_tumour')} without tumour)")
    if removed:
        text += f", after removing {removed.get('exact', 0) + removed.get('near', 0)} copies of training scans"
    return text


def card_summary(card: ModelCard) -> dict[str, str]:
    """What the page always shows about the model, taken from its (validated) model card.

    Cards written by `python -m train` are summarised (training counts, external test
    results); other cards' `data` and `metrics` entries are shown as given.
    """
    data = _training_data(card) or describe(card.data if card.data is not None else "not stated in the model card")
    external = "; ".join(_external_result(source, result) for source, result in card.external_test.items())
    return {
        "name": card.name,
        "data": data,
        "metrics": external or describe(card.metrics or "not stated in the model card"),
        "threshold": _number(float(card.threshold)),
        "weights_sha256": card.weights_sha256 or "unknown",
    }
