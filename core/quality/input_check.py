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
   skull there instead, between scalp fat and brain).
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

Features are measured on the grey image shrunk to at most 256 px and stretched to its own
0.5-99.5 percentiles, so a dim but real slice (top of the head) is judged by its shape, not its
brightness. The head is the largest region above a triangle threshold (MR background is the
dominant dark histogram peak), holes filled. Measured: its surround (dark edges and corners,
background level, contrast to the outside, other objects), shape (size, fill of its box, solidity,
fit to an ellipse, aspect, thickness, offset), inside (edge density, noise vs smoothness, flat
fills, unused grey levels, spread and level of the core, bright fraction, bone-ring profile) and
the crop from :func:`core.crop_brain`. Slices whose raw contrast is below 20 grey levels (where
the crop gives up) are judged the same way, and called nearly blank when rejected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.imaging.pixels import check_uint8, levels_at
from core.io.anatomy import anatomy_words, names_head, other_body_part

if TYPE_CHECKING:
    from core.imaging.crop import Crop

#: Longest side the features are measured at (larger scans are shrunk first).
WORK_SIDE = 256
#: trim_page: a page is brighter than PAGE_LEVEL; a picture's rows and columns hold more than PAGE_DARK_SHARE
#: darker pixels; margins are cut when they cover PAGE_MIN_MARGIN of the image with at most PAGE_MARGIN_DARK
#: of it dark, and the picture keeps PAGE_MIN_SIDE of each side.
PAGE_LEVEL = 225
PAGE_DARK_SHARE = 0.3
PAGE_MIN_MARGIN = 0.05
PAGE_MARGIN_DARK = 0.2
PAGE_MIN_SIDE = 0.4
#: A flat padded background: this share of the outer band (PAD_BAND of the shorter side) lies within PAD_TOLERANCE
#: grey levels of one level between PAD_MIN_LEVEL and PAD_MAX_LEVEL (a mid-grey fill some exports put around the
#: head; white pages are trim_page's). The flat region joined to the border is then set to black.
PAD_SHARE = 0.9
PAD_BAND = 0.04
PAD_TOLERANCE = 2
PAD_MIN_LEVEL = 16
PAD_MAX_LEVEL = 224
#: ...unless the largest object it surrounds fills more than this share of its bounding box (a rectangular
#: panel, not a head).
PAD_MAX_EXTENT = 0.95
#: A dark background's grey level is this quantile of the image's outer band: its median would be tissue where
#: a sagittal or coronal head runs off the image's edges.
BACKGROUND_QUANTILE = 0.2
#: Other regions within this fraction of the shorter side of the head are part of it (scalp, face), not other objects.
OBJECT_GAP = 0.03
#: ...when the head covers at least this fraction of the image (a sagittal brain does; a line of text does not).
NEAR_OBJECTS_MIN_HEAD = 0.1
#: A pixel is coloured when its channels differ by more than this many grey levels.
COLOUR_CHROMA = 40
#: Reject when more than this fraction of pixels is coloured (real slices: at most 0.04).
MAX_COLOUR_FRACTION = 0.10
#: Blank: fewer grey levels than this between the 0.5th and 99.5th percentiles...
MIN_GREY_RANGE = 3
#: ...or one grey level covering more than this fraction of the image (real slices: at most 0.95).
MAX_MODE_FRACTION = 0.97
#: Raw 1st-99th percentile range below which a slice is called nearly blank in the reason
#: (the same level at which core.imaging.crop gives up looking for an outline).
LOW_SIGNAL_CONTRAST = 20
#: The head must cover at least this fraction of the image (real slices: 0.1 % percentile 0.03).
MIN_HEAD_FRACTION = 0.01
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
#: DICOM modalities left to the pixel checks (MR, and secondary captures, which may hold an MR
#: picture); any other modality is rejected. Body-part words accepted when the file names one.
PIXEL_CHECK_MODALITIES = frozenset({"MR", "OT", "SC"})

_K3 = np.ones((3, 3), np.uint8)


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


# --- measurements --------------------------------------------------------------------------------


def measure_input(pixels: np.ndarray, crop: Crop) -> dict[str, float]:
    """Every feature of `pixels` (uint8 HxW or HxWx3) and its `crop`, name -> float.

    Features that cannot be measured (no head found, a blank image) are absent.
    """
    return {name: float(value) for name, value in _measure(pixels, crop).items()}


def _measure(pixels: np.ndarray, crop: Crop) -> dict[str, Any]:
    """measure_input's work; values may be numpy scalars."""
    grey, rgb = _working_images(pixels)
    scores = {"colour_fraction": colour_fraction(rgb) if rgb is not None else 0.0}
    scores.update(_crop_features(crop, pixels.shape))
    stretched, levels = _stretch(grey)
    scores.update(levels)
    if stretched is None:
        return scores
    head = find_head(stretched)
    scores.update(head.surround)
    if head.contour is None:
        return scores
    scores.update(_shape_features(head.contour, head.mask))
    scores.update(_inside_features(grey, head))
    scores.update(_bone_ring_features(head, scores.get("core_level", 0.0)))
    return scores


def _working_images(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 HxW or HxWx3 -> (grey uint8 hxw, RGB uint8 hxwx3 or None), longest side <= WORK_SIDE."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3:
        pixels = pixels[:, :, :3]
    height, width = pixels.shape[:2]
    scale = min(1.0, WORK_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    if pixels.ndim == 2:
        grey, rgb = trim_page(pixels, None)
    else:
        grey, rgb = trim_page(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), pixels)
    return blacken_padding(grey), rgb


def blacken_padding(grey: np.ndarray) -> np.ndarray:
    """uint8 hxw -> the same with a flat mid-grey padding around the picture set to 0 (see PAD_SHARE); unchanged
    when the outer band is not one flat level."""
    band = _outer_band(grey, max(1, round(PAD_BAND * min(grey.shape))))
    level = int(np.median(band))
    if not PAD_MIN_LEVEL <= level <= PAD_MAX_LEVEL:
        return grey
    if np.mean(np.abs(band.astype(np.int16) - level) <= PAD_TOLERANCE) < PAD_SHARE:
        return grey
    flat = (np.abs(grey.astype(np.int16) - level) <= PAD_TOLERANCE).astype(np.uint8)
    _, labels = cv2.connectedComponents(flat, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    padding = np.isin(labels, border[border > 0])
    count, parts, stats, _ = cv2.connectedComponentsWithStats((~padding).astype(np.uint8), connectivity=8)
    if count < 2:
        return grey
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    box = stats[largest, cv2.CC_STAT_WIDTH] * stats[largest, cv2.CC_STAT_HEIGHT]
    if stats[largest, cv2.CC_STAT_AREA] > PAD_MAX_EXTENT * box:
        return grey  # the main object is a rectangle (a chart's or a screenshot's panel), not a head
    out = grey.copy()
    out[padding] = 0
    return out


def trim_page(grey: np.ndarray, rgb: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut away bright margins around a picture: a slice pasted on a white page or framed by white panels.

    grey: uint8 hxw; rgb: the same pixels uint8 hxwx3, or None. The picture is the box of the rows and columns
    more than PAGE_DARK_SHARE of whose pixels are darker than PAGE_LEVEL (in areas wider than thin lines); the
    margins outside it are cut only when they are at least PAGE_MIN_MARGIN of the image, almost all bright, and
    the box keeps PAGE_MIN_SIDE of each side.
    Returns the (possibly cut) grey and rgb images.
    """
    # opened, so that thin frame lines and text strokes on the page do not count as picture
    dark = cv2.morphologyEx((grey < PAGE_LEVEL).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
    rows = np.flatnonzero(dark.mean(axis=1) > PAGE_DARK_SHARE)
    cols = np.flatnonzero(dark.mean(axis=0) > PAGE_DARK_SHARE)
    if not rows.size or not cols.size:
        return grey, rgb
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    margin = np.ones_like(dark)
    margin[top:bottom, left:right] = False
    height, width = grey.shape
    if (margin.mean() < PAGE_MIN_MARGIN or dark[margin].mean() > PAGE_MARGIN_DARK
            or bottom - top < PAGE_MIN_SIDE * height or right - left < PAGE_MIN_SIDE * width):
        return grey, rgb
    return grey[top:bottom, left:right], None if rgb is None else rgb[top:bottom, left:right]


def colour_fraction(rgb: np.ndarray) -> float:
    """Fraction [0, 1] of pixels of a uint8 HxWx3 image whose channels differ by more than COLOUR_CHROMA."""
    red, green, blue = cv2.split(rgb)
    chroma = cv2.subtract(cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue))
    return float(np.count_nonzero(chroma > COLOUR_CHROMA)) / chroma.size


def _quantiles(values: np.ndarray, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Quantiles of uint8 `values` (any shape, non-empty), through a histogram (fast)."""
    return levels_at(np.bincount(values.ravel(), minlength=256), fractions)


def _stretch(grey: np.ndarray) -> tuple[np.ndarray | None, dict[str, float]]:
    """Stretch uint8 HxW grey so its 0.5-99.5 percentiles span [0, 255].

    Returns (stretched uint8 HxW, or None when the range is below MIN_GREY_RANGE, and
    {"contrast": raw 1st-99th percentile range, "grey_range": raw 0.5-99.5 range,
    "mode_fraction": share of the commonest grey level}).
    """
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    low, p1, p99, high = levels_at(hist, (0.005, 0.01, 0.99, 0.995))
    levels = {"contrast": float(p99 - p1), "grey_range": float(high - low),
              "mode_fraction": float(hist.max() / hist.sum())}
    if high - low < MIN_GREY_RANGE:
        return None, levels
    lut = np.clip((np.arange(256) - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    return cv2.LUT(grey, lut), levels


def _crop_features(crop: Crop, shape: tuple[int, ...]) -> dict[str, float]:
    """How much of the scan (HxW...) the brain crop keeps, and whether it fell back to all of it."""
    x0, y0, x1, y1 = crop.box
    area = max(0, x1 - x0) * max(0, y1 - y0)
    return {"crop_fraction": area / float(shape[0] * shape[1]), "crop_fell_back": float(crop.fell_back)}


@dataclass
class Head:
    """The head found in a stretched grey image (all arrays hxw, the working size).

    image: the stretched grey image, inverted when its background was bright (uint8 [0, 255]).
    mask: uint8 {0, 1}, the largest bright region with its holes filled; contour: its outline
    (None when no head-sized region exists); threshold: the grey level [0, 255] separating it
    from the background; distance: float32 distance of each head pixel to the outline, in pixels;
    radius: sqrt(area / pi); surround: features of the background around it.
    """

    image: np.ndarray
    mask: np.ndarray
    contour: np.ndarray | None
    threshold: float
    distance: np.ndarray | None = None
    radius: float = 0.0
    surround: dict[str, float] = field(default_factory=dict)


def find_head(stretched: np.ndarray) -> Head:
    """Find the head in a uint8 HxW image stretched to [0, 255].

    The background is the grey level of the outer band: a band whose median is bright is inverted
    first (as core.imaging.crop does) and its median taken; a dark one gives its BACKGROUND_QUANTILE (a head
    running off the edges puts tissue in the band). The threshold is the triangle threshold of the
    blurred image (the foot of the dark background peak), kept between 4 % and 25 % of the way from
    the background to white.
    """
    height, width = stretched.shape
    band = max(1, round(0.05 * min(height, width)))
    median, low = (float(q) for q in _quantiles(_outer_band(stretched, band), (0.5, BACKGROUND_QUANTILE)))
    background = median if median > 127 else low
    background_level = background / 255.0
    if median > 127:
        stretched = 255 - stretched
        background = 255 - background
    blurred = cv2.GaussianBlur(stretched, (5, 5), 0)
    triangle, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_TRIANGLE)
    threshold = float(np.clip(triangle, background + 0.04 * (255 - background),
                              background + 0.25 * (255 - background)))
    mask = cv2.morphologyEx((blurred > threshold).astype(np.uint8), cv2.MORPH_OPEN, _K3, iterations=2)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    areas = [cv2.contourArea(c) for c in contours]
    surround = {"border_dark": float(np.mean(_outer_band(blurred, band) <= threshold)),
                "corner_dark": _corner_dark(blurred, threshold), "background_level": background_level}
    if not contours or max(areas) < MIN_HEAD_FRACTION * height * width:
        surround["head_fraction"] = max(areas, default=0.0) / (height * width)
        return Head(image=stretched, mask=np.zeros_like(mask), contour=None, threshold=threshold, surround=surround)
    best = int(np.argmax(areas))
    head = np.zeros_like(mask)
    cv2.drawContours(head, contours, best, 1, thickness=-1)
    surround["other_objects"] = float(_apart_from(head, mask))
    surround["edge_touch"] = float(np.mean(_outer_band(head, 1)))
    surround.update(_outside_features(blurred, head))
    padded = cv2.copyMakeBorder(head, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # the image edge is outline too
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    radius = math.sqrt(float(np.count_nonzero(head)) / math.pi)
    return Head(image=stretched, mask=head, contour=contours[best], threshold=threshold, distance=distance,
                radius=radius, surround=surround)


def _apart_from(head: np.ndarray, mask: np.ndarray) -> int:
    """How many regions of the uint8 {0, 1} `mask` other than the `head`, each at least 0.1 % of the image,
    lie apart from it: more than OBJECT_GAP of the shorter side away. Pieces of scalp and face beside the
    brain of a sagittal or coronal slice, cut off by the dark skull, are near it; text, symbols and panels
    of a screen layout are not. Only a head of at least NEAR_OBJECTS_MIN_HEAD of the image has such pieces."""
    height, width = head.shape
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask & (1 - head), connectivity=8)
    large = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= 0.001 * height * width)
    if np.count_nonzero(head) < NEAR_OBJECTS_MIN_HEAD * height * width:  # a line of text is no head
        return sum(1 for label in large if label != 0)
    gap = max(1, round(OBJECT_GAP * min(height, width)))
    near = cv2.dilate(head, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))) > 0
    touching = set(np.unique(labels[near]).tolist())
    return sum(1 for label in large if label != 0 and label not in touching)


def _outer_band(image: np.ndarray, band: int) -> np.ndarray:
    """The pixels of HxW `image` within `band` pixels of its edge, as one flat array."""
    return np.concatenate([image[:band].ravel(), image[-band:].ravel(),
                           image[band:-band, :band].ravel(), image[band:-band, -band:].ravel()])


def _corner_dark(blurred: np.ndarray, threshold: float) -> float:
    """Fraction of the four corner squares (10 % of the shorter side) at or below `threshold`."""
    side = max(1, round(0.1 * min(blurred.shape)))
    corners = (blurred[:side, :side], blurred[:side, -side:], blurred[-side:, :side], blurred[-side:, -side:])
    return float(np.mean([np.mean(c <= threshold) for c in corners]))


def _outside_features(blurred: np.ndarray, head: np.ndarray) -> dict[str, float]:
    """Contrast of the head to the outside and spread of the outside, as fractions of [0, 255].

    Absent when less than 2 % of the image lies outside the head.
    """
    outside = cv2.dilate(head, _K3, iterations=3) == 0
    if np.count_nonzero(outside) < 0.02 * head.size:
        return {}
    q25, q50, q75 = _quantiles(blurred[outside], (0.25, 0.5, 0.75))
    head_level = _quantiles(blurred[head > 0], (0.5,))[0]
    return {"head_contrast": (head_level - q50) / 255.0, "surround_spread": (q75 - q25) / 255.0}


def _shape_features(contour: np.ndarray, head: np.ndarray) -> dict[str, float]:
    """Shape of the head outline (an OpenCV contour) and its filled uint8 {0, 1} HxW mask.

    head_fraction: area / image area; head_extent: area / bounding-box area (an ellipse: 0.79);
    head_aspect: bounding-box width / height (heads are about as wide as tall or taller; a body
    section is wider); head_solidity: area / convex-hull area; head_ellipse_iou: overlap with the fitted ellipse;
    head_axis_ratio: minor / major axis of that ellipse; head_offset: distance of the box centre
    from the image centre, as a fraction of the image side.
    """
    height, width = head.shape
    area = float(np.count_nonzero(head))
    x, y, w, h = cv2.boundingRect(contour)
    features = {
        "head_fraction": area / (height * width),
        "head_extent": area / (w * h),
        "head_solidity": min(1.0, area / max(cv2.contourArea(cv2.convexHull(contour)), 1.0)),
        "head_offset": math.hypot((x + w / 2) / width - 0.5, (y + h / 2) / height - 0.5),
        "head_aspect": w / h,
        "head_ellipse_iou": 0.0, "head_axis_ratio": 0.0,
    }
    if len(contour) >= 5:
        ellipse = cv2.fitEllipse(contour)
        drawn = np.zeros_like(head)
        cv2.ellipse(drawn, ellipse, 1, thickness=-1)
        union = np.count_nonzero(drawn | head)
        features["head_ellipse_iou"] = np.count_nonzero(drawn & head) / max(union, 1)
        axes = ellipse[1]
        features["head_axis_ratio"] = min(axes) / max(max(axes), 1e-6)
    return features


def _inside_features(grey: np.ndarray, head: Head) -> dict[str, float]:
    """Texture inside the head, from the stretched image and the raw `grey` (uint8 HxW).

    dark_inside: share of the head below the threshold (lungs or bowel gas in a body scan);
    head_thickness: deepest point / radius (a filled ellipse: about 0.8-1; text lines, combs: low);
    level_gaps: share of the raw grey levels between the 1st and 99th percentiles of the head's
    tissue (above the threshold: a zeroed background, as in skull-stripped slices, is left out) in runs
    of 3+ levels no pixel uses (drawings, masks, posterised graphics; a dim slice uses all its few
    levels, a contrast stretch leaves only short runs);
    in the core (pixels deeper than a quarter of the radius): edge_density (share with a strong
    gradient), noise_ratio (mean |Laplacian| / mean |gradient|: high for noise, low for smooth
    ramps), core_spread and core_level (interquartile range and median, fractions of [0, 255]).
    """
    inside = head.mask > 0
    blurred = cv2.GaussianBlur(head.image, (5, 5), 0)
    tissue = inside & (head.image > head.threshold)  # not the background filled in with the holes
    features = {"dark_inside": float(np.mean(blurred[inside] <= head.threshold)),
                "head_thickness": float(head.distance.max()) / max(head.radius, 1.0),
                "level_gaps": _level_gaps(grey[tissue]) if np.any(tissue) else 0.0}
    core = head.distance > 0.25 * head.radius
    if np.count_nonzero(core) < 20:  # a thin shape (text lines, a ring): use all of it
        core = inside
    if np.count_nonzero(core) < 20:
        return features
    image = head.image.astype(np.float32)
    gx, gy = cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1)
    gradient = cv2.magnitude(gx, gy)[core]
    laplacian = np.abs(cv2.Laplacian(image, cv2.CV_32F, ksize=3))[core]
    q25, q50, q75 = _quantiles(head.image[core], (0.25, 0.5, 0.75))
    features.update(_flatness(grey, core))
    features.update({
        "edge_density": float(np.mean(gradient > 0.4 * 255)),
        "noise_ratio": float(laplacian.mean() / max(float(gradient.mean()), 1e-3)),
        "core_spread": (q75 - q25) / 255.0,
        "core_level": q50 / 255.0,
    })
    return features


def _flatness(grey: np.ndarray, core: np.ndarray) -> dict[str, float]:
    """flat_fraction: share of the `core` (bool HxW) pixels whose 3x3 neighbourhood in the raw
    `grey` (uint8 HxW) varies by less than 0.5 grey levels (standard deviation): flat fills of
    drawings, masks and phantoms; MR tissue always carries some noise."""
    values = grey.astype(np.float32)
    mean = cv2.blur(values, (3, 3))
    variance = cv2.blur(values * values, (3, 3)) - mean * mean
    laplacian = np.abs(cv2.Laplacian(values, cv2.CV_32F, ksize=3))
    return {"flat_fraction": float(np.mean(variance[core] < 0.25)),
            "smooth_fraction": float(np.mean(laplacian[core] < 1.0))}


def _level_gaps(values: np.ndarray) -> float:
    """Share [0, 1] of the grey levels between the 1st and 99th percentiles of uint8 `values` that
    lie in runs of 3 or more levels no value uses; 0 when that range is a single level.

    Runs, not single empty levels, so that a contrast stretch (which empties every second or third
    level) does not count: drawings and masks leave long empty runs between their few levels.
    """
    counts = np.bincount(values, minlength=256)
    low, high = levels_at(counts, (0.01, 0.99))
    if high <= low:
        return 0.0
    empty = np.r_[0, (counts[low:high + 1] == 0).astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(empty))
    lengths = edges[1::2] - edges[::2]
    return float(lengths[lengths >= 3].sum()) / (high - low + 1)


def _bone_ring_features(head: Head, core_level: float) -> dict[str, float]:
    """The bright ring around the head, where CT shows bone and MR shows scalp fat.

    bright_fraction: share of the head at >= 85 % of its 99th-percentile level; ring_enclosure:
    share of the head enclosed by the largest bright region (a closed ring encloses most of it);
    from the mean grey level of 1-pixel shells at increasing depth: ring_width (depth range of the
    brightest shells, >= 80 % of the peak, as a fraction of the radius) and inside_ring_level (the
    darkest of the 6 shells just inside them, relative to the core level). MR shows the dark skull
    there (low); CT shows brain right inside the bone (near 1).
    """
    image, inside = head.image, head.mask > 0
    area = float(np.count_nonzero(inside))
    bright = ((image >= 0.85 * _quantiles(image[inside], (0.99,))[0]) & inside).astype(np.uint8)
    features = {"bright_fraction": np.count_nonzero(bright) / area, "ring_enclosure": 0.0}
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return features
    filled = np.zeros_like(bright)
    cv2.drawContours(filled, [max(contours, key=cv2.contourArea)], -1, 1, thickness=-1)
    features["ring_enclosure"] = np.count_nonzero(filled > bright) / area
    profile = _shell_means(image, head)
    reach = min(16, len(profile))
    if reach == 0 or core_level <= 0:
        return features
    peak = int(np.argmax(profile[:reach]))
    start, end = peak, peak
    while start > 0 and profile[start - 1] >= 0.8 * profile[peak]:
        start -= 1
    while end + 1 < len(profile) and profile[end + 1] >= 0.8 * profile[peak]:
        end += 1
    features["ring_width"] = (end - start + 1) / max(head.radius, 1.0)
    if end + 1 < len(profile):
        features["inside_ring_level"] = float(profile[end + 1:end + 7].min()) / (255.0 * core_level)
    return features


def _shell_means(image: np.ndarray, head: Head) -> np.ndarray:
    """Mean grey level of the head's 1-pixel shells from the outline inwards, to 30 % of the radius."""
    inside = head.mask > 0
    depth = head.distance[inside].astype(np.int32)
    shells = max(1, min(40, int(0.3 * head.radius)))
    keep = depth < shells
    sums = np.bincount(depth[keep], weights=image[inside][keep], minlength=shells)
    counts = np.bincount(depth[keep], minlength=shells)
    valid = counts > 0
    return (sums[valid] / counts[valid]).astype(np.float64)


# --- rules and evidence --------------------------------------------------------------------------

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
