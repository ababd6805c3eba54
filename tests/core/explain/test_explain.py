"""Tests for core.explain: localisation, sanity checks and geometry on a tiny CNN trained in seconds.

The synthetic task: a grey "brain" (an ellipse on black) that holds a bright disc
(label 1, "tumour") or not (label 0). A flat CNN with the real model's head layer
names (`logit`, `tumour_probability`) learns it in a few epochs, so the same code
path as the ResNet50 runs, and the disc says where the map must peak.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from core.explain import (
    METHODS,
    Explanation,
    blend,
    explain,
    is_blank,
    place_in_scan,
)
from core.imaging.crop import crop_brain
from core.imaging.preprocess import to_model_input
from core.model.classifier import Classifier

keras = pytest.importorskip("keras")

SIZE = 64  # model input
LAYER = "last_conv"


# --- synthetic scans ---------------------------------------------------------------------------


def brain_scan(rng, shape=(72, 72), brain_box=None, disc=None):
    """uint8 scan: black, a textured grey ellipse filling `brain_box`, and optionally a bright disc.

    disc: (cx, cy, radius) in scan pixels, or None.
    """
    height, width = shape
    x0, y0, x1, y1 = brain_box or (4, 4, width - 4, height - 4)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    scan = np.zeros(shape, dtype=np.float32)
    scan[inside] = 90 + rng.normal(0, 12, size=inside.sum())
    if disc is not None:
        dx, dy, radius = disc
        scan[(xx - dx) ** 2 + (yy - dy) ** 2 <= radius**2] = 230
    return np.clip(scan, 0, 255).astype(np.uint8)


def random_disc(rng, brain_box):
    """A disc well inside the ellipse inscribed in `brain_box`: (cx, cy, radius)."""
    x0, y0, x1, y1 = brain_box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    radius = rng.uniform(0.08, 0.12) * min(rx, ry) * 2
    angle, reach = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * 0.6
    return cx + reach * rx * np.cos(angle), cy + reach * ry * np.sin(angle), radius


def dataset(rng, count, shape=(72, 72)):
    """(scans, labels, discs): half with a disc; discs[i] is None for negatives."""
    box = (4, 4, shape[1] - 4, shape[0] - 4)
    labels = rng.permutation(np.arange(count) % 2)
    discs = [random_disc(rng, box) if label else None for label in labels]
    scans = [brain_scan(rng, shape, box, disc) for disc in discs]
    return scans, labels, discs


def model_inputs(scans, size=SIZE):
    """The classifier's own preprocessing, as explain() applies it."""
    return np.stack([to_model_input(crop_brain(scan).image, size) for scan in scans])


def tiny_cnn(seed=0):
    """A flat CNN with the real model's head names: ... -> last_conv -> max_pool -> logit -> tumour_probability."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name=LAYER)(x)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    outputs = keras.layers.Activation("sigmoid", name="tumour_probability")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def classifier_for(model, **card):
    return Classifier(model=model, card={"name": "tiny", "threshold": 0.5, "explain_layer": LAYER, **card})


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained on 1200 synthetic scans; accuracy on held-out scans is checked."""
    rng = np.random.default_rng(0)
    scans, labels, _ = dataset(rng, 1200)
    model = tiny_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(model_inputs(scans), labels.astype("float32"), batch_size=32, epochs=6, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out():
    rng = np.random.default_rng(1)
    return dataset(rng, 60)


@pytest.fixture(scope="module")
def classifier(trained):
    return classifier_for(trained)


def test_tiny_model_learned_the_task(classifier, held_out):
    scans, labels, _ = held_out
    accuracy = np.mean((classifier.predict(scans) > 0.5) == labels)
    assert accuracy >= 0.95


# --- 1. localisation ---------------------------------------------------------------------------


def peak_in_disc(heatmap, disc, margin=1.0):
    y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    cx, cy, radius = disc
    return np.hypot(x + 0.5 - cx, y + 0.5 - cy) <= radius + margin


@pytest.mark.parametrize("method", METHODS)
def test_map_peaks_inside_the_disc(classifier, held_out, method):
    scans, labels, discs = held_out
    hits = [
        peak_in_disc(explain(classifier, scan, method).heatmap, disc)
        for scan, label, disc in zip(scans, labels, discs)
        if label == 1
    ]
    assert len(hits) == 30
    assert np.mean(hits) >= 0.9, f"{method}: peak inside the disc for {np.mean(hits):.0%} of positives"


def test_matches_tf_keras_vis_on_the_whole_model(classifier, held_out):
    """The cut, compiled explainer gives tf-keras-vis' textbook Grad-CAM/Grad-CAM++
    (ReplaceToLinear on a clone, image as seed input)."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    scan = held_out[0][int(np.argmax(held_out[1]))]
    seed = model_inputs([scan])
    for method, visualiser in (("gradcam", Gradcam), ("gradcam++", GradcamPlusPlus)):
        reference = np.asarray(visualiser(classifier.model, model_modifier=ReplaceToLinear(), clone=True)(
            BinaryScore(True), seed, penultimate_layer=LAYER, seek_penultimate_conv_layer=False,
            expand_cam=False, normalize_cam=True,
        ))[0]
        ours = explain(classifier, scan, method)
        crop = ours.crop
        expected = place_in_scan(
            _resize(reference, crop.image.shape[:2]), crop.box, scan.shape[:2]
        )
        np.testing.assert_allclose(ours.heatmap, expected, atol=2e-3, err_msg=method)


def _resize(grid, shape):
    import cv2

    resized = cv2.resize(grid.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return (resized - resized.min()) / (resized.max() - resized.min())


# --- 2. model randomisation --------------------------------------------------------------------


def correlation(a, b):
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_randomising_top_layers_changes_the_map(trained, held_out):
    randomised = tiny_cnn(seed=123)
    top = {LAYER, "logit"}
    for layer, source in zip(randomised.layers, trained.layers):
        if layer.name not in top:
            layer.set_weights(source.get_weights())
    scans, labels, _ = held_out
    positives = [scan for scan, label in zip(scans, labels) if label == 1][:12]
    learned, random = classifier_for(trained), classifier_for(randomised)
    correlations = [
        correlation(explain(learned, scan).heatmap, explain(random, scan).heatmap) for scan in positives
    ]
    assert np.mean(correlations) < 0.5, correlations


# --- 3. saturation -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saturated(trained):
    """The trained model with its logit scaled 200x: sigmoid outputs round to exactly 0.0 or 1.0."""
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    kernel, bias = model.get_layer("logit").get_weights()
    model.get_layer("logit").set_weights([kernel * 200, bias * 200])
    return classifier_for(model)


@pytest.mark.parametrize("method", METHODS)
def test_saturated_prediction_still_gives_a_map(saturated, held_out, method):
    scans, labels, discs = held_out
    index = next(i for i, label in enumerate(labels) if label == 1 and saturated.predict([scans[i]])[0] == 1.0)
    result = explain(saturated, scans[index], method)
    assert result.probability == 1.0
    assert not result.blank
    assert np.all(np.isfinite(result.heatmap)) and result.heatmap.max() == pytest.approx(1.0, abs=1e-3)
    if method != "scorecam":
        assert peak_in_disc(result.heatmap, discs[index])


# --- 4. geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, brain_box",
    [((150, 260), (150, 12, 246, 108)), ((260, 150), (10, 140, 106, 236)), ((120, 200), (20, 30, 140, 110))],
)
def test_map_lands_on_the_same_pixels_in_scan_and_crop(classifier, shape, brain_box):
    rng = np.random.default_rng(7)
    disc = random_disc(rng, brain_box)
    scan = brain_scan(rng, shape, brain_box, disc)
    result = explain(classifier, scan)
    x0, y0, x1, y1 = result.crop.box
    assert not result.crop.fell_back and (x0, y0) != (0, 0)
    assert result.heatmap.shape == shape and result.heatmap.dtype == np.float32
    assert result.crop_heatmap.shape == (y1 - y0, x1 - x0) == result.crop.image.shape[:2]
    np.testing.assert_array_equal(result.heatmap[y0:y1, x0:x1], result.crop_heatmap)
    outside = np.ones(shape, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert not result.heatmap[outside].any()
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    # The peak in scan coordinates is on the disc, and on the same pixel of the crop.
    y, x = np.unravel_index(np.argmax(result.heatmap), shape)
    cy, cx = np.unravel_index(np.argmax(result.crop_heatmap), result.crop_heatmap.shape)
    assert (y, x) == (cy + y0, cx + x0)
    assert peak_in_disc(result.heatmap, disc, margin=2.0)


def test_rgb_scan_gives_a_grey_sized_map(classifier, held_out):
    scan = held_out[0][0]
    rgb = np.repeat(scan[:, :, None], 3, axis=2)
    grey_result, rgb_result = explain(classifier, scan), explain(classifier, rgb)
    assert rgb_result.heatmap.shape == scan.shape
    np.testing.assert_allclose(rgb_result.heatmap, grey_result.heatmap, atol=1e-5)


# --- 5. the classifier's model is untouched ----------------------------------------------------


def test_explaining_leaves_the_model_unchanged(trained, held_out):
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    layers = list(model.layers)
    nodes = [len(layer._inbound_nodes) for layer in layers]
    weights = [w.copy() for w in model.get_weights()]
    output_activation = model.get_layer("tumour_probability").activation
    clf = classifier_for(model)
    before = clf.predict(held_out[0][:4])
    for method in METHODS:
        for target in ("tumour", "no_tumour"):
            explain(clf, held_out[0][1], method, target)
    assert list(model.layers) == layers
    assert [len(layer._inbound_nodes) for layer in model.layers] == nodes
    for old, new in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert model.get_layer("tumour_probability").activation is output_activation
    np.testing.assert_array_equal(clf.predict(held_out[0][:4]), before)


# --- probability, targets, caching, threads ------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_probability_is_the_classifiers(classifier, held_out, method):
    for scan in held_out[0][:3]:
        result = explain(classifier, scan, method)
        assert result.probability == pytest.approx(float(classifier.predict([scan])[0]), abs=1e-5)
        assert (result.method, result.target, result.layer) == (method, "tumour", LAYER)


def test_no_tumour_map_is_evidence_against(classifier, held_out):
    scans, labels, discs = held_out
    index = int(np.argmax(labels))
    tumour = explain(classifier, scans[index], "gradcam", "tumour")
    against = explain(classifier, scans[index], "gradcam", "no_tumour")
    assert against.target == "no_tumour"
    assert against.blank or correlation(tumour.heatmap, against.heatmap) < 0.5


def test_explainer_is_built_once_and_reused(trained, held_out):
    clf = classifier_for(trained)
    explain(clf, held_out[0][0], method="gradcam")
    explainer = clf.explainers[LAYER]
    visualiser = explainer.cached("Gradcam", lambda: None)
    explain(clf, held_out[0][1], method="gradcam")
    assert clf.explainers[LAYER] is explainer and explainer.cached("Gradcam", lambda: None) is visualiser
    assert visualiser is not None


def test_layer_argument_overrides_the_card(trained, held_out):
    clf = Classifier(model=trained, card={"name": "tiny"})  # no explain_layer in the card
    with pytest.raises(ValueError, match="conv5_block3_out"):
        explain(clf, held_out[0][0])
    assert explain(clf, held_out[0][0], layer=LAYER).layer == LAYER


def test_concurrent_explanations_agree(classifier, held_out):
    scans = held_out[0][:4]
    expected = [explain(classifier, scan).heatmap for scan in scans]
    results = {}

    def work(index):
        results[index] = explain(classifier, scans[index % 4]).heatmap

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, heatmap in results.items():
        np.testing.assert_allclose(heatmap, expected[index % 4], atol=1e-5)
    assert len(results) == 8


# --- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "gradcam+"}, "method='gradcam\\+'"),
        ({"target": "tumor"}, "target='tumor'"),
        ({"layer": "no_such_layer"}, "layer='no_such_layer'"),
        ({"layer": "max_pool"}, "layer='max_pool'"),
    ],
)
def test_bad_arguments_are_named(classifier, held_out, kwargs, message):
    with pytest.raises(ValueError, match=message):
        explain(classifier, held_out[0][0], **kwargs)


def test_model_without_logit_layer_is_refused(held_out):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalMaxPooling2D()(x))
    clf = Classifier(model=keras.Model(inputs, outputs), card={})
    with pytest.raises(ValueError, match="'logit' layer"):
        explain(clf, held_out[0][0], layer="conv")


def test_bad_pixels_are_refused(classifier):
    with pytest.raises(ValueError, match="uint8"):
        explain(classifier, np.zeros((64, 64), dtype=np.float32))


# --- blank maps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cam, blank",
    [
        (np.zeros((7, 7)), True),  # all evidence negative, cut by ReLU
        (np.full((7, 7), 3.5), True),  # flat: localises nothing
        (np.full((7, 7), 3.5) + np.eye(7) * 1e-5, True),  # flat within BLANK_REL_TOL of the peak
        (np.where(np.eye(7) > 0, np.nan, 1.0), True),  # not finite
        (np.full((7, 7), np.inf), True),
        (np.zeros((0, 0)), True),
        (np.eye(7) * 1e-11, True),  # below BLANK_ABS_TOL
        (np.eye(7) * 1e-6, False),  # tiny scale but structured: signal
        (np.eye(7), False),
    ],
)
def test_is_blank(cam, blank):
    assert is_blank(cam) is blank


def test_blank_explanation_is_all_zero_and_overlay_is_the_scan(trained, held_out):
    """A model whose logit ignores the features (zero kernel) has no evidence anywhere."""
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    kernel, bias = model.get_layer("logit").get_weights()
    model.get_layer("logit").set_weights([np.zeros_like(kernel), bias])
    result = explain(classifier_for(model), held_out[0][0])
    assert result.blank
    assert not result.heatmap.any() and not result.crop_heatmap.any()
    np.testing.assert_array_equal(result.overlay(), np.repeat(held_out[0][0][:, :, None], 3, axis=2))


# --- overlays ------------------------------------------------------------------------------------


def test_overlay_colours_only_where_the_map_is_positive(classifier, held_out):
    scan = held_out[0][int(np.argmax(held_out[1]))]
    result = explain(classifier, scan)
    for on, base, heat in (("scan", scan, result.heatmap), ("crop", result.crop.image, result.crop_heatmap)):
        image = result.overlay(alpha=0.5, on=on)
        assert image.dtype == np.uint8 and image.shape == (*base.shape[:2], 3)
        grey = np.repeat(base[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(image[heat == 0], grey[heat == 0])
        assert np.abs(image.astype(int) - grey)[heat > 0.5].mean() > 10
    np.testing.assert_array_equal(result.overlay(alpha=0.0), np.repeat(scan[:, :, None], 3, axis=2))


def test_overlay_strongest_evidence_is_yellow():
    image = np.zeros((2, 2), dtype=np.uint8)
    heat = np.array([[0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    pixel = blend(image, heat, alpha=1.0)[0, 1]
    assert pixel[0] > 200 and pixel[1] > 200 and pixel[2] < 200  # inferno's top: pale yellow


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"alpha": -0.1}, {"alpha": "0.4"}, {"on": "mask"}])
def test_overlay_bad_arguments(classifier, held_out, kwargs):
    result = explain(classifier, held_out[0][0])
    with pytest.raises(ValueError, match="Received"):
        result.overlay(**kwargs)


def test_explanation_type(classifier, held_out):
    assert isinstance(explain(classifier, held_out[0][0]), Explanation)
