"""`brain-mri calibrate` end to end on small real folders (a 32-px small-CNN model), and its patient split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.model.calibration import fit_platt
from core.model.card import read_card
from tests.train.conftest import make_br35h_subset, make_lgg_subset
from train.data import cache
from train.data.discover import discover_all
from train.scoring import predict_crops
from train.studies import calibrate


def _tiny(directory, flipped: bool):
    """A seeded 32-px small-CNN model; `flipped` negates its logit layer, so its scores fall where the other's
    rise (on these folders the unflipped one's fitted slope is negative)."""
    import keras

    from core.model.classifier import build_model, save_classifier

    keras.utils.set_random_seed(5)
    model = build_model(weights=None, input_size=32, backbone="small")
    if flipped:
        model.get_layer("logit").set_weights([-w for w in model.get_layer("logit").get_weights()])
    card = {"name": "tiny", "threshold": 0.5, "initialisation": "random (test fixture)",
            "limitations": ["test fixture"], "intended_use": "not for use: a test fixture"}
    return save_classifier(model, card, directory)


@pytest.fixture(scope="module")
def folders(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate-data")
    return make_lgg_subset(shared_data, root / "lgg", patients=4, per_class=3), make_br35h_subset(
        shared_data, root / "br35h", per_class=6)


def test_calibration_is_platt_on_the_fit_half_and_checked_on_the_other_patients(folders, tmp_path, crop_cache,
                                                                             monkeypatch):
    monkeypatch.setenv("BRAIN_MRI_CACHE", str(crop_cache))
    lgg, br35h = folders
    model_dir = _tiny(tmp_path / "model", flipped=True)
    out = tmp_path / "calibration.json"
    assert calibrate.main(["--model", str(model_dir), "--fit", str(lgg), str(br35h), "--check", str(lgg),
                           "--json", str(out), "--write-card"]) == 0
    written = json.loads(out.read_text())

    halves = calibrate.patient_halves(lgg, seed=0)
    assert sorted(set(halves.values())) == [0, 1]  # two patients a side, none on both
    from core.model.classifier import load_classifier

    classifier = load_classifier(model_dir)
    labels, raw = [], []
    for folder, keep in ((lgg, lambda s: halves[s.path.relative_to(lgg).as_posix()] == 0), (br35h, lambda s: True)):
        samples = [s for s in discover_all([str(folder)], ("no",)) if keep(s)]
        crops = np.stack([e.crop for e in cache.crop_all([s.path for s in samples], 32)])
        labels.append([s.label for s in samples])
        raw.append(predict_crops(classifier.predict_inputs, crops))
    slope, intercept = fit_platt(np.concatenate(labels), np.concatenate(raw))
    assert slope > 0 and written["slope"] == pytest.approx(slope, rel=1e-6)
    assert written["intercept"] == pytest.approx(intercept, rel=1e-6)
    [checked] = written["after"]  # the check folder's other patients only
    assert checked.endswith("lgg (patient half 2)") and written["after"][checked]["scans"] == 12
    assert read_card(model_dir).calibration == written and (model_dir / calibrate.RELIABILITY_PLOT).is_file()


def test_scores_that_fall_with_tumour_are_refused_and_the_card_is_left_alone(folders, tmp_path, crop_cache,
                                                                            monkeypatch, capsys):
    monkeypatch.setenv("BRAIN_MRI_CACHE", str(crop_cache))
    lgg, br35h = folders
    model_dir = _tiny(tmp_path / "model", flipped=False)
    before = (model_dir / "model_card.json").read_bytes()
    assert calibrate.main(["--model", str(model_dir), "--fit", str(lgg), str(br35h), "--check", str(lgg),
                           "--write-card"]) == 2
    assert "error: The fitted slope is -" in capsys.readouterr().err
    assert (model_dir / "model_card.json").read_bytes() == before
    assert not (model_dir / calibrate.RELIABILITY_PLOT).exists()


def test_a_folder_without_scans_is_an_error(tmp_path, capsys):
    model_dir = _tiny(tmp_path / "model", flipped=True)
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    assert calibrate.main(["--model", str(model_dir), "--fit", str(tmp_path / "empty"), "--check",
                           str(tmp_path / "empty")]) == 2
    assert "error:" in capsys.readouterr().err
