"""Tests for core.explain.metrics.faithfulness: localisation scores, ROAD-style hiding and statistics, on cases with
known answers.

The model cases use a CNN built by hand (no training) to see exactly one thing: a
bright disc. Its single conv channel is relu(grey - 180), max-pooled, so the
tumour probability is high when any pixel is brighter than 180 and low otherwise;
hiding the disc must drop it, hiding random brain elsewhere must not.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from core.explain import explain, place_in_scan
from core.explain.methods.occlusion import GRID, grey_of, patches
from core.explain.metrics.faithfulness import (
    brain_region,
    deletion_curve,
    describe_faithfulness,
    energy_inside,
    faithfulness_summary,
    hide,
    impute,
    input_map,
    outline_share_in_box,
    patient_bootstrap,
    pointing_game,
    random_map,
    spearman,
    top_fraction,
)
from core.imaging.preprocess import CAFFE_MEAN_BGR, caffe_normalise

SIZE = 64
DISC = (46.0, 26.0, 6.0)  # cx, cy, radius in scan pixels


def square_mask(shape=(80, 80), box=(30, 30, 40, 40)):
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def peak_map(shape, y, x):
    heatmap = np.zeros(shape, dtype=np.float32)
    heatmap[y, x] = 1.0
    return heatmap


# --- pointing game and energy --------------------------------------------------------------------


@pytest.mark.parametrize("peak, hit_15, hit_strict", [
    ((35, 35), True, True),  # on the outline (rows and columns 30..39)
    ((35, 49), True, False),  # 10 px right of its last column
    ((35, 54), True, False),  # exactly 15 px away
    ((35, 60), False, False),  # 21 px away
    ((50, 50), False, False),  # diagonal: 11 px down and right, 15.6 px
])
def test_pointing_game_tolerance(peak, hit_15, hit_strict):
    mask = square_mask()
    heatmap = peak_map(mask.shape, *peak)
    assert pointing_game(heatmap, mask) is hit_15
    assert pointing_game(heatmap, mask, tolerance=0) is hit_strict


def test_energy_inside_known_answers():
    mask = square_mask()
    assert energy_inside(mask / 255.0, mask) == pytest.approx(1.0)
    half = mask / 255.0
    half[0:10, 0:10] = 1.0  # as much mass outside as inside
    assert energy_inside(half, mask) == pytest.approx(0.5)
    assert energy_inside(np.zeros(mask.shape), mask) == 0.0


def test_uniform_and_blank_maps_point_nowhere():
    mask = square_mask()
    uniform = np.full(mask.shape, 0.7, dtype=np.float32)
    assert not pointing_game(uniform, mask) and not pointing_game(np.zeros(mask.shape), mask)
    assert energy_inside(uniform, mask) == pytest.approx(100 / 6400)  # the outline's share of the area


def test_outline_off_the_crop_is_kept_and_counted():
    """The map is zero outside the crop box: an outline there gets no mass and no peak."""
    shape, box = (80, 80), (0, 0, 40, 80)  # crop: left half
    crop_map = np.random.default_rng(0).random((80, 40)).astype(np.float32)
    heatmap = place_in_scan(crop_map, box, shape)
    outside = square_mask(shape, (60, 30, 70, 40))
    assert outline_share_in_box(outside, box) == 0.0
    assert energy_inside(heatmap, outside) == 0.0
    assert not pointing_game(heatmap, outside)  # the peak is in the crop, >= 20 px from the outline
    straddling = square_mask(shape, (35, 30, 45, 40))
    assert outline_share_in_box(straddling, box) == pytest.approx(0.5)
    assert 0 < energy_inside(heatmap, straddling) < 1


@pytest.mark.parametrize("call, message", [
    (lambda: pointing_game(np.zeros((5, 5)), np.ones((4, 4))), "same shape"),
    (lambda: pointing_game(np.zeros((5, 5)), np.zeros((5, 5))), "empty"),
    (lambda: energy_inside(-np.ones((5, 5)), np.ones((5, 5))), "non-negative"),
    (lambda: energy_inside(np.full((5, 5), np.nan), np.ones((5, 5))), "finite"),
    (lambda: pointing_game(np.ones((5, 5)), np.ones((5, 5)), tolerance=-1), "tolerance=-1"),
    (lambda: top_fraction(np.ones((5, 5)), np.ones((5, 5), bool), 0), "fraction=0"),
    (lambda: impute(np.zeros((5, 5), np.float32), np.ones((5, 5), bool)), "uint8"),
    (lambda: impute(np.zeros((5, 5), np.uint8), np.ones((4, 4), bool)), "shape"),
    (lambda: patient_bootstrap([1.0, 2.0], ["a"]), "1-D"),
    (lambda: spearman(np.ones(3), np.ones(4)), "same size"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- hiding --------------------------------------------------------------------------------------


def test_impute_leaves_no_shape_of_what_was_hidden():
    grey = np.full((64, 64), 100, dtype=np.uint8)
    yy, xx = np.mgrid[0:64, 0:64]
    disc = (yy - 30) ** 2 + (xx - 20) ** 2 <= 8**2
    grey[disc] = 230
    filled = impute(grey, disc)
    assert np.all(filled[disc] == 100)  # the surroundings' grey, no trace of the disc
    np.testing.assert_array_equal(filled[~disc], grey[~disc])


def test_impute_takes_the_neighbours_values():
    ramp = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (40, 1))  # grey rises left to right
    band = np.zeros(ramp.shape, dtype=bool)
    band[:, 40:60] = True
    filled = impute(ramp, band)
    assert ramp[0, 39] <= filled[:, 40:60].min() and filled[:, 40:60].max() <= ramp[0, 60]
    assert np.all(np.diff(filled[20, 40:60].astype(int)) >= 0)  # still rising inside the band
    assert np.all(impute(ramp, np.ones(ramp.shape, bool)) == int(round(ramp.mean())))


def test_top_fraction_picks_the_highest_pixels_of_the_region():
    order = np.arange(100, dtype=np.float64).reshape(10, 10)
    region = np.zeros((10, 10), dtype=bool)
    region[:, :5] = True  # 50 pixels
    chosen = top_fraction(order, region, 0.2)
    assert chosen.sum() == 10 and not chosen[~region].any()
    assert order[chosen].min() > order[region & ~chosen].max()
    assert not top_fraction(np.ones((10, 10)), region, 0.2).any()  # a flat map highlights nothing


def test_brain_region_holds_the_dark_parts_it_encloses():
    grey = np.zeros((40, 40), dtype=np.uint8)
    grey[5:35, 5:35] = 120
    grey[15:25, 15:25] = 5  # a dark ventricle inside the brain
    region = brain_region(grey)
    assert region[20, 20] and region[6, 6] and not region[1, 1] and not region[38, 20]
    assert brain_region(np.zeros((40, 40), np.uint8)).all()  # no tissue: everything may be hidden


def test_random_map_is_smooth_noise_on_the_grid():
    first = random_map(64, (7, 7), np.random.default_rng(3))
    again = random_map(64, (7, 7), np.random.default_rng(3))
    assert first.shape == (64, 64) and first.dtype == np.float32
    assert first.min() == 0.0 and first.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(first, again)
    assert np.abs(np.diff(first, axis=1)).max() < 0.3  # upsampled: no pixel-to-pixel jumps


# --- statistics ----------------------------------------------------------------------------------


def test_patient_bootstrap_resamples_whole_patients():
    values = [1.0] * 10 + [0.0]  # patient a: ten slices at 1; patient b: one slice at 0
    groups = ["a"] * 10 + ["b"]
    estimate, low, high = patient_bootstrap(values, groups, n_boot=500)
    assert estimate == pytest.approx(10 / 11)
    possible = {0.0, 10 / 11, 1.0}  # draws: {b, b}, {a, b}, {a, a}
    assert any(low == pytest.approx(p) for p in possible) and any(high == pytest.approx(p) for p in possible)
    assert patient_bootstrap([0.4] * 6, list("aabbcc"))[1:] == pytest.approx((0.4, 0.4))
    assert np.isnan(patient_bootstrap([1.0, 2.0], ["a", "a"])[1])
    ratio = patient_bootstrap([2.0, 4.0, 6.0], list("abc"), denominator=[1.0, 1.0, 1.0])
    assert ratio[0] == pytest.approx(4.0) and 2.0 <= ratio[1] <= ratio[0] <= ratio[2] <= 6.0


def test_spearman_is_a_rank_correlation():
    a = np.random.default_rng(0).random((8, 8))
    assert spearman(a, np.exp(a)) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.zeros_like(a)))
    assert spearman(np.array([0, 0, 1, 2.0]), np.array([0, 0, 1, 2.0])) == pytest.approx(1.0)


def test_describe_faithfulness_wording():
    summary = {"method": "gradcam", "target": "tumour", "fraction": 0.15, "probability": 0.92,
               "after_top": 0.31, "after_random": 0.90, "random_draws": 3, "blank": False}
    assert describe_faithfulness(summary) == (
        "Hiding the highlighted 15% of the brain lowers the tumour probability from 92% to 31% "
        "(hiding a random 15%: 90%).")
    against = {**summary, "target": "no_tumour", "after_top": 0.99}
    assert "(evidence for 'no tumour') raises the tumour probability from 92% to 99%" in describe_faithfulness(against)
    assert "leaves the tumour probability at 92%" in describe_faithfulness({**summary, "after_top": 0.921})
    assert describe_faithfulness({**summary, "blank": True}).startswith("The map is blank")


# --- a model built to see a planted disc ---------------------------------------------------------


def disc_scan(disc=DISC, shape=(72, 72)):
    """uint8: black, a grey textured ellipse (the brain), and a bright disc (cx, cy, r) or none."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    scan = np.zeros(shape, dtype=np.float32)
    inside = ((xx - 36) / 32) ** 2 + ((yy - 36) / 32) ** 2 <= 1
    scan[inside] = 90 + rng.normal(0, 12, inside.sum())
    if disc is not None:
        scan[(xx - disc[0]) ** 2 + (yy - disc[1]) ** 2 <= disc[2] ** 2] = 230
    return np.clip(scan, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def disc_classifier():
    keras = pytest.importorskip("keras")
    from core.model.classifier import Classifier

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(1, 1, activation="relu", name="bright")(inputs)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="tumour_probability")(x))
    # caffe input: grey - channel mean; the mean over channels minus 180 gives relu(grey - 180).
    model.get_layer("bright").set_weights([np.full((1, 1, 3, 1), 1 / 3), np.array([CAFFE_MEAN_BGR.mean() - 180])])
    model.get_layer("logit").set_weights([np.array([[0.2]]), np.array([-3.0])])
    return Classifier(model=model, card={"name": "disc", "threshold": 0.5, "explain_layer": "bright"})


def disc_mask(shape=(72, 72), disc=DISC):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx + 0.5 - disc[0]) ** 2 + (yy + 0.5 - disc[1]) ** 2 <= disc[2] ** 2


def test_the_model_sees_only_the_disc(disc_classifier):
    with_disc, without = disc_classifier.predict([disc_scan(), disc_scan(None)])
    assert with_disc > 0.99 and without < 0.1


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "layercam", "occlusion"])
def test_maps_point_at_the_disc(disc_classifier, method):
    result = explain(disc_classifier, disc_scan(), method)
    assert pointing_game(result.heatmap, disc_mask())
    assert pointing_game(result.heatmap, disc_mask(), tolerance=0) or method == "occlusion"


def test_hiding_the_highlighted_disc_drops_the_probability(disc_classifier):
    result = explain(disc_classifier, disc_scan(), "gradcam")
    summary = faithfulness_summary(disc_classifier, result, fraction=0.15)
    assert summary["probability"] > 0.99 and summary["after_top"] < 0.1
    assert summary["after_random"] > 0.5
    drop_top = summary["probability"] - summary["after_top"]
    assert drop_top >= 3 * (summary["probability"] - summary["after_random"])
    assert describe_faithfulness(summary).startswith("Hiding the highlighted 15% of the brain lowers")


def test_deletion_curve_falls_at_once_for_the_map_not_for_random(disc_classifier):
    result = explain(disc_classifier, disc_scan(), "gradcam")
    grey, region = result.scan.grey, brain_region(result.scan.grey)
    curve = deletion_curve(disc_classifier.predict_grey, grey, input_map(result), region, (0.05, 0.1, 0.3))
    flat = deletion_curve(disc_classifier.predict_grey, grey, np.zeros((SIZE, SIZE)), region, (0.05, 0.3))
    assert curve.shape == (3,) and np.all(curve < 0.1)
    assert np.all(flat > 0.99)  # a flat map hides nothing


def test_blank_map_hides_nothing(disc_classifier):
    result = explain(disc_classifier, disc_scan(None), "gradcam")  # nothing above 180: no evidence
    summary = faithfulness_summary(disc_classifier, result, draws=1)
    assert result.blank and summary["after_top"] == pytest.approx(summary["probability"], abs=1e-6)
    assert hide(result.scan.grey, input_map(result), brain_region(result.scan.grey), 0.5).tolist() == \
        result.scan.grey.tolist()


def test_occlusion_patches_tile_the_input():
    masks = patches(224)
    assert len(masks) == GRID**2
    assert np.logical_or.reduce(masks).all()
    assert {int(m.sum(axis=1).max()) for m in masks} <= {40, 48}  # 48 px, cut to 40 at the border
    grey = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(np.uint8)
    np.testing.assert_array_equal(grey_of(caffe_normalise(grey)), grey)
