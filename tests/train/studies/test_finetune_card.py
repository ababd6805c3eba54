"""brain-mri finetune-card: a finished run on every source becomes a model directory whose card recomputes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.model.calibration import logit, sigmoid
from core.model.classifier import load_classifier, save_classifier, sha256_of
from tests.core.test_cli import tiny_model
from train.studies import finetune_card
from train.studies.finetune_card import SHIPPED_VARIANT, split_scores
from train.studies.refit_final import CALIBRATED_HALF, card_numbers

SETTINGS = {"trainable_from": "conv4", "batch_size": 32, "seed": 0, "steps": 4, "intensity_maps": False}


def _scores(rng, n_tumour, n_normal):
    """Raw probabilities a little overconfident, tumours four times as common as normals."""
    z = np.r_[rng.normal(1.5, 1.2, n_tumour), rng.normal(-1.5, 1.2, n_normal)]
    labels = np.r_[np.ones(n_tumour, int), np.zeros(n_normal, int)]
    return labels, sigmoid(2.0 * z)


def _payload(rng):
    parts = {part: _scores(rng, 160, 40) for part in ("val", "test")}
    sources = {part: (["br35h", "lgg"] * 100) for part in parts}
    return {"scans": {part: [f"x/{i}.png" for i in range(200)] for part in parts},
            "labels": {part: parts[part][0].tolist() for part in parts},
            "sources": sources,
            "variants": {SHIPPED_VARIANT: {part: parts[part][1].tolist() for part in parts},
                         "raw weights, BatchNorm as trained": {part: parts[part][1].tolist() for part in parts}}}


def _results(held_out="none"):
    return {"held_out": held_out, "counts": {"train": 800, "val": 200, "test": 200},
            "command": f"brain-mri finetune --out RUN --held-out {held_out}", "start_model": "tiny@0123456789ab",
            "settings": SETTINGS, "images_seen": 128,
            "variants": {SHIPPED_VARIANT: {
                "threshold": 0.6, "val_auc": 0.9, "by_folder": {"lgg-t1pre": {"auc": 0.7}},
                "test": {"tumour": 30, "no_tumour": 20, "auc": 0.8, "auc_ci95": [0.7, 0.9], "balanced_accuracy": 0.75,
                         "sensitivity": 0.7, "specificity": 0.8}}}}


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune-card")
    start = save_classifier(tiny_model(), {"name": "tiny", "threshold": 0.7, "explain_layer": "last_conv",
                                           "intended_use": "tests", "explanations": {"default": "gradcam"},
                                           "tumour_type": {"file": "type_head.keras"}}, root / "start")
    run = root / "run"
    run.mkdir()
    tiny_model().save(run / "finetuned.keras")
    payload = _payload(np.random.default_rng(0))
    (run / "scores.json").write_text(json.dumps(payload))
    (run / "results.json").write_text(json.dumps(_results()))
    fold = root / "fold-lgg.json"
    fold.write_text(json.dumps(_results("lgg")))
    return {"root": root, "start": start, "run": run, "payload": payload, "fold": fold}


def test_a_finished_run_becomes_a_loadable_model_whose_card_recomputes(run_dirs, capsys):
    out = run_dirs["root"] / "model"
    assert finetune_card.main(["--run", str(run_dirs["run"]), "--out", str(out), "--model", str(run_dirs["start"]),
                               "--fold", str(run_dirs["fold"])]) == 0
    assert "0.5 calibrated" in capsys.readouterr().out
    classifier = load_classifier(out)
    card = json.loads((out / "model_card.json").read_text())
    assert card["weights_sha256"] == sha256_of(out / "model.keras") == sha256_of(run_dirs["run"] / "finetuned.keras")
    numbers = json.loads(json.dumps(card_numbers(split_scores(run_dirs["payload"]), threshold_rule=CALIBRATED_HALF)))
    assert {key: card[key] for key in numbers} == numbers
    assert classifier.calibration([classifier.threshold])[0] == pytest.approx(0.5)
    assert card["calibration"]["slope"] > 0 and "weighted equally" in card["threshold_method"]
    # entries about the start model's weights are gone; its description stays
    assert "explanations" not in card and "tumour_type" not in card and classifier.type_head is None
    assert card["intended_use"] == "tests" and card["explain_layer"] == "last_conv"
    start = json.loads((run_dirs["start"] / "model_card.json").read_text())
    assert card["limitations"] != start["limitations"] and "fine-tuned" in card["initialisation"]
    start_model = json.loads((run_dirs["run"] / "results.json").read_text())["start_model"]
    assert card["initialisation"].startswith(f"the backbone of {start_model}")
    assert card["fine_tuning"]["stages_trained"] == ["conv4", "conv5", "head"]
    assert card["fine_tuning"]["images_seen"] == 128 and card["command"].startswith("brain-mri finetune")
    scores = out / card["fine_tuning"]["scores_file"]  # the model directory holds what its numbers come from
    assert scores.read_bytes() == (run_dirs["run"] / "scores.json").read_bytes()
    assert card["training_runs"].startswith(card["fine_tuning"]["scores_file"])
    (row,) = card["leave_one_source_out"]["rows"]
    assert {key: row[key] for key in ("held_out", "tumour", "no_tumour", "auc", "auc_low", "auc_high")} == {
        "held_out": "lgg", "tumour": 30, "no_tumour": 20, "auc": 0.8, "auc_low": 0.7, "auc_high": 0.9}
    assert row["by_folder"] == {"lgg-t1pre": 0.7}
    assert card["leave_one_source_out"]["caveat"] == "folds fine-tuned on 128 images, this model on 128"
    assert (out / "calibration_reliability.png").stat().st_size > 0


def test_the_caveat_names_every_setting_in_which_the_folds_differ_from_the_model():
    fold = {"images_seen": 9600, "settings": {"lr": 1e-4, "gin": True, "held_out": "lgg", "steps": 300}}
    other = {"images_seen": 9600, "settings": {"lr": 1e-4, "gin": True, "held_out": "mos", "steps": 300}}
    same = {"lr": 1e-4, "gin": True, "held_out": "none", "steps": 600}
    assert finetune_card._budget_caveat([fold, other], 19200, same) == (
        "folds fine-tuned on 9,600 images, this model on 19,200")  # held-out source and budget differ by design
    kept = {**same, "lr": 3e-5, "keep_head": True}
    assert finetune_card._budget_caveat([fold, other], 19200, kept) == (
        "folds fine-tuned on 9,600 images, this model on 19,200; folds with keep_head False, lr 0.0001, "
        "this model with keep_head True, lr 3e-05")
    # runs from before --batchnorm do not record it: they kept BatchNorm frozen
    assert finetune_card._budget_caveat([fold, other], 19200, {**same, "batchnorm": "frozen"}) == (
        "folds fine-tuned on 9,600 images, this model on 19,200")
    assert finetune_card._budget_caveat([fold, other], 19200, {**same, "batchnorm": "train"}) == (
        "folds fine-tuned on 9,600 images, this model on 19,200; folds with batchnorm frozen, "
        "this model with batchnorm train")


def test_the_balanced_calibration_ignores_the_four_to_one_class_share(run_dirs):
    """The validation split holds four tumours per normal; the threshold is where the classes' logits meet,
    not shifted by log(4) toward calling everything tumour."""
    numbers = card_numbers(split_scores(run_dirs["payload"]), threshold_rule=CALIBRATED_HALF)
    plain = card_numbers(split_scores(run_dirs["payload"]))
    assert abs(logit([numbers["threshold"]])[0]) < 0.6
    assert numbers["calibration"]["intercept"] < plain["calibration"]["intercept"]


def test_a_fold_run_or_a_missing_file_writes_nothing(run_dirs, tmp_path, capsys):
    fold_run = tmp_path / "fold-run"
    fold_run.mkdir()
    for name in ("scores.json", "finetuned.keras"):
        (fold_run / name).write_bytes((run_dirs["run"] / name).read_bytes())
    (fold_run / "results.json").write_text(json.dumps(_results("mos")))
    out = tmp_path / "model"
    args = ["--out", str(out), "--model", str(run_dirs["start"])]
    assert finetune_card.main(["--run", str(fold_run), *args]) == 2
    assert "only a run on every source" in capsys.readouterr().err
    assert finetune_card.main(["--run", str(tmp_path / "absent"), *args]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_a_run_with_strata_gives_its_card_the_central_aucs_as_a_limitation(run_dirs, tmp_path, capsys):
    import shutil

    from train.studies import finetune_strata

    run = tmp_path / "run"
    shutil.copytree(run_dirs["run"], run)
    labels = np.array([0, 0, 0, 1, 1, 1])
    table = finetune_strata.strata(labels, np.array([0.1, 0.6, 0.2, 0.5, 0.7, 0.4]),
                                   np.array([0.0, 0.5, 1.0, 0.4, 0.5, 0.6]), np.array([0, 0, 0, 500, 900, 1500]))
    strata = {"run": "run", "variant": SHIPPED_VARIANT, "band": [0.25, 0.75], "folders": {"lgg-t1pre": table}}
    (run / "strata.json").write_text(json.dumps(strata))
    out = tmp_path / "model"
    assert finetune_card.main(["--run", str(run), "--out", str(out), "--model", str(run_dirs["start"])]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert (out / card["fine_tuning"]["strata_file"]).read_bytes() == (run / "strata.json").read_bytes()
    assert finetune_strata.central_summary(strata) in card["limitations"]
    assert "test AUC lgg-t1pre 0.333" in finetune_strata.central_summary(strata)
    (run / "strata.json").write_text(json.dumps({**strata, "variant": "raw weights, BatchNorm as trained"}))
    assert finetune_card.main(["--run", str(run), "--out", str(tmp_path / "other"), "--model",
                               str(run_dirs["start"])]) == 2
    assert "not the weights the model ships" in capsys.readouterr().err and not (tmp_path / "other").exists()
