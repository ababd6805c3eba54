"""A new explanation method is one module plus one registry line: it then shows up in the CLI and the app."""

from __future__ import annotations

import numpy as np
import pytest

from core import cli
from core.explain import METHODS, Method, explain, register
from core.explain.registry import method_labels


def centre_map(explainer, model_input, features, target):
    """A tiny 'method': a peak at the centre of the layer's grid (what a one-file method returns)."""
    height, width = explainer.feature_shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    return -((yy - height / 2) ** 2 + (xx - width / 2) ** 2).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_classifier():
    """An untrained flat CNN with the real model's head names (the map comes from the method, not the weights)."""
    keras = pytest.importorskip("keras")
    from core.model.classifier import Classifier

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="last_conv")(inputs)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    outputs = keras.layers.Activation("sigmoid", name="tumour_probability")(x)
    return Classifier(model=keras.Model(inputs, outputs), card={"name": "tiny", "explain_layer": "last_conv"})


@pytest.fixture()
def centre_method():
    method = register(Method("centre", "Centre (test)", centre_map))
    yield method
    METHODS.pop("centre")


def test_registered_method_is_a_cli_choice(centre_method):
    parser = cli.build_parser()
    args = parser.parse_args(["predict", "x.jpg", "--method", "centre"])
    assert args.method == "centre"
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "x.jpg", "--method", "nonexistent"])


def test_registered_method_is_offered_by_the_app(centre_method):
    import app_support

    assert app_support.methods()["Centre (test)"] == "centre"
    assert list(method_labels())[:3] == ["Grad-CAM", "Grad-CAM++", "Score-CAM"]


def test_registered_method_runs_through_explain(centre_method, tiny_classifier):
    scan = np.zeros((80, 80), np.uint8)
    scan[10:70, 10:70] = 120
    result = explain(tiny_classifier, scan, method="centre")
    assert result.method == "centre" and not result.blank
    y, x = np.unravel_index(np.argmax(result.crop_heatmap), result.crop_heatmap.shape)
    height, width = result.crop_heatmap.shape
    assert abs(y - height / 2) <= height / 4 and abs(x - width / 2) <= width / 4


def test_unknown_method_names_the_choices(tiny_classifier):
    with pytest.raises(ValueError, match="gradcam"):
        explain(tiny_classifier, np.zeros((64, 64), np.uint8), method="nonexistent")
