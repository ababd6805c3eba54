"""Plain features of a scan and of its brain crop, measured for the input check (core.quality.input_check).

Features are measured on the grey image shrunk to at most 256 px and stretched to its own
0.5-99.5 percentiles, so a dim but real slice (top of the head) is judged by its shape, not its
brightness. The head is the largest region above a triangle threshold (MR background is the
dominant dark histogram peak), holes filled. Measured: its surround (dark edges and corners,
background level, contrast to the outside, other objects), shape (size, fill of its box, solidity,
fit to an ellipse, aspect, thickness, offset), inside (edge density, noise vs smoothness, flat
fills, unused grey levels, spread and level of the core, bright fraction, bone-ring profile) and
the crop from :func:`core.crop_brain`. One module of about 450 lines: every feature is measured on the same
working image and head outline (`find_head`), so splitting it would pass those between modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.imaging.pixels import levels_at

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
#: Blank: fewer grey levels than this between the 0.5th and 99.5th percentiles...
MIN_GREY_RANGE = 3
#: The head must cover at least this fraction of the image (real slices: 0.1 % percentile 0.03).
MIN_HEAD_FRACTION = 0.01

_K3 = np.ones((3, 3), np.uint8)


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
