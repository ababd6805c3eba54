"""train.transforms.intensity_maps: random non-monotonic intensity maps and GIN random convolutions."""

from __future__ import annotations

import numpy as np
import pytest

from train.transforms.intensity_maps import RandomIntensityMap, RandomShallowConv, intensity_lut


def lesion_slice() -> np.ndarray:
    """uint8 64x64: a mid-grey disc on black with a bright square 'lesion'."""
    yy, xx = np.mgrid[:64, :64]
    image = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2, 110, 0).astype(np.uint8)
    image[26:38, 26:38] = 220
    return image


@pytest.mark.parametrize("transform", [RandomIntensityMap(p=1.0), RandomShallowConv(p=1.0)])
def test_grey_uint8_in_and_out_and_the_input_untouched(transform):
    image = lesion_slice()
    before = image.copy()
    out = transform(image, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(out, transform(image, np.random.default_rng(0)))  # seeded


@pytest.mark.parametrize("transform", [RandomIntensityMap(p=0.0), RandomShallowConv(p=0.0)])
def test_probability_zero_returns_an_equal_copy(transform):
    image = lesion_slice()
    out = transform(image, np.random.default_rng(1))
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_intensity_maps_can_invert_a_lesion_and_keep_the_background_dark():
    image, transform = lesion_slice(), RandomIntensityMap(p=1.0)
    darker = 0
    for seed in range(200):
        out = transform(image, np.random.default_rng(seed))
        assert out[0, 0] <= transform.dark + 0.5  # background (level 0) stays dark
        darker += int(out[30, 30]) < int(out[32, 10])  # the lesion darker than the tissue around it
    assert 40 < darker < 160  # polarity inverted often, not always


def test_intensity_lut_interpolates_between_knots():
    lut = intensity_lut(np.array([0.0, 100.0, 255.0]), np.array([0.0, 200.0, 50.0]))
    assert (lut[0], lut[50], lut[100], lut[255]) == (0, 100, 200, 50)


def test_gin_changes_texture_and_contrast_but_keeps_the_range():
    image, transform = lesion_slice(), RandomShallowConv(p=1.0)
    outs = [transform(image, np.random.default_rng(seed)) for seed in range(20)]
    assert all(0 <= o.min() and o.max() <= 255 for o in outs)
    assert sum(not np.array_equal(o, image) for o in outs) >= 19
    assert len({int(o[30, 30]) - int(o[32, 10]) for o in outs}) > 10  # the lesion's contrast varies


@pytest.mark.parametrize("make, match", [(lambda: RandomIntensityMap(p=1.5), "probability"),
                                         (lambda: RandomIntensityMap(knots=(2, 5)), "knots"),
                                         (lambda: RandomIntensityMap(dark=300), "dark"),
                                         (lambda: RandomShallowConv(layers=0), "layers")])
def test_bad_settings_say_what_is_wrong(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_colour_images_and_plain_seeds_are_refused():
    with pytest.raises(ValueError):
        RandomIntensityMap()(np.zeros((8, 8, 3), np.uint8), np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        RandomShallowConv()(np.zeros((8, 8), np.uint8), 3)
