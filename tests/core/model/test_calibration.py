"""core.model.calibration (Platt scaling, ECE) and core.predict.assessment (calibrated probability, spread, verdict)."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.preprocess import caffe_normalise
from core.model.calibration import IDENTITY, Calibration, expected_calibration_error, fit_platt, logit, sigmoid
from core.model.card import CardError, ModelCard
from core.predict.assessment import UNCERTAIN, assess, tta_views, verdict


def _overconfident(rng, n=20000, slope=0.5, intercept=-0.3):
    """Labels drawn from sigmoid(slope * z + intercept) while the 'model' says sigmoid(z)."""
    z = rng.normal(0, 3, n)
    labels = (rng.random(n) < sigmoid(slope * z + intercept)).astype(int)
    return labels, sigmoid(z)


def test_platt_recovers_the_true_map_and_lowers_ece():
    labels, raw = _overconfident(np.random.default_rng(0))
    slope, intercept = fit_platt(labels, raw)
    assert slope == pytest.approx(0.5, abs=0.03) and intercept == pytest.approx(-0.3, abs=0.05)
    calibrated = Calibration(slope=slope, intercept=intercept)(raw)
    assert expected_calibration_error(labels, raw) > 0.08
    assert expected_calibration_error(labels, calibrated) < 0.02


def test_balanced_platt_removes_the_base_rate_and_puts_the_even_odds_point_at_half():
    """With tumours 4 times as common as normals, the plain fit's intercept carries log(4); the balanced fit's
    does not, and the raw threshold where the balanced map gives 0.5 is where both classes are equally likely."""
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(1.0, 1.0, 8000), rng.normal(-1.0, 1.0, 2000)])  # logits: tumour, normal
    labels = np.r_[np.ones(8000, int), np.zeros(2000, int)]
    raw = sigmoid(z)
    plain, balanced = fit_platt(labels, raw), fit_platt(labels, raw, balanced=True)
    assert plain[1] - balanced[1] == pytest.approx(np.log(4), abs=0.1)
    calibration = Calibration(slope=balanced[0], intercept=balanced[1])
    threshold = calibration.raw_threshold(0.5)
    assert calibration([threshold])[0] == pytest.approx(0.5)
    assert logit([threshold])[0] == pytest.approx(0.0, abs=0.1)  # the midpoint of the two classes' logits
    assert calibration.raw_threshold(0.9) > threshold


def test_calibration_is_monotone_and_identity_is_identity():
    p = np.linspace(0.001, 0.999, 50)
    assert np.all(np.diff(Calibration(slope=0.4, intercept=1.0)(p)) > 0)
    assert np.allclose(IDENTITY(p), p)
    assert np.allclose(sigmoid(logit(p)), p)


def test_ece_known_values():
    assert expected_calibration_error([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) == 0.0
    assert expected_calibration_error([0, 0, 0, 0], [0.9, 0.9, 0.9, 0.9]) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="empty"):
        expected_calibration_error([], [])


@pytest.mark.parametrize("entry, message", [({"slope": -1.0}, "positive"), ({"slope": "x"}, "finite number"),
                                            ({"intercept": float("nan")}, "finite number")])
def test_bad_calibration_in_a_card_is_refused(entry, message):
    with pytest.raises(CardError, match=message):
        ModelCard.from_dict({"name": "m", "calibration": entry}, require_hash=False)


def test_verdict_rules():
    assert verdict(0.9, 0.85, 0.95, 0.5) == "tumour"
    assert verdict(0.1, 0.05, 0.2, 0.5) == "no_tumour"
    assert verdict(0.6, 0.45, 0.7, 0.5) == UNCERTAIN  # the views disagree
    assert verdict(0.53, 0.52, 0.54, 0.5) == UNCERTAIN  # too close to call


def test_tta_views_are_the_four_flips():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    views = tta_views(x)
    assert views.shape == (4, 2, 4, 4, 3)
    assert np.array_equal(views[1], x[:, :, ::-1]) and np.array_equal(views[3], x[:, ::-1, ::-1])


class _Constant:
    """A stand-in classifier whose raw output depends on the mean of the right half of the input."""

    input_size = 32
    threshold = 0.5
    calibration = Calibration(slope=1.0, intercept=0.0)

    def inputs_of(self, grey):
        return caffe_normalise(grey)

    def predict_inputs(self, inputs):
        return sigmoid(inputs[:, :, 16:].mean(axis=(1, 2, 3)) - inputs[:, :, :16].mean(axis=(1, 2, 3)))


def test_assess_spreads_over_views_and_calibrates():
    from core.imaging.pipeline import prepare_pixels

    scan = np.zeros((40, 40), np.uint8)
    scan[5:35, 5:35] = 60
    scan[5:35, 20:35] = 200  # bright right half: raw > 0.5 as given, < 0.5 flipped left-right
    result = assess(_Constant(), [prepare_pixels(scan, 32)])[0]
    assert result.raw > 0.5 and result.low < 0.5 < result.high
    assert result.verdict == UNCERTAIN and "views" in result.describe()
    single = assess(_Constant(), [prepare_pixels(scan, 32)], tta=False)[0]
    assert single.low == single.high == single.probability


def test_ece_uncertainty_separates_sampling_noise_from_miscalibration():
    from core.model.calibration import ece_uncertainty

    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0.05, 0.95, 2000)
    honest = (rng.random(2000) < probabilities).astype(int)
    shifted = (rng.random(2000) < np.clip(probabilities - 0.15, 0, 1)).astype(int)  # 0.15 too high everywhere
    small, large = (ece_uncertainty(honest[:n], probabilities[:n], draws=200) for n in (100, 2000))
    assert small["ece_if_calibrated"][0] > 2 * large["ece_if_calibrated"][0]  # fewer scans, higher floor
    honest_ece = expected_calibration_error(honest, probabilities)
    assert large["ece_ci95"][0] <= honest_ece <= large["ece_ci95"][1]
    assert honest_ece <= large["ece_if_calibrated"][1]  # within what sampling alone explains
    miscalibrated = ece_uncertainty(shifted, probabilities, draws=200)
    assert expected_calibration_error(shifted, probabilities) > 3 * miscalibrated["ece_if_calibrated"][1]
    assert ece_uncertainty(honest, probabilities, draws=50) == ece_uncertainty(honest, probabilities, draws=50)
