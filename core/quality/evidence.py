"""The input check's judgement of measured features: hard rules, then weighted tail evidence, in plain words.

Hard rules, each far outside every real slice: colour, blank, nothing head-sized, a CT bone ring, a body section
much wider than tall. Evidence: each feature's tail score (how far it lies in the tail of its distribution over
the real slices, TAILS), weighted (WEIGHTS) and summed; above MAX_EVIDENCE the image is refused and the reason
names the features that added most. The three tables are read from input_check_tables.json beside this module,
written by ``bench/bench_input_check.py --fit``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.quality.features import MIN_GREY_RANGE

#: Reject when more than this fraction of pixels is coloured (real slices: at most 0.04).
MAX_COLOUR_FRACTION = 0.10
#: Blank: one grey level covering more than this fraction of the image (real slices: at most 0.95); or fewer
#: grey levels than features.MIN_GREY_RANGE.
MAX_MODE_FRACTION = 0.97
#: Raw 1st-99th percentile range below which a slice is called nearly blank in the reason
#: (the same level at which core.imaging.crop gives up looking for an outline).
LOW_SIGNAL_CONTRAST = 20
#: A feature's tail score is capped here (tail probability 1e-5 or below).
MAX_FEATURE_SCORE = 4.0
#: CT bone ring: a bright region enclosing at least this share of the head...
CT_RING_ENCLOSURE = 0.5
#: ...whose brightest shells span at least this fraction of the head's radius...
CT_RING_WIDTH = 0.06
#: ...with brain just inside it at least this bright relative to the core (MR: dark skull)...
CT_INSIDE_LEVEL = 1.0
#: ...and a grey, not dark, core (median at least this fraction of [0, 255]; a dim MR top slice is darker).
CT_CORE_LEVEL = 0.23
#: A body section, not a head: a large object (at least BODY_MIN_FRACTION of the image), wholly inside the image
#: (at most BODY_MAX_EDGE_TOUCH of the edge on it), this many times wider than tall. An axial abdomen, pelvis or
#: chest is; of 13,363 real brain slices the check accepts, one (a last slice of an LGG volume) is.
BODY_MIN_ASPECT = 1.4
BODY_MIN_FRACTION = 0.2
BODY_MAX_EDGE_TOUCH = 0.05

_NOT_MRI = "not a brain MRI slice: "


def rule_reason(scores: Mapping[str, float]) -> str:
    """A rejection from the hard rules (colour, blank, no head, CT bone ring), or "" when none applies."""
    low_signal = scores.get("contrast", 0.0) < LOW_SIGNAL_CONTRAST
    if scores.get("colour_fraction", 0.0) > MAX_COLOUR_FRACTION:
        return _NOT_MRI + "it is a colour image (a photo, chart or screenshot); MRI slices are grey"
    if scores.get("grey_range", 0.0) < MIN_GREY_RANGE:
        return "the image is blank: it has no contrast at all"
    if scores.get("mode_fraction", 0.0) > MAX_MODE_FRACTION:
        return "the image is nearly blank: one flat grey level covers almost all of it"
    if "head_extent" not in scores:
        if low_signal:
            return "the slice is nearly blank: no head is visible (almost no brain in the image)"
        return _NOT_MRI + "nothing head-sized stands out from a dark background"
    if _looks_like_ct(scores):
        return _NOT_MRI + "it looks like a CT scan (a thick bright bone ring around evenly grey brain)"
    if _looks_like_body(scores):
        return _NOT_MRI + ("the main object is much wider than tall, like a cross-section of the abdomen, pelvis or "
                           "chest, not a head")
    return ""


def _looks_like_body(scores: Mapping[str, float]) -> bool:
    """A large object wholly inside the image and much wider than tall: a body section (heads are not)."""
    return (scores.get("head_aspect", 0.0) >= BODY_MIN_ASPECT
            and scores.get("head_fraction", 0.0) >= BODY_MIN_FRACTION
            and scores.get("edge_touch", 1.0) <= BODY_MAX_EDGE_TOUCH)


def _looks_like_ct(scores: Mapping[str, float]) -> bool:
    """A closed, thick, bright ring with brain right inside it and a grey core: CT bone."""
    return (scores.get("ring_enclosure", 0.0) >= CT_RING_ENCLOSURE
            and scores.get("ring_width", 0.0) >= CT_RING_WIDTH
            and scores.get("inside_ring_level", 0.0) >= CT_INSIDE_LEVEL
            and scores.get("core_level", 0.0) >= CT_CORE_LEVEL)


def tail_scores(scores: Mapping[str, float], tails: Mapping[str, tuple] | None = None
                ) -> dict[tuple[str, str], float]:
    """How unusual each feature is among real slices: {(feature, "low"|"high"): score >= 0}.

    score = -log10(tail probability) - 1, clipped to [0, MAX_FEATURE_SCORE]: 0 down to the 10 %
    tail, 1 at the 1 % tail, 2 at the 0.1 % tail; beyond the fitted tail the probability keeps
    falling by a decade per (0.1 % quantile - 1 % quantile) step. Features not measured score 0.
    """
    result = {}
    for name, sides in (TAILS if tails is None else tails).items():
        if name not in scores:
            continue
        for side, quantiles, step in sides:
            value = scores[name] if side == "low" else -scores[name]
            edges = quantiles if side == "low" else tuple(-q for q in quantiles)
            log_p = _log_tail_probability(value, edges, step)
            result[(name, side)] = float(np.clip(-log_p - 1.0, 0.0, MAX_FEATURE_SCORE))
    return result


#: Tail probabilities at which TAILS holds each feature's quantiles.
TAIL_PROBS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def _log_tail_probability(value: float, edges: tuple[float, ...], step: float) -> float:
    """log10 P(X <= value) from the quantiles `edges` at TAIL_PROBS (ascending), extrapolated below."""
    if value >= edges[-1]:
        return -1.0
    if value < edges[0]:
        return math.log10(TAIL_PROBS[0]) - (edges[0] - value) / step
    return float(np.interp(value, edges, np.log10(TAIL_PROBS)))


def weighted_evidence(tail: Mapping[tuple[str, str], float], weights: Mapping[tuple[str, str], float] | None = None
                      ) -> dict[tuple[str, str], float]:
    """Each tail score times its weight (`weights`, default WEIGHTS): the evidence it adds against an MR slice."""
    weights = WEIGHTS if weights is None else weights
    return {key: weights.get(key, 0.0) * value for key, value in tail.items()}


def evidence_reason(evidence: Mapping[tuple[str, str], float], scores: Mapping[str, float]) -> str:
    """The reason for a rejection by evidence: the one or two features that added most, in plain words."""
    ranked = sorted(evidence.items(), key=lambda item: -item[1])
    words = [_PHRASES[key] for key, value in ranked[:2] if value >= 1.0 and key in _PHRASES]
    words = list(dict.fromkeys(words)) or ["it does not look like any real slice measured"]
    if scores.get("contrast", 255.0) < LOW_SIGNAL_CONTRAST:
        return "the slice is nearly blank (almost no signal): " + "; ".join(words)
    strong = [key for key, value in ranked if value >= 1.0]  # the sliver wording only when nothing else is odd
    if strong and set(strong) <= _SLIVER_SHAPES:
        return _SLIVER + "; ".join(words)
    return _NOT_MRI + "; ".join(words)


# A head outline that is only too small, thin, elongated or off-centre (every other feature ordinary) is what
# the first and last slices of a volume look like: skull base, vertex or a registration sliver.
_SLIVER_SHAPES = {("head_axis_ratio", "low"), ("head_thickness", "low"), ("head_fraction", "low"),
                  ("head_ellipse_iou", "low"), ("head_offset", "high")}
_SLIVER = ("not a usable brain MRI slice: almost no brain in it (as in the first or last slices of a volume), "
           "or not a head: ")


_RING = "an unusually thick bright rim around the head"
_SHAPE = "the main object is not head-shaped"
_PHRASES = {
    ("colour_fraction", "high"): "it has coloured areas; MRI slices are grey",
    ("mode_fraction", "high"): "it is mostly one flat grey level",
    ("crop_fraction", "low"): "the brain crop keeps almost nothing of the image",
    ("border_dark", "low"): "its edges are not dark background",
    ("corner_dark", "low"): "its corners are not dark background",
    ("other_objects", "high"): "it holds many separate objects (text, symbols or a screen layout)",
    ("head_contrast", "low"): "the main object barely stands out from its surroundings",
    ("surround_spread", "high"): "the area around the main object is busy, not dark background",
    ("head_fraction", "low"): "the main object is too small to be a head (almost no brain)",
    ("head_fraction", "high"): "the main object fills the whole picture",
    ("head_extent", "low"): _SHAPE,
    ("head_extent", "high"): "the main object is rectangular, not head-shaped",
    ("head_solidity", "low"): "the main object's outline is ragged, not head-shaped",
    ("head_offset", "high"): "the main object is far from the centre",
    ("head_ellipse_iou", "low"): "the main object is not round or oval like a head",
    ("head_axis_ratio", "low"): "the main object is too elongated for a head",
    ("head_aspect", "low"): "the main object is too tall and narrow for a head",
    ("head_aspect", "high"): "the main object is much wider than a head (a body section?)",
    ("head_thickness", "low"): "the main object is thin strokes or lines, not a solid head",
    ("smooth_fraction", "high"): "it is smooth, without the fine structure of brain tissue",
    ("flat_fraction", "high"): "it has flat, evenly filled areas, like a drawing",
    ("background_level", "high"): "its background is bright, not dark",
    ("edge_touch", "high"): "the main object runs off the edges of the picture",
    ("dark_inside", "high"): "large dark areas inside the body (lungs or gas), as in a chest or abdomen scan",
    ("level_gaps", "high"): "it uses only a few grey levels, like a drawing, chart or mask",
    ("edge_density", "low"): "it is smooth, without the fine structure of brain tissue",
    ("edge_density", "high"): "it is full of sharp edges, like text, noise or a busy photo",
    ("noise_ratio", "low"): "it is a smooth gradient or blur, without brain structure",
    ("noise_ratio", "high"): "it looks like noise",
    ("core_spread", "low"): "the inside is nearly uniform",
    ("core_spread", "high"): "the inside is unusually patchy",
    ("core_level", "low"): "the inside is unusually dark",
    ("core_level", "high"): "the inside is unusually bright",
    ("bright_fraction", "high"): "much of it is at full brightness",
    ("ring_width", "high"): _RING,
    ("inside_ring_level", "high"): _RING,
}

#: The features scored for evidence and which tails of each count (low and/or high values).
TAIL_FEATURES: dict[str, tuple[str, ...]] = {
    "colour_fraction": ("high",), "mode_fraction": ("high",), "crop_fraction": ("low",),
    "border_dark": ("low",), "corner_dark": ("low",), "other_objects": ("high",),
    "head_contrast": ("low",), "surround_spread": ("high",), "head_fraction": ("low", "high"),
    "head_extent": ("low", "high"), "head_solidity": ("low",), "head_offset": ("high",),
    "head_ellipse_iou": ("low",), "head_axis_ratio": ("low",), "dark_inside": ("high",),
    "level_gaps": ("high",), "edge_density": ("low", "high"), "noise_ratio": ("low", "high"),
    "core_spread": ("low", "high"), "core_level": ("low", "high"), "bright_fraction": ("high",),
    "ring_width": ("high",), "inside_ring_level": ("high",), "flat_fraction": ("high",),
    "smooth_fraction": ("high",), "background_level": ("high",), "edge_touch": ("high",),
    "head_thickness": ("low",),
}

#: The fitted tables, written by ``bench/bench_input_check.py --fit`` (never by hand).
TABLES_FILE = Path(__file__).resolve().parent / "input_check_tables.json"


def _read_tables(path: Path = TABLES_FILE) -> tuple[dict, float, dict]:
    """(WEIGHTS, MAX_EVIDENCE, TAILS) from the tables file."""
    tables = json.loads(path.read_text())
    weights = {(name, side): float(weight) for name, side, weight in tables["weights"]}
    tails = {name: tuple((side, tuple(quantiles), step) for side, quantiles, step in sides)
             for name, sides in tables["tails"].items()}
    return weights, float(tables["max_evidence"]), tails


#: WEIGHTS: weight of each (feature, side) tail score in the evidence against an MR slice: non-negative
#: logistic regression of real slices against the non-MRI set and its grey, cropped and halved copies, each
#: source group and each category weighing the same; every weight lies in [0.1, 1], so no single feature
#: decides and any feature unusual for MR counts a little, even for kinds of image the fit never saw.
#: MAX_EVIDENCE: reject above this weighted evidence: the 98.8th percentile of the real slices' evidence in
#: the source group (br35h+nav, mos, lgg) where it is highest (the 99th let a second grey heat-map through).
#: TAILS: per feature, (side, quantiles at TAIL_PROBS of that side's tail, value step per decade beyond),
#: fitted on the real slices (each of br35h+nav, mos, lgg weighted equally; slices with a raw contrast below
#: LOW_SIGNAL_CONTRAST left out).
WEIGHTS, MAX_EVIDENCE, TAILS = _read_tables()
