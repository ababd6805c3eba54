"""Training augmentation (train/transforms/augment.py): contracts, seeding, geometry, and skimage parity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.exposure import match_histograms

from tests.support.paths import SHARED_DATA
from train.transforms.augment import (
    Compose,
    HistogramMatch,
    RandomAffine,
    RandomBrightness,
    affine_matrix,
    brightness_lut,
    match_lut,
    recipe_augmentation,
    reference_histogram,
)

DATA = SHARED_DATA


def slice_like(seed: int, size=(96, 80), tissue=120, spread=40) -> np.ndarray:
    """uint8 HxW: a textured ellipse on black, like a cropped MRI slice."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.zeros(size, np.uint8)
    cv2.ellipse(image, (width // 2, height // 2), (width // 2 - 4, height // 2 - 6), 0, 0, 360, 1, -1)
    texture = cv2.GaussianBlur(rng.normal(tissue, spread, size), (5, 5), 0)
    return np.where(image > 0, np.clip(texture, 1, 255), 0).astype(np.uint8)


REFERENCE_IMAGES = [slice_like(s, tissue=150, spread=50) for s in (10, 11, 12)]
REFERENCE_HIST = reference_histogram(REFERENCE_IMAGES)
IMAGE = slice_like(0)


def all_transforms():
    return {
        "histogram match": HistogramMatch(REFERENCE_HIST, p=1.0),
        "affine": RandomAffine(),
        "brightness": RandomBrightness(),
        "recipe": recipe_augmentation(REFERENCE_HIST),
    }


TRANSFORMS = all_transforms()


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())
@pytest.mark.parametrize("shape", [(96, 80), (50, 70, 3)], ids=["grey", "rgb"])
def test_uint8_in_same_shape_uint8_out_input_untouched(transform, shape):
    image = slice_like(1, size=shape[:2])
    if len(shape) == 3:
        image = np.dstack([image] * 3)
    before = image.copy()
    out = transform(image, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out is not image
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())
def test_same_seed_same_output_different_seed_different_output(transform):
    first = transform(IMAGE, np.random.default_rng(42))
    again = transform(IMAGE, np.random.default_rng(42))
    np.testing.assert_array_equal(first, again)
    # the histogram match at p=1 is deterministic; the random ones must vary with the seed
    if not isinstance(transform, HistogramMatch):
        others = [transform(IMAGE, np.random.default_rng(seed)) for seed in range(1, 6)]
        assert any(not np.array_equal(first, other) for other in others)


@pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())
@pytest.mark.parametrize(
    "image, rng",
    [
        (np.zeros((8, 8), np.float32), np.random.default_rng(0)),
        (np.zeros((8, 8, 2), np.uint8), np.random.default_rng(0)),
        (np.zeros((8, 8), np.uint8), 0),
    ],
    ids=["float", "two channels", "int seed"],
)
def test_bad_call_arguments_are_refused(transform, image, rng):
    with pytest.raises((ValueError, TypeError), match="Received"):
        transform(image, rng)


# --------------------------------------------------------------------------- identity when disabled

DISABLED = {
    "histogram match p=0": HistogramMatch(REFERENCE_HIST, p=0.0),
    "affine all zero": RandomAffine(0, 0, 0, 0, 0, 0),
    "brightness 1..1": RandomBrightness(1.0, 1.0),
    "recipe all off": recipe_augmentation(
        None, hist_match_p=0, rotation=0, shift=0, zoom=0, shear=0, brightness=0, hflip=0, vflip=0
    ),
    "recipe brightness None": recipe_augmentation(
        None, hist_match_p=0, rotation=0, shift=0, zoom=0, shear=0, brightness=None, hflip=0, vflip=0
    ),
    "empty compose": Compose([]),
}


@pytest.mark.parametrize("transform", DISABLED.values(), ids=DISABLED.keys())
def test_disabled_transform_is_identity(transform):
    for seed in range(5):
        np.testing.assert_array_equal(transform(IMAGE, np.random.default_rng(seed)), IMAGE)


SINGLE_AFFINE = {
    "rotation": (dict(rotation=30), True),
    "shift": (dict(shift=0.1), True),
    "zoom": (dict(zoom=0.3), True),
    "shear": (dict(shear=15), True),
    "hflip": (dict(hflip=0.5), True),
    "vflip": (dict(vflip=0.5), True),
}


@pytest.mark.parametrize("settings", [s for s, _ in SINGLE_AFFINE.values()], ids=SINGLE_AFFINE.keys())
def test_each_affine_setting_alone_changes_the_image(settings):
    transform = RandomAffine(**{**dict(rotation=0, shift=0, zoom=0, shear=0, hflip=0, vflip=0), **settings})
    outputs = [transform(IMAGE, np.random.default_rng(seed)) for seed in range(8)]
    assert any(not np.array_equal(out, IMAGE) for out in outputs)


def test_recipe_leaves_out_disabled_steps():
    assert len(recipe_augmentation(REFERENCE_HIST)) == 3
    assert len(recipe_augmentation(None, hist_match_p=0)) == 2
    assert len(recipe_augmentation(None, hist_match_p=0, brightness=(1, 1))) == 1


# --------------------------------------------------------------------------- geometry


def affine_only(**settings):
    return RandomAffine(**{**dict(rotation=0, shift=0, zoom=0, shear=0, hflip=0, vflip=0), **settings})


@pytest.mark.parametrize(
    "settings, expected",
    [
        (dict(hflip=1.0), np.fliplr),
        (dict(vflip=1.0), np.flipud),
        (dict(hflip=1.0, vflip=1.0), lambda image: image[::-1, ::-1]),
    ],
    ids=["hflip", "vflip", "both"],
)
@pytest.mark.parametrize("shape", [(96, 80), (31, 47, 3)], ids=["even grey", "odd rgb"])
def test_flips_are_exact(settings, expected, shape):
    image = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    out = affine_only(**settings)(image, np.random.default_rng(0))
    np.testing.assert_array_equal(out, expected(image))


def spot_image(x, y, size=(101, 121)):
    image = np.zeros(size, np.uint8)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return image


def brightest(image):
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(image, (5, 5), 0)), image.shape)
    return int(x), int(y)


@pytest.mark.parametrize(
    "settings, source, target",
    [
        # centre (60, 50); 90 deg counter-clockwise on screen: right of centre -> above it
        (dict(rotation=90), (90, 50), (60, 20)),
        (dict(rotation=-90), (90, 50), (60, 80)),
        (dict(scale=1.5), (80, 50), (90, 50)),
        (dict(shift=(10, -5)), (60, 50), (70, 45)),
        # shear along x by 45 deg: x moves by (y - cy)
        (dict(shear=45), (60, 70), (80, 70)),
        (dict(hflip=True), (90, 40), (30, 40)),
    ],
    ids=["rot+90", "rot-90", "zoom", "shift", "shear", "hflip"],
)
def test_matrix_moves_a_bright_spot_where_expected(settings, source, target):
    image = spot_image(*source)
    matrix = affine_matrix(image.shape, **settings)
    warped = cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR)
    assert np.abs(np.subtract(brightest(warped), target)).max() <= 1


def test_random_affine_warps_with_its_sampled_matrix():
    transform = RandomAffine()
    image = slice_like(5)
    matrix = transform.sample_matrix(image.shape, np.random.default_rng(9))
    expected = cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(transform(image, np.random.default_rng(9)), expected)


def test_sampled_matrices_stay_in_their_ranges():
    transform = RandomAffine(rotation=30, shift=0.1, zoom=0.3, shear=0, hflip=0, vflip=0)
    height, width = 100, 200
    for seed in range(200):
        matrix = transform.sample_matrix((height, width), np.random.default_rng(seed))
        linear = matrix[:, :2]
        scale = np.sqrt(abs(np.linalg.det(linear)))
        angle = np.degrees(np.arctan2(linear[0, 1], linear[0, 0]))
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        moved = linear @ centre + matrix[:, 2] - centre
        assert 0.7 - 1e-9 <= scale <= 1.3 + 1e-9
        assert -30 - 1e-9 <= angle <= 30 + 1e-9
        assert abs(moved[0]) <= 0.1 * width + 1e-9 and abs(moved[1]) <= 0.1 * height + 1e-9


def test_outside_the_source_is_black():
    image = np.full((64, 64), 200, np.uint8)
    out = affine_only(shift=0.5)(image, np.random.default_rng(1))
    assert out.min() == 0 and out.max() == 200


# --------------------------------------------------------------------------- brightness


def test_brightness_factor_stays_in_range():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    level = image.astype(np.float64)
    transform = RandomBrightness(0.7, 1.3)
    factors = []
    for seed in range(100):
        out = transform(image, np.random.default_rng(seed)).astype(np.float64)
        assert np.all(out >= np.floor(level * 0.7)) and np.all(out <= np.minimum(255, np.ceil(level * 1.3)))
        factors.append(out[6, 4] / level[6, 4])  # grey level 100
    assert min(factors) < 0.8 and max(factors) > 1.2


def test_brightness_clips_instead_of_wrapping():
    lut = brightness_lut(1.3)
    assert lut[255] == 255 and lut[200] == 255 and lut[100] == 130
    assert brightness_lut(0.7)[255] == 178


# --------------------------------------------------------------------------- histogram matching


def skimage_matched(image, references):
    """skimage's answer for the pooled reference pixels (what reference_histogram pools)."""
    pooled = np.concatenate([ref.reshape(-1) for ref in references])
    return match_histograms(image, pooled.reshape(1, -1))


def real_crops(count=4):
    paths = sorted((DATA / "br35h" / "yes").glob("*.jpg"))[:count]
    if not paths:
        return []
    from core.imaging.crop import crop_brain
    from core.imaging.preprocess import prepare_crop
    from core.io import read_scan

    return [prepare_crop(crop_brain(read_scan(p).pixels).image, 128) for p in paths]


MATCH_CASES = {
    "slice to brighter slices": (slice_like(0), REFERENCE_IMAGES),
    "dark low-contrast slice": (slice_like(1, tissue=40, spread=8), REFERENCE_IMAGES),
    "odd size, one reference": (slice_like(2, size=(33, 57)), [slice_like(3, size=(70, 20))]),
    "few grey levels (ties)": ((slice_like(4) // 40) * 40, REFERENCE_IMAGES),
    "reference with few levels": (slice_like(5), [(slice_like(6) // 60) * 60]),
    "full-range noise": (np.random.default_rng(7).integers(0, 256, (40, 40)).astype(np.uint8), REFERENCE_IMAGES),
}


@pytest.mark.parametrize("image, references", MATCH_CASES.values(), ids=MATCH_CASES.keys())
def test_lookup_table_matches_skimage_within_one_grey_level(image, references):
    lut = match_lut(image, reference_histogram(references))
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    ours = cv2.LUT(image, lut).astype(np.float64)
    assert np.abs(ours - skimage_matched(image, references)).max() <= 0.5 + 1e-9


def test_lookup_table_matches_skimage_on_real_crops():
    crops = real_crops()
    if not crops:
        pytest.skip(f"real data not found at {DATA / 'br35h'} (see shared/data/SOURCES.md)")
    references, images = crops[:2], crops[2:]
    for image in images:
        ours = cv2.LUT(image, match_lut(image, reference_histogram(references))).astype(np.float64)
        assert np.abs(ours - skimage_matched(image, references)).max() <= 1


def test_matching_moves_the_histogram_towards_the_reference():
    image = slice_like(1, tissue=40, spread=8)
    matched = HistogramMatch(REFERENCE_HIST, p=1.0)(image, np.random.default_rng(0))
    reference_mean = (np.arange(256) * REFERENCE_HIST).sum()
    assert abs(matched.mean() - reference_mean) < 0.1 * abs(image.mean() - reference_mean)


def test_reference_histogram_is_normalised_and_pools_pixels():
    hist = reference_histogram([np.zeros((2, 2), np.uint8), np.full((2, 6), 255, np.uint8)])
    assert hist.dtype == np.float64 and hist.shape == (256,)
    assert hist[0] == pytest.approx(0.25) and hist[255] == pytest.approx(0.75) and hist.sum() == pytest.approx(1)


@pytest.mark.parametrize("p, expected_rate", [(0.0, 0.0), (1.0, 1.0), (0.3, 0.3)])
def test_histogram_match_probability(p, expected_rate):
    transform = HistogramMatch(REFERENCE_HIST, p=p)
    matched = cv2.LUT(IMAGE, match_lut(IMAGE, REFERENCE_HIST))
    assert not np.array_equal(matched, IMAGE)
    rng = np.random.default_rng(0)
    outs = [transform(IMAGE, rng) for _ in range(1000)]
    applied = [np.array_equal(out, matched) for out in outs]
    assert all(np.array_equal(out, IMAGE) for out, hit in zip(outs, applied) if not hit)
    assert np.mean(applied) == pytest.approx(expected_rate, abs=0.05)


# --------------------------------------------------------------------------- argument checks

BAD_ARGUMENTS = {
    "hist p > 1": (lambda: HistogramMatch(REFERENCE_HIST, p=1.5), "p=1.5"),
    "hist short": (lambda: HistogramMatch(np.ones(10)), "reference_hist"),
    "hist negative": (lambda: HistogramMatch(-np.ones(256)), "reference_hist"),
    "hist all zero": (lambda: HistogramMatch(np.zeros(256)), "reference_hist"),
    "rotation negative": (lambda: RandomAffine(rotation=-5), "rotation=-5"),
    "rotation too big": (lambda: RandomAffine(rotation=200), "rotation=200"),
    "shift 1": (lambda: RandomAffine(shift=1.0), "shift=1.0"),
    "zoom 1": (lambda: RandomAffine(zoom=1), "zoom=1"),
    "shear 90": (lambda: RandomAffine(shear=90), "shear=90"),
    "hflip 2": (lambda: RandomAffine(hflip=2), "hflip=2"),
    "vflip str": (lambda: RandomAffine(vflip="0.5"), "vflip='0.5'"),
    "interpolation": (lambda: RandomAffine(interpolation="cubic"), "interpolation='cubic'"),
    "brightness low > high": (lambda: RandomBrightness(1.3, 0.7), "low=1.3"),
    "brightness negative": (lambda: RandomBrightness(-1, 1), "low=-1"),
    "recipe brightness str": (lambda: recipe_augmentation(REFERENCE_HIST, brightness="x"), "brightness='x'"),
    "recipe brightness 1.5": (lambda: recipe_augmentation(REFERENCE_HIST, brightness=1.5), "brightness=1.5"),
    "recipe no reference": (lambda: recipe_augmentation(None), "reference_hist=None"),
    "compose non-callable": (lambda: Compose([1]), "transform=1"),
    "reference of floats": (lambda: reference_histogram([np.zeros(3, np.float32)]), "float32"),
}


@pytest.mark.parametrize("make, named", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_settings_raise_value_error_naming_the_value(make, named):
    with pytest.raises(ValueError, match="Received") as error:
        make()
    assert named in str(error.value)
