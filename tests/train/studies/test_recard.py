"""brain-mri recard: a card's numbers recomputed from its run's scores.json, nothing else touched."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.model.calibration import sigmoid
from core.model.card import CARD_FILE
from core.model.classifier import DEFAULT_MODEL_DIR
from train.studies import recard
from train.studies.calibrate import RELIABILITY_PLOT
from train.studies.refit_final import SCORES_FILE, card_numbers


def _part(rng, n: int) -> dict:
    z = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < sigmoid(z)).astype(int)
    return {"paths": [f"s/{i}.png" for i in range(n)], "sources": np.where(np.arange(n) % 2, "a", "b").tolist(),
            "labels": labels.tolist(), "probs": sigmoid(2.0 * z - 1.0).tolist()}


def _model_and_run(tmp_path):
    model, run = tmp_path / "model", tmp_path / "run"
    model.mkdir()
    run.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / CARD_FILE, model / CARD_FILE)
    rng = np.random.default_rng(0)
    scores = {"val": _part(rng, 400), "test": _part(rng, 400)}
    (run / SCORES_FILE).write_text(json.dumps(scores))
    return model, run, scores


def test_recard_writes_the_numbers_from_the_scores_and_keeps_every_other_entry(tmp_path, capsys):
    model, run, scores = _model_and_run(tmp_path)
    before = json.loads((model / CARD_FILE).read_text())
    assert recard.main(["--run", str(run), "--model", str(model)]) == 0
    after = json.loads((model / CARD_FILE).read_text())
    numbers = card_numbers(scores, seed=before["seed"])
    assert after["calibration"] == numbers["calibration"] != before["calibration"]
    assert after["metrics"] == numbers["metrics"] and after["threshold"] == numbers["threshold"]
    assert {k: v for k, v in after.items() if k not in numbers} == {k: v for k, v in before.items() if k not in numbers}
    assert (model / RELIABILITY_PLOT).stat().st_size > 0
    pooled = numbers["calibration"]["after"]["all sources"]
    low, high = pooled["ece_ci95"]
    assert low <= pooled["ece"] <= high
    assert f"all sources: calibrated ECE {pooled['ece']:.3f} (95% CI {low:.3f}-{high:.3f}" in capsys.readouterr().out


def test_recard_without_scores_says_so_and_leaves_the_card(tmp_path, capsys):
    model, run, _ = _model_and_run(tmp_path)
    (run / SCORES_FILE).unlink()
    card = (model / CARD_FILE).read_text()
    assert recard.main(["--run", str(run), "--model", str(model)]) == 2
    assert "scores.json" in capsys.readouterr().err
    assert (model / CARD_FILE).read_text() == card


@pytest.mark.parametrize("broken", ["without test", "without probs"])
def test_recard_refuses_scores_it_cannot_use(tmp_path, capsys, broken):
    model, run, scores = _model_and_run(tmp_path)
    if broken == "without test":
        del scores["test"]
    else:
        del scores["val"]["probs"]
    (run / SCORES_FILE).write_text(json.dumps(scores))
    card = (model / CARD_FILE).read_text()
    assert recard.main(["--run", str(run), "--model", str(model)]) == 2
    assert "must hold the 'val' and 'test' scores" in capsys.readouterr().err
    assert (model / CARD_FILE).read_text() == card
