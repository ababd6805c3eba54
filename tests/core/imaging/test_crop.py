"""Brain box search and its fallbacks (core/imaging/crop.py), on synthetic and real scans."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.imaging.crop import Crop, crop_brain, find_brain_box
from tests.support.paths import SHARED_DATA

DATA = SHARED_DATA

# A synthetic slice: grey ellipse, off-centre, on a non-square black scan.
H, W = 300, 400
CENTRE, AXES = (230, 140), (90, 70)
#: (x0, y0, x1, y1), x1/y1 exclusive, of the ellipse drawn by cv2.ellipse.
ELLIPSE_BOX = (CENTRE[0] - AXES[0], CENTRE[1] - AXES[1], CENTRE[0] + AXES[0] + 1, CENTRE[1] + AXES[1] + 1)
TOLERANCE = 3  # pixels: blur and morphology move the outline by about one


def brain(height=H, width=W, centre=CENTRE, axes=AXES, tissue=170, background=0, texture=True):
    """uint8 HxW: a textured grey ellipse (the brain) on a flat background."""
    scan = np.full((height, width), background, np.uint8)
    cv2.ellipse(scan, centre, axes, 0, 0, 360, tissue, -1)
    if texture:
        noise = np.random.default_rng(0).normal(0, 20, scan.shape)
        inside = scan == tissue
        scan[inside] = np.clip(scan[inside] + noise[inside], 1, 255).astype(np.uint8)
    return scan


def assert_box_near(box, expected, tolerance=TOLERANCE):
    assert np.all(np.abs(np.subtract(box, expected)) <= tolerance), f"box {box} != {expected}"


def with_frame(scan, thickness=6):
    framed = scan.copy()
    framed[:thickness], framed[-thickness:] = 255, 255
    framed[:, :thickness], framed[:, -thickness:] = 255, 255
    return framed


def with_text(scan):
    labelled = scan.copy()
    cv2.putText(labelled, "L 12/03/2020", (5, H - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
    cv2.putText(labelled, "A", (5, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.8, 255, 5)
    return labelled


def with_skull(scan, gap=6, thickness=5):
    """A bright ring around the brain, cut off from it by a dark (CSF) gap."""
    ringed = scan.copy()
    axes = (AXES[0] + gap + thickness, AXES[1] + gap + thickness)
    cv2.ellipse(ringed, CENTRE, axes, 0, 0, 360, 220, thickness)
    return ringed


SKULL_BOX = (
    CENTRE[0] - AXES[0] - 13, CENTRE[1] - AXES[1] - 13, CENTRE[0] + AXES[0] + 14, CENTRE[1] + AXES[1] + 14
)

FOUND = {
    "plain": (brain(), ELLIPSE_BOX),
    "untextured": (brain(texture=False), ELLIPSE_BOX),
    "dim tissue": (brain(tissue=70), ELLIPSE_BOX),
    "white frame": (with_frame(brain()), ELLIPSE_BOX),
    # up to about half the background band (core.imaging.crop.BACKGROUND_BAND of the shorter side)
    "thick white frame": (with_frame(brain(), thickness=12), ELLIPSE_BOX),
    "burned-in text": (with_text(brain()), ELLIPSE_BOX),
    "inverted (white background)": (255 - brain(), ELLIPSE_BOX),
    "dark brain on white": (brain(tissue=60, background=255), ELLIPSE_BOX),
    "skull ring around the brain": (with_skull(brain()), SKULL_BOX),
    "frame, text and skull": (with_text(with_frame(with_skull(brain()))), SKULL_BOX),
}


@pytest.mark.parametrize("scan, expected", FOUND.values(), ids=FOUND.keys())
def test_finds_the_brain(scan, expected):
    box, fell_back = find_brain_box(scan)
    assert not fell_back
    assert_box_near(box, expected)


def test_very_large_scan_box_is_in_original_coordinates():
    scale = 3000 / W
    centre = (round(CENTRE[0] * 7.5), round(CENTRE[1] * 7.5))
    axes = (round(AXES[0] * 7.5), round(AXES[1] * 7.5))
    scan = brain(2500, 3000, centre, axes, texture=False)
    box, fell_back = find_brain_box(scan)
    expected = (centre[0] - axes[0], centre[1] - axes[1], centre[0] + axes[0] + 1, centre[1] + axes[1] + 1)
    assert not fell_back
    # searched at 512 px: one search pixel is ~6 original pixels
    assert_box_near(box, expected, tolerance=round(2 * scale))
    assert 0 <= box[0] < box[2] <= 3000 and 0 <= box[1] < box[3] <= 2500


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_crop_keeps_channels_and_cuts_the_box(channels):
    grey = brain()
    scan = grey if channels == 1 else np.dstack([grey] * channels)
    if channels == 4:
        scan[:, :, 3] = 255
    crop = crop_brain(scan)
    x0, y0, x1, y1 = crop.box
    assert isinstance(crop, Crop) and not crop.fell_back
    assert crop.image.dtype == np.uint8
    assert crop.image.shape == (y1 - y0, x1 - x0) + scan.shape[2:]
    np.testing.assert_array_equal(crop.image, scan[y0:y1, x0:x1])
    assert crop.image.flags.c_contiguous


def test_rgb_tint_gives_the_same_box_as_grey():
    grey = brain()
    tinted = np.dstack([grey, (grey * 0.8).astype(np.uint8), grey // 2])
    assert find_brain_box(tinted)[0] == pytest.approx(find_brain_box(grey)[0], abs=TOLERANCE)


def _speck():
    scan = np.zeros((H, W), np.uint8)
    scan[150:153, 200:203] = 255
    return scan


FALLBACKS = {
    "all black": np.zeros((H, W), np.uint8),
    "all white": np.full((H, W), 255, np.uint8),
    "flat grey": np.full((H, W), 128, np.uint8),
    "low-contrast noise": np.random.default_rng(1).integers(100, 112, (H, W)).astype(np.uint8),
    "tiny speck only": _speck(),
    "white frame only": with_frame(np.zeros((H, W), np.uint8)),
    "black RGB": np.zeros((H, W, 3), np.uint8),
    "one pixel": np.zeros((1, 1), np.uint8),
    "one row": np.zeros((1, 50), np.uint8),
}


@pytest.mark.parametrize("scan", FALLBACKS.values(), ids=FALLBACKS.keys())
def test_fallback_never_raises_and_uses_the_whole_scan(scan):
    crop = crop_brain(scan)
    height, width = scan.shape[:2]
    assert crop.fell_back
    assert crop.box == (0, 0, width, height)
    np.testing.assert_array_equal(crop.image, scan)


BAD = {
    "float image": np.zeros((10, 10), np.float32),
    "list": [[0, 1], [2, 3]],
    "1-D": np.zeros(10, np.uint8),
    "empty": np.zeros((0, 5), np.uint8),
    "4-D": np.zeros((2, 2, 2, 2), np.uint8),
}


@pytest.mark.parametrize("pixels", BAD.values(), ids=BAD.keys())
def test_bad_input_raises_value_error(pixels):
    with pytest.raises(ValueError, match="Received"):
        find_brain_box(pixels)


# --------------------------------------------------------------------------- real scans

REAL = [
    "br35h/yes/y0.jpg",
    "br35h/yes/y100.jpg",
    "br35h/no/no0.jpg",
    "br35h/no/no1095.jpg",  # thin white frame: used to be taken for an inverted scan
    "br35h/no/no114.jpg",  # white rounded frame
    "nav/yes/Y1.jpg",
    "mos/Testing/glioma/Te-gl_0010.jpg",
    "mos/Testing/notumor/Te-noTr_0000.jpg",
]


@pytest.mark.parametrize("name", REAL)
def test_real_scans_give_a_sane_box(name):
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (see shared/data/SOURCES.md)")
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is missing from the data folder")
    from core.io import read_scan

    pixels = read_scan(path).pixels
    height, width = pixels.shape[:2]
    crop = crop_brain(pixels)
    x0, y0, x1, y1 = crop.box
    assert not crop.fell_back
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    fraction = (x1 - x0) * (y1 - y0) / (width * height)
    assert 0.2 <= fraction <= 1.0, f"box covers {fraction:.0%} of the scan"
    # the crop holds the tissue: far brighter on average than what was cut away
    grey = pixels if pixels.ndim == 2 else pixels.mean(axis=2)
    assert grey[y0:y1, x0:x1].mean() > 20


@pytest.mark.parametrize("name", ["br35h/no/no1095.jpg", "br35h/no/no114.jpg"])
def test_real_scan_with_a_white_frame_is_cropped_inside_the_frame(name):
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"real scan not found at {path} (see shared/data/SOURCES.md)")
    from core.io import read_scan

    pixels = read_scan(path).pixels
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = find_brain_box(pixels)[0]
    assert x0 > 0 and y0 > 0 and x1 < width and y1 < height
