"""`brain-mri refit`: the head refit on a frozen backbone, its pieces and the command end to end
(a 64-px ResNet50 saved as a model directory, three small real sources)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.train.conftest import make_loso_sources
from train.studies import refit, refit_final
from train.studies.crossval_table import recompute
from train.studies.refit_final import card_numbers


@pytest.fixture(scope="module")
def start_dir(tmp_path_factory):
    """A 64-px recipe model with a card, as `load_classifier` reads it."""
    import keras

    from core.model.classifier import build_model, save_classifier

    keras.utils.set_random_seed(7)
    card = {"name": "tiny-start", "threshold": 0.5, "initialisation": "random (test fixture)",
            "limitations": ["test fixture"], "intended_use": "not for use: a test fixture"}
    return save_classifier(build_model(weights=None, input_size=64), card, tmp_path_factory.mktemp("start"))


def test_balance_weights_give_each_cell_the_same_total():
    sources = np.array(["a"] * 6 + ["b"] * 4)
    labels = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0])
    weights = refit.balance_weights(sources, labels, "source-class")
    totals = [weights[(sources == s) & (labels == l)].sum() for s, l in (("a", 1), ("a", 0), ("b", 1), ("b", 0))]
    assert totals == pytest.approx([2.5] * 4) and weights.sum() == pytest.approx(len(labels))
    assert np.all(refit.balance_weights(sources, labels, "none") == 1)
    rare = refit.balance_weights(np.array(["a"] * 100), np.array([1] * 99 + [0]), "source-class")
    assert rare.max() == refit.MAX_SAMPLE_WEIGHT  # one normal among 99 tumours is capped, not weighted 50x


def test_head_on_features_is_the_model_and_with_head_changes_only_the_head(start_dir):
    from core.model.classifier import load_classifier

    model = load_classifier(start_dir).model
    inputs = np.random.default_rng(0).normal(0, 40, (3, 64, 64, 3)).astype(np.float32)
    features = np.asarray(refit.backbone(model).predict_on_batch(inputs))
    head = refit.head_of(model)
    assert np.allclose(refit.predict_head(head, features), np.asarray(model.predict_on_batch(inputs))[:, 0],
                       atol=1e-5)
    dense = head.get_layer("head_dense")
    dense.set_weights([w + 0.01 for w in dense.get_weights()])
    changed = refit.with_head(model, head)
    for layer in model.layers:
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(),
                                                       changed.get_layer(layer.name).get_weights()))
        assert same == (layer.name != "head_dense"), layer.name
    assert np.allclose(np.asarray(changed.predict_on_batch(inputs))[:, 0], refit.predict_head(head, features),
                       atol=1e-5)
    assert refit.backbone_sha(changed) == refit.backbone_sha(model)  # the feature cache key ignores the head
    conv = changed.get_layer("conv5_block3_3_conv")
    conv.set_weights([w + 0.01 for w in conv.get_weights()])
    assert refit.backbone_sha(changed) != refit.backbone_sha(model)


@pytest.fixture(scope="module")
def refit_run(shared_data, start_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("refit")
    sources = make_loso_sources(shared_data, root / "data")
    notes = root / "notes.json"
    notes.write_text(json.dumps({"limitations": ["written from the notes file"]}))
    args = ["--out", str(root / "run"), "--model", str(start_dir), "--epochs", "3", "--val-split", "0.3",
            "--card-notes", str(notes),
            "--cache-dir", str(root / "cache"), *[f"--source={name}={path}" for name, path in sources.items()]]
    code = refit.main(args)
    return {"code": code, "run": root / "run", "args": args}


def test_refit_writes_the_table_and_a_model_that_loads(refit_run, capsys):
    from core.model.classifier import load_classifier

    assert refit_run["code"] == 0
    run = refit_run["run"]
    payload = json.loads((run / "crossval.json").read_text())
    assert [row["held_out"] for row in payload["rows"]] == ["br35h", "mos", "lgg"]
    assert recompute(run / "crossval.json") == {"rows": payload["rows"], "summary": payload["summary"]}
    assert "backbone is shared by every fold" in payload["title"]
    for fold in payload["folds"]:  # no copy of a training scan is tested: the planted copies went to br35h
        assert not any("copy_of_br35h" in path for path in fold["test"]["paths"])
    classifier = load_classifier(run / "model")
    card = classifier.card.to_dict()
    assert card["leave_one_source_out"]["summary"] == payload["summary"]
    assert card["head_refit"]["start_model"].startswith("tiny-start")
    assert 0.0 <= classifier.threshold <= 1.0
    counts = card["data"]["counts_after_deduplication"]
    total = sum(c["tumour"] + c["no_tumour"] for part in counts.values() for c in part.values())
    assert total == 20 + 18 + 24  # every kept scan: the two planted copies are br35h's, kept once
    assert card["limitations"] == ["written from the notes file"]


def test_refit_whose_head_ranks_backwards_writes_no_model(refit_run, monkeypatch, tmp_path, capsys):
    """A validation split the head ranks backwards has no monotone calibration: a clear error, no model."""
    monkeypatch.setattr(refit_final, "fit_platt", lambda labels, probabilities, balanced=False: (-0.5, 0.0))
    out = tmp_path / "run"
    args = list(refit_run["args"]) + ["--held-out", "mos"]  # one fold is enough here
    args[args.index("--out") + 1] = str(out)
    assert refit.main(args) == 2
    assert "ranks the validation scans backwards (Platt slope -0.500)" in capsys.readouterr().err
    assert (out / "crossval.json").is_file() and not (out / "model").exists()


def test_refit_card_numbers_recompute_from_its_scores(refit_run):
    from core.model.card import read_card

    run = refit_run["run"]
    scores = json.loads((run / "scores.json").read_text())
    card = json.loads(read_card(run / "model").to_json())
    numbers = json.loads(json.dumps(card_numbers(scores)))
    assert card["threshold"] == numbers["threshold"]
    assert card["metrics"] == numbers["metrics"] and card["calibration"] == numbers["calibration"]
    counts = card["data"]["counts_after_deduplication"]
    for part in ("val", "test"):
        assert len(scores[part]["labels"]) == sum(c["tumour"] + c["no_tumour"] for c in counts[part].values())
    assert (run / "model" / "calibration_reliability.png").is_file()


def test_second_run_reads_the_cached_features(refit_run, tmp_path, capsys):
    args = list(refit_run["args"])
    args[args.index("--out") + 1] = str(tmp_path / "again")
    assert refit.main([*args, "--no-final", "--held-out", "lgg"]) == 0
    out = capsys.readouterr().out
    assert "Read the backbone features of" in out and "Computed the backbone features" not in out
    assert not (tmp_path / "again" / "model").exists()
    first = json.loads((refit_run["run"] / "crossval.json").read_text())["folds"][2]
    again = json.loads((tmp_path / "again" / "crossval.json").read_text())["folds"][0]
    assert again["test"] == first["test"]  # same seed, same features: the same fold and scores


def test_refit_argument_errors(tmp_path, capsys):
    assert refit.main(["--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert refit.main(["--out", str(tmp_path), "--model", str(tmp_path / "none")]) == 2
    assert "No trained model found" in capsys.readouterr().err
    assert refit.main(["--out", str(tmp_path), "--val-split", "0.5"]) == 2
    assert "--val-split must be between 0 and 0.5" in capsys.readouterr().err


def test_unreadable_card_notes_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "notes.json").write_text("[1, 2]")
    with pytest.raises(refit.DataError, match="must hold a JSON object"):
        refit.read_card_notes(tmp_path / "notes.json")
    with pytest.raises(refit.DataError, match="not a readable JSON file"):
        refit.read_card_notes(tmp_path / "missing.json")
