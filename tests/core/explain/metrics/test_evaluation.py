"""Tests for `python -m core explain-eval` (core.explain.metrics.evaluation): end to end on a few real LGG slices,
tiny model.

The model is a small untrained CNN at 64 px saved with its card, as `core.load_classifier`
reads it: the scores mean nothing here, the test checks that every output is written
and consistent. The LGG slices and outlines are read in place from ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from core.explain import METHODS
from core.explain.metrics import command, evaluation
from core.explain.metrics import report as outputs
from tests.support.paths import SHARED_DATA

DATA = SHARED_DATA
LGG, MASKS = DATA / "lgg", DATA / "lgg-masks"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m core")
    commands = parser.add_subparsers(dest="command", required=True)
    command.add_arguments(commands.add_parser("explain-eval"))
    return parser.parse_args(["explain-eval", *argv])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An untrained 64-px CNN with the real head's layer names, saved with a card naming its layer."""
    keras = pytest.importorskip("keras")
    from core.model.classifier import save_classifier

    keras.utils.set_random_seed(11)
    inputs = keras.Input((64, 64, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="tumour_probability")(x))
    card = {"name": "tiny-eval", "threshold": 0.5, "explain_layer": "last_conv",
            "weights": "random initialisation (test fixture)"}
    return save_classifier(model, card, tmp_path_factory.mktemp("tiny-eval-model"))


@pytest.fixture(scope="module")
def lgg():
    if not (LGG / "manifest.csv").is_file() or not MASKS.is_dir():
        pytest.skip(f"LGG slices and outlines not found under {DATA} (shared data missing)")
    return LGG, MASKS


def test_command_writes_json_csv_and_png(model_dir, lgg, tmp_path):
    out = tmp_path / "eval"
    args = parse("--data", str(lgg[0]), "--masks", str(lgg[1]), "--model", str(model_dir), "--limit", "4",
                 "--slow-limit", "2", "--sanity-scans", "2", "--curve-scans", "1", "--bootstrap", "100",
                 "--examples", "2", "--draws", "1", "--out", str(out))
    assert command.run(args) == 0
    report = json.loads((out / outputs.JSON_FILE).read_text())
    assert set(report["methods"]) == set(METHODS)
    for method, summary in report["methods"].items():
        expected = 2 if method in evaluation.SLOW_METHODS else 4
        assert summary["slices"] == expected and summary["patients"] == expected  # one slice per patient first
        for key in ("pointing_15px", "pointing_strict", "energy_inside"):
            value, (low, high) = summary[key]["value"], summary[key]["ci95"]
            assert 0.0 <= low <= value <= high <= 1.0
        assert summary["ms_per_scan"]["median"] > 0
    assert report["slices"] == {"evaluated": 4, "patients": 4, "mean_probability": pytest.approx(
        np.mean([row["probability"] for row in report["per_slice"]["slices"]]))}
    assert report["target"] == "tumour" and report["fraction_hidden"] == 0.1
    outline = report["outline"]
    assert outline["entirely_outside_crop"] + outline["partly_outside_crop"] <= 4
    stages = report["randomisation"]["stages"]
    assert [len(stage["randomised_layers"]) for stage in stages] == [1, 3]
    assert stages[0]["randomised_layers"] == ["logit"]
    assert all(stage["spearman"]["gradcam"]["slices"] == 2 for stage in stages)
    assert len(report["deletion_curves"]["mean_probability"]["random"]) == 5
    with (out / outputs.CSV_FILE).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == list(report["methods"])
    first = report["methods"][rows[0]["method"]]
    assert float(rows[0]["pointing_15px"]) == pytest.approx(first["pointing_15px"]["value"], abs=1e-4)
    from PIL import Image

    with Image.open(out / outputs.FIGURE_FILE) as figure:
        assert figure.format == "PNG" and figure.width > 500
    assert not list(out.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_write_card_stores_the_table_in_the_models_card(model_dir, lgg, tmp_path, capsys):
    import shutil

    from core.model.card import read_card
    from core.model.classifier import load_classifier

    model = shutil.copytree(model_dir, tmp_path / "model")
    args = parse("--data", str(lgg[0]), "--masks", str(lgg[1]), "--model", str(model), "--limit", "2",
                 "--methods", "gradcam", "hirescam", "--sanity-scans", "1", "--curve-scans", "0", "--bootstrap",
                 "50", "--examples", "1", "--draws", "1", "--out", str(tmp_path / "eval"), "--write-card")
    assert command.run(args) == 0
    entry = read_card(model).extra["explanations"]
    report = json.loads((tmp_path / "eval" / outputs.JSON_FILE).read_text())
    assert entry["table"] == outputs.markdown_table(report) and entry["table"] in capsys.readouterr().out
    assert list(entry["methods"]) == ["gradcam", "hirescam"] and entry["data"] == lgg[0].name
    assert entry["methods"]["gradcam"]["pointing_15px"] == report["methods"]["gradcam"]["pointing_15px"]
    assert "--write-card" not in json.dumps(entry["settings"]) and entry["settings"]["limit"] == 2
    load_classifier(model)  # the weights' hash still matches: only the card changed


def test_methods_option_limits_the_work(model_dir, lgg, tmp_path):
    args = parse("--data", str(lgg[0]), "--masks", str(lgg[1]), "--model", str(model_dir), "--limit", "3",
                 "--methods", "occlusion", "--slow-limit", "1", "--sanity-scans", "0", "--curve-scans", "0",
                 "--bootstrap", "50", "--out", str(tmp_path))
    assert command.run(args) == 0
    report = json.loads((tmp_path / outputs.JSON_FILE).read_text())
    assert list(report["methods"]) == ["occlusion"] and report["methods"]["occlusion"]["slices"] == 1
    assert report["slices"]["evaluated"] == 1  # slices no chosen method covers are not read
    assert report["deletion_curves"]["slices"] == 0 and report["randomisation"]["stages"] == []


def test_bad_data_and_model_give_exit_codes(model_dir, lgg, tmp_path, capsys):
    assert command.run(parse("--data", str(tmp_path), "--out", str(tmp_path / "o"))) == 2
    assert "manifest.csv" in capsys.readouterr().err
    assert command.run(parse("--data", str(lgg[0]), "--masks", str(tmp_path / "none"))) == 2
    assert command.run(parse("--data", str(lgg[0]), "--masks", str(lgg[1]), "--model", str(tmp_path))) == 1
    with pytest.raises(SystemExit):
        parse("--methods", "no-such-method")
    with pytest.raises(SystemExit):
        parse("--limit", "0")


def test_stratified_order_spreads_over_patients():
    sizes = {"a": (50, 400, 30), "b": (20,), "c": (300, 10)}  # outline areas per slice
    cases = [evaluation.Case(Path(f"{p}{i}.png"), Path("m.png"), p, area) for p, areas in sizes.items()
             for i, area in enumerate(areas)]
    order = evaluation.stratified_order(cases, seed=1)
    assert sorted(order) == list(range(6))
    assert {cases[i].patient for i in order[:3]} == {"a", "b", "c"}
    assert {cases[i].patient for i in order[3:5]} == {"a", "c"}
    examples = evaluation.pick_examples(cases, order, 2)  # the largest outlines, one per patient
    assert [(cases[i].patient, cases[i].mask_area) for i in examples] == [("a", 400), ("c", 300)]


def test_outline_of_another_size_is_refused(lgg, tmp_path):
    from PIL import Image

    path = tmp_path / "mask.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"\(10, 12\); its slice is \(256, 256\)"):
        evaluation.read_mask(path, (256, 256))
