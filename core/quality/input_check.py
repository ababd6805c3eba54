"""Decide whether an image looks like a 2D brain MR slice, before any prediction.

:func:`check_input` measures plain features of the scan and of its brain crop and returns an
:class:`InputCheck`: ``ok``, a ``reason`` in plain words when not ok, and every measured ``score``.

Method, in order (the first that rejects gives the reason):

1. Metadata, when the reader gives it (DICOM): a modality other than MR (or a secondary capture),
   a body part other than the head, or a study, series or protocol description that names another part
   of the body and not the head (core.io.anatomy: KNEE, L-SPINE, SHOULDER, ABDOMEN...) is rejected. Never
   required: most uploads are JPEG or PNG.
2. Hard rules, each far outside every real slice: colour (more than 10 % of pixels coloured; real
   slices: at most 4 %); blank (no grey range, or one level over 97 % of the image); nothing
   head-sized (at least 1 % of the image) standing out from the background; a CT bone ring (a
   thick, closed, bright ring with brain as bright as the core right inside it; MR shows the dark
   skull there instead, between scalp fat and brain); a body section (a large object wholly inside the
   image, 1.4 times wider than tall). Rules and evidence: :mod:`core.quality.evidence`.
3. Evidence: each feature is turned into a tail score, how far it lies in the tail of its
   distribution over the 13,604 real slices (br35h, nav, mos, lgg in FLAIR, T1 and contrast T1;
   :data:`TAILS`): 0 up to the 10 % tail, +1 per decade beyond. The scores are weighted
   (:data:`WEIGHTS`, non-negative logistic regression against non-MRI images, each weight between
   0.1 and 1 so that no single feature decides and every unusual one counts a little) and summed; above
   :data:`MAX_EVIDENCE` (the real slices' 98.8th percentile) the image is rejected and the reason
   names the one or two features that added most. All three tables are fitted by
   ``bench/bench_input_check.py --fit``, which writes them to ``input_check_tables.json`` beside this
   module; validated by holding out whole categories of non-MRI images (the held-out category is
   rejected as often as when it is in the fit).

The features (:mod:`core.quality.features`) describe the head found in the image: its surround, shape and
inside, and the brain crop. Slices whose raw contrast is below 20 grey levels (where the crop gives up) are
judged the same way, and called nearly blank when rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.imaging.pixels import check_uint8
from core.io.anatomy import anatomy_words, names_head, other_body_part
from core.quality.evidence import MAX_EVIDENCE, evidence_reason, rule_reason, tail_scores, weighted_evidence
from core.quality.features import measure_input

if TYPE_CHECKING:
    from core.imaging.crop import Crop

#: DICOM modalities left to the pixel checks (MR, and secondary captures, which may hold an MR
#: picture); any other modality is rejected. Body-part words accepted when the file names one.
PIXEL_CHECK_MODALITIES = frozenset({"MR", "OT", "SC"})


@dataclass(frozen=True)
class InputCheck:
    """The verdict on one image.

    ok: True when the image looks like a 2D brain MR slice.
    reason: for the person who uploaded it, why it was rejected ("" when ok).
    scores: the measured features (name -> float), for logs, tests and tuning.
    """

    ok: bool
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)


# --- the verdict ---------------------------------------------------------------------------------


def check_input(pixels: np.ndarray, crop: Crop, meta: Mapping[str, Any] | None = None) -> InputCheck:
    """Whether `pixels` look like a 2D brain MR slice.

    pixels: uint8 HxW or HxWx3 [0, 255], as core.read_scan returns them.
    crop: core.crop_brain(pixels).
    meta: Scan.meta, optional; DICOM "modality" and "body_part" (or the DICOM keywords
    Modality / BodyPartExamined) are used when present.
    Returns an :class:`InputCheck`; never raises for a valid uint8 image.
    """
    check_uint8(pixels, "image", channels=(1, 3, 4))
    reason = metadata_reason(meta or {})
    scores = measure_input(pixels, crop)
    if not reason:
        reason = rule_reason(scores)
    if not reason:
        evidence = weighted_evidence(tail_scores(scores))
        scores["evidence"] = float(sum(evidence.values()))
        if scores["evidence"] > MAX_EVIDENCE:
            reason = evidence_reason(evidence, scores)
    return InputCheck(ok=not reason, reason=reason, scores=scores)


def metadata_reason(meta: Mapping[str, Any]) -> str:
    """A rejection from DICOM tags in `meta` (modality, body part), or "" when they allow MR of the head."""
    modality = _meta_text(meta, ("modality", "Modality"))
    if modality and modality not in PIXEL_CHECK_MODALITIES:
        kind = _MODALITY_WORDS.get(modality, f"a '{modality}' image")
        return f"not a brain MRI slice: the file says it is {kind} (DICOM modality {modality}), not MRI"
    part = _meta_text(meta, ("body_part", "body_part_examined", "BodyPartExamined"))
    if part and not names_head(anatomy_words(part)):
        return f"not a brain MRI slice: the file says the body part is {part.lower()}, not the head"
    described = other_body_part(tuple(meta.get("described_anatomy") or ()))
    if described:
        return f"not a brain MRI slice: the file's description names the {described}, not the head"
    return ""


_MODALITY_WORDS = {
    "CT": "a CT scan", "CR": "an X-ray", "DX": "an X-ray", "MG": "a mammogram", "US": "an ultrasound",
    "NM": "a nuclear-medicine image", "PT": "a PET scan", "XA": "an angiogram", "RF": "a fluoroscopy image",
    "SEG": "a segmentation mask", "IO": "a dental X-ray", "OP": "an eye photograph", "XC": "a photograph",
}


def _meta_text(meta: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The first non-empty value among `keys`, upper-cased and stripped ("" when none)."""
    for key in keys:
        value = meta.get(key)
        if value:
            return str(value).strip().upper()
    return ""
