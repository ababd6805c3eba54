"""Find the brain in an MRI slice and crop to it.

Two steps, so the box can map heatmaps back onto the scan:
:func:`find_brain_box` returns the box, :func:`crop_brain` also cuts it out.

The recipe: blur, threshold, morphology, largest outer contour, its extreme
points (its bounding box). Two additions make it robust: regions that touch the
border but fill little of their box (bright frames, whose outer contour would
enclose everything) are removed first, and on dark slices the threshold drops
below the recipe's 45 (:func:`tissue_threshold`). The background is judged from an outer band, not the outermost
ring of pixels, so a thin white frame does not make a scan look inverted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.imaging.pixels import check_uint8, levels_at, to_grey

#: Grey level (after blurring) above which a pixel counts as tissue (the recipe's value).
THRESHOLD = 45
#: On dark slices the threshold drops to this fraction of the way from the 1st to the 99th percentile.
DARK_FRACTION = 0.15
#: Bump whenever a change to this module moves boxes, so caches of crops are rebuilt.
CROP_VERSION = 2
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


def _check_pixels(pixels: np.ndarray) -> None:
    check_uint8(pixels, "array", channels=(1, 3, 4))


def _background_is_bright(grey: np.ndarray, hist: np.ndarray) -> bool:
    """Whether the median grey of the outer band (BACKGROUND_BAND of the shorter side) exceeds 127.

    hist: the (256,) histogram of `grey`.
    """
    band = max(1, round(BACKGROUND_BAND * min(grey.shape)))
    if 2 * band < min(grey.shape):  # remove the inside, keep the band
        hist = hist - cv2.calcHist([grey[band:-band, band:-band]], [0], None, [256], [0, 256]).reshape(-1)
    return levels_at(hist, (0.5,))[0] > 127


def _brain_region(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The brain's box (x0, y0, x1, y1) in a binary uint8 mask, or None.

    As in the recipe, the largest outer contour by enclosed area wins (so a
    skull ring counts with everything inside it), after regions that touch the
    border but fill little of their box (frames, rings around the slice) are
    removed. None when the winner encloses less than MIN_AREA_FRACTION of the scan.
    """
    sh, sw = mask.shape
    # 16-bit labels (faster): after the opening every region holds a 5x5 block, so a
    # SEARCH_SIZE^2 mask has far fewer than 65535 of them.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        touches_border = x == 0 or y == 0 or x + w == sw or y + h == sh
        if touches_border and area < FRAME_FILL_RATIO * w * h:
            mask[labels == label] = 0  # a frame or ring around the slice, not tissue
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    if cv2.contourArea(largest) < MIN_AREA_FRACTION * sh * sw:
        return None
    x, y, w, h = cv2.boundingRect(largest)  # the box of the contour's extreme points
    return x, y, x + w, y + h


def tissue_threshold(low: int, high: int) -> int:
    """The recipe's grey level 45, lowered for dark slices so a dim brain is not cut to its brightest part.

    low, high: the scan's 1st and 99th percentile grey levels (after any inversion check).
    """
    return int(min(THRESHOLD, low + DARK_FRACTION * (high - low)))


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

    hist = cv2.calcHist([small], [0], None, [256], [0, 256]).reshape(-1)
    low, high = levels_at(hist, (0.01, 0.99))
    if high - low < MIN_CONTRAST:
        return whole, True

    if _background_is_bright(small, hist):  # inverted display (white background): look for dark tissue
        small = 255 - small
        low, high = 255 - high, 255 - low

    blurred = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(blurred, tissue_threshold(low, high), 255, cv2.THRESH_BINARY)
    mask = cv2.erode(mask, None, iterations=2)
    mask = cv2.dilate(mask, None, iterations=2)

    best = _brain_region(mask)
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
