"""Find the brain in an MRI slice and crop to it.

Two steps, so the box can map heatmaps back onto the scan:
:func:`find_brain_box` returns the box, :func:`crop_brain` also cuts it out.

The recipe: blur, threshold, morphology, largest outer region, its extreme
points. Connected components are used instead of outer contours so that a
bright frame around the slice (whose outer contour encloses everything) does
not win over the brain; the extreme points of a component are its bounding box.
A region whose box encloses the largest one (a skull ring separated from the
brain by dark CSF) extends the box, as the outer contour of that ring would in
the contour recipe. The background is judged from an outer band, not the outermost
ring of pixels, so a thin white frame does not make a scan look inverted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Grey level (after blurring) above which a pixel counts as tissue.
THRESHOLD = 45
#: Longest side the mask is searched at; larger scans are downscaled first.
SEARCH_SIZE = 512
#: A brain region must cover at least this fraction of the scan.
MIN_AREA_FRACTION = 0.02
#: Scans whose 1st-99th percentile grey range is below this have no outline.
MIN_CONTRAST = 20
#: A region touching the border and filling less than this of its box is a frame.
FRAME_FILL_RATIO = 0.3
#: Width of the outer band, as a fraction of the shorter side, whose median grey
#: tells the background: white background (inverted display) when above 127.
#: A band rather than the outermost ring, so a thin white frame is not taken for it.
BACKGROUND_BAND = 0.1


@dataclass(frozen=True)
class Crop:
    """A cropped brain.

    image: uint8, HxW or HxWx3 (same channels as the input), [0, 255].
    box: (x0, y0, x1, y1) in the input's pixel coordinates; x1, y1 exclusive.
    fell_back: True when no brain outline was found and the whole scan is used.
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    fell_back: bool


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) -> uint8 HxW."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_RGB2GRAY)
    raise ValueError(f"Expected an HxW or HxWx3 image. Received: shape={pixels.shape}")


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValueError(
            "Expected a uint8 numpy array. Received: "
            f"{type(pixels).__name__} of dtype {getattr(pixels, 'dtype', None)}"
        )
    if pixels.ndim not in (2, 3) or min(pixels.shape[:2]) < 1:
        raise ValueError(f"Expected an HxW or HxWx3 image. Received: shape={pixels.shape}")


def _background_is_bright(grey: np.ndarray) -> bool:
    """Whether the median grey of the outer band (BACKGROUND_BAND of the shorter side) exceeds 127."""
    band = max(1, round(BACKGROUND_BAND * min(grey.shape)))
    height, width = grey.shape
    if 2 * band >= min(height, width):
        return bool(np.median(grey) > 127)
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).reshape(-1)
    hist -= cv2.calcHist([grey[band:-band, band:-band]], [0], None, [256], [0, 256]).reshape(-1)
    median = int(np.searchsorted(np.cumsum(hist), hist.sum() / 2))
    return median > 127


def _brain_region(stats: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The brain's box (x0, y0, x1, y1) from connected-component stats (x, y, w, h, area) rows.

    The largest region that is not a frame, grown to the box of any other
    region enclosing it (a skull ring cut off from the brain by dark CSF).
    None when no region covers MIN_AREA_FRACTION of the scan.
    """
    sh, sw = shape
    regions = []
    for x, y, w, h, area in (tuple(int(v) for v in row) for row in stats):
        touches_border = x == 0 or y == 0 or x + w == sw or y + h == sh
        if touches_border and area < FRAME_FILL_RATIO * w * h:
            continue  # a frame or ring around the slice, not tissue
        regions.append(((x, y, x + w, y + h), area))
    if not regions:
        return None
    best, best_area = max(regions, key=lambda region: region[1])
    if best_area < MIN_AREA_FRACTION * sh * sw:
        return None
    x0, y0, x1, y1 = best
    for (a0, b0, a1, b1), _ in regions:
        if a0 <= best[0] and b0 <= best[1] and a1 >= best[2] and b1 >= best[3]:
            x0, y0, x1, y1 = min(x0, a0), min(y0, b0), max(x1, a1), max(y1, b1)
    return x0, y0, x1, y1


def find_brain_box(pixels: np.ndarray) -> tuple[tuple[int, int, int, int], bool]:
    """Locate the brain.

    pixels: uint8 HxW or HxWx3, [0, 255].
    Returns ((x0, y0, x1, y1), fell_back). On fallback the box is the whole scan.
    Never raises for a valid uint8 image, whatever it shows.
    """
    _check_pixels(pixels)
    grey = to_grey(pixels)
    height, width = grey.shape
    whole = (0, 0, width, height)

    scale = min(1.0, SEARCH_SIZE / max(height, width))
    small = grey
    if scale < 1.0:
        small = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)

    low, high = np.percentile(small, (1, 99))
    if high - low < MIN_CONTRAST:
        return whole, True

    if _background_is_bright(small):  # inverted display (white background): look for dark tissue
        small = 255 - small

    blurred = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(blurred, THRESHOLD, 255, cv2.THRESH_BINARY)
    mask = cv2.erode(mask, None, iterations=2)
    mask = cv2.dilate(mask, None, iterations=2)

    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best = _brain_region(stats[1:count], small.shape)
    if best is None:
        return whole, True

    x0, y0, x1, y1 = best
    if scale < 1.0:
        x0, y0 = int(np.floor(x0 / scale)), int(np.floor(y0 / scale))
        x1, y1 = int(np.ceil(x1 / scale)), int(np.ceil(y1 / scale))
    box = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
    return box, False


def crop_brain(pixels: np.ndarray) -> Crop:
    """Crop a scan to the brain.

    pixels: uint8 HxW or HxWx3, [0, 255] -> :class:`Crop` whose image keeps the channels.
    """
    box, fell_back = find_brain_box(pixels)
    x0, y0, x1, y1 = box
    return Crop(image=np.ascontiguousarray(pixels[y0:y1, x0:x1]), box=box, fell_back=fell_back)
