"""train.transforms.appearance: appearance augmentation (no model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.support.synthetic import brain
from train.transforms.appearance import (
    OFF,
    STANDARD,
    Appearance,
    RandomAppearance,
)

ONE_STEP = {  # each setting enables exactly one step, always applied (p = 1)
    "gamma": Appearance(gamma=(1.6, 1.8), p=1.0),
    "contrast": Appearance(contrast=(0.5, 0.6), p=1.0),
    "blur": Appearance(blur=2.0, p=1.0),
    "sharpen": Appearance(sharpen=2.0, p=1.0),
    "resample": Appearance(resample=0.25, p=1.0),
    "noise": Appearance(noise=20.0, p=1.0),
    "bias_field": Appearance(bias_field=0.5, p=1.0),
    "jpeg": Appearance(jpeg=5, p=1.0),
}


@pytest.mark.parametrize("name", list(ONE_STEP))
def test_each_step_changes_the_image_and_keeps_its_type(name):
    image = brain()
    before = image.copy()
    out = RandomAppearance(ONE_STEP[name])(image, np.random.default_rng(3))
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(image, before)  # the input is never modified
    assert np.abs(out.astype(int) - image).mean() > 0.5, name


def test_seeded_reproducible_and_rgb():
    transform = RandomAppearance(STANDARD)
    image = brain()
    a = transform(image, np.random.default_rng(7))
    b = transform(image, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    outs = [transform(image, np.random.default_rng(seed)) for seed in range(6)]
    assert len({out.tobytes() for out in outs}) == 6  # different seeds, different looks
    rgb = np.repeat(image[..., None], 3, axis=2)
    out = transform(rgb, np.random.default_rng(1))
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_off_is_the_identity_and_the_default():
    assert Appearance() == OFF and not OFF.enabled and STANDARD.enabled
    assert not Appearance(p=0.0, noise=5.0).enabled
    image = brain()
    np.testing.assert_array_equal(RandomAppearance(OFF)(image, np.random.default_rng(0)), image)


@pytest.mark.parametrize("kwargs, message", [
    ({"gamma": (2.0, 1.0)}, "gamma must be a range"),
    ({"contrast": (0.0, 1.0)}, "contrast must be a range"),
    ({"gamma": 1.2}, "gamma must be a range"),
    ({"blur": -1.0}, r"blur must be a number in \[0, 10\]"),
    ({"resample": 0.0}, r"resample must be a number in \(0.05, 1\]"),
    ({"noise": 100.0}, "noise must be a number"),
    ({"bias_field": 1.0}, "bias_field must be a number"),
    ({"jpeg": 100}, r"jpeg must be 0 \(off\) or a quality in \[1, 95\]"),
    ({"jpeg": 2.5}, "jpeg must be 0"),
    ({"p": 1.5}, "p must be a number"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Appearance(**kwargs)


def test_bad_inputs_are_refused():
    transform = RandomAppearance(STANDARD)
    with pytest.raises(ValueError, match="uint8"):
        transform(brain().astype(np.float32), np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        transform(brain(), 3)
    with pytest.raises(TypeError, match="Appearance settings"):
        RandomAppearance({"gamma": (1, 2)})


def test_settings_record_round_trips():
    record = STANDARD.to_dict()
    assert record["gamma"] == [0.7, 1.5] and record["jpeg"] == 30
    assert Appearance(**record) == STANDARD  # lists become tuples again
    assert dataclasses.replace(STANDARD, noise=0.0).noise == 0.0
