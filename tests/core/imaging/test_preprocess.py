"""The one path from a crop to the model's input (core/imaging/preprocess.py), identical for every caller."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import core
from core.imaging.crop import crop_brain
from core.imaging.preprocess import INPUT_SIZE, caffe_normalise, prepare_crop, to_model_input


def grey_crop(size=(180, 150), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros(size, np.uint8)
    cv2.ellipse(image, (size[1] // 2, size[0] // 2), (size[1] // 2 - 5, size[0] // 2 - 5), 0, 0, 360, 1, -1)
    texture = rng.integers(20, 256, size)
    return np.where(image > 0, texture, 0).astype(np.uint8)


def keras_reference(grey: np.ndarray) -> np.ndarray:
    """Keras' own caffe preprocessing of the grey image repeated into RGB float."""
    from keras.applications.resnet50 import preprocess_input

    rgb = np.repeat(grey[..., None].astype(np.float32), 3, axis=-1)
    return np.asarray(preprocess_input(rgb.copy()))


SHAPES = {
    "shrink": (300, 260),
    "enlarge": (100, 90),
    "already 224": (224, 224),
    "wide": (60, 400),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_model_input_is_keras_resnet50_preprocessing_of_the_grey_crop(shape):
    crop = grey_crop(shape)
    before = crop.copy()
    tensor = to_model_input(crop)
    assert tensor.dtype == np.float32 and tensor.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    np.testing.assert_allclose(tensor, keras_reference(prepare_crop(crop)), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(crop, before)
    assert -124 < tensor.min() and tensor.max() < 152


def test_caffe_normalise_does_not_modify_its_input_and_handles_batches():
    batch = np.stack([prepare_crop(grey_crop(seed=s), 32) for s in range(3)])
    before = batch.copy()
    out = caffe_normalise(batch)
    np.testing.assert_array_equal(batch, before)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32
    for image, tensor in zip(batch, out):
        np.testing.assert_array_equal(tensor, caffe_normalise(image))


@pytest.mark.parametrize("size", [32, 64, 299])
def test_other_sizes(size):
    tensor = to_model_input(grey_crop(), size=size)
    assert tensor.shape == (size, size, 3) and tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, keras_reference(prepare_crop(grey_crop(), size)), atol=1e-5)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_and_grey_of_the_same_content_give_identical_tensors(channels):
    grey = grey_crop()
    rgb = np.dstack([grey] * channels)
    if channels == 4:
        rgb[:, :, 3] = 255
    np.testing.assert_array_equal(to_model_input(rgb), to_model_input(grey))


def test_prepare_crop_returns_a_copy_at_the_target_size():
    crop = grey_crop((224, 224))
    prepared = prepare_crop(crop)
    np.testing.assert_array_equal(prepared, crop)
    assert not np.shares_memory(prepared, crop)


# --------------------------------------------------------------------------- every caller, one tensor


def scan_with_brain(seed=0) -> np.ndarray:
    scan = np.zeros((256, 300), np.uint8)
    crop = grey_crop((150, 130), seed)
    scan[60:210, 100:230] = crop
    return scan


def test_app_and_trainer_paths_give_identical_tensors():
    crop = crop_brain(scan_with_brain()).image
    app = core.to_model_input(crop)
    trainer = caffe_normalise(prepare_crop(crop))  # prepare_crop is cached, then normalised per batch
    np.testing.assert_array_equal(app, trainer)


@pytest.fixture(scope="module")
def tiny_classifier():
    import keras

    from core.model.classifier import Classifier

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return Classifier(model=keras.Model(inputs, outputs), card={"name": "tiny", "weights_sha256": "0" * 64})


def test_classifier_predict_feeds_the_same_tensors(tiny_classifier, monkeypatch):
    scans = [scan_with_brain(0), np.dstack([scan_with_brain(1)] * 3)]
    seen = []
    original = tiny_classifier.predict_inputs

    def spy(inputs):
        seen.append(np.array(inputs))
        return original(inputs)

    monkeypatch.setattr(tiny_classifier, "predict_inputs", spy)
    probabilities = tiny_classifier.predict(scans)
    expected = np.stack([core.to_model_input(core.crop_brain(scan).image, 32) for scan in scans])
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], expected)
    assert probabilities.shape == (2,) and np.all((0 <= probabilities) & (probabilities <= 1))
    # and the model really sees them: the same numbers as calling it directly
    direct = np.asarray(tiny_classifier.model(expected, training=False))[:, 0]
    np.testing.assert_allclose(probabilities, direct, rtol=1e-6)


# --------------------------------------------------------------------------- bad inputs

BAD = {
    "float image": (lambda: to_model_input(np.zeros((10, 10), np.float32)), "float32"),
    "list": (lambda: to_model_input([[1, 2], [3, 4]]), "list"),
    "size too small": (lambda: to_model_input(grey_crop(), size=16), "size=16"),
    "size float": (lambda: to_model_input(grey_crop(), size=224.0), "size=224.0"),
    "size bool": (lambda: prepare_crop(grey_crop(), size=True), "size=True"),
    "empty crop": (lambda: to_model_input(np.zeros((0, 10), np.uint8)), "shape=(0, 10)"),
    "two channels": (lambda: to_model_input(np.zeros((10, 10, 2), np.uint8)), "shape=(10, 10, 2)"),
    "normalise float": (lambda: caffe_normalise(np.zeros((4, 4), np.float64)), "float64"),
}


@pytest.mark.parametrize("call, named", BAD.values(), ids=BAD.keys())
def test_bad_inputs_raise_value_error_naming_the_value(call, named):
    with pytest.raises(ValueError, match="Received") as error:
        call()
    assert named in str(error.value)
