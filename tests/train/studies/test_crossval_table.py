"""train.studies.crossval_table: the leave-one-source-out table from stored per-scan scores (no model)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.support.paths import REPO
from train.studies import crossval_table
from train.studies.crossval_table import recompute, table, write_table


def fake_fold(name: str, separation: float, seed: int, n=(40, 30)) -> dict:
    rng = np.random.default_rng(seed)
    def scores(count_tumour, count_normal):
        labels = np.array([1] * count_tumour + [0] * count_normal)
        probs = 1 / (1 + np.exp(-(rng.normal(0, 1, len(labels)) + separation * (2 * labels - 1))))
        return labels, probs
    val_labels, val_probs = scores(20, 20)
    labels, probs = scores(*n)
    return {"held_out": name, "training_sources": ["x", "y"],
            "validation": {"labels": val_labels.tolist(), "probs": val_probs.tolist()},
            "test": {"labels": labels.tolist(), "probs": probs.tolist(),
                     "paths": [f"{name}/{i}.png" for i in range(len(labels))]},
            "test_after_removal": {"tumour": 50, "no_tumour": 31},
            "copies_removed": {"exact": 2, "near": 1, "attributed": 4},
            "epochs": 3}


@pytest.fixture
def folds():
    return [fake_fold("br35h", 1.5, 0), fake_fold("mos", 0.3, 1, n=(60, 10)), fake_fold("lgg", 1.0, 2)]


def test_rows_follow_from_the_scores(folds):
    result = table(folds, seed=0, rounds=200)
    rows = {row["held_out"]: row for row in result["rows"]}
    for fold in folds:
        row = rows[fold["held_out"]]
        labels, probs = np.array(fold["test"]["labels"]), np.array(fold["test"]["probs"])
        assert row["auc"] == pytest.approx(roc_auc_score(labels, probs))
        assert row["auc_low"] <= row["auc"] <= row["auc_high"]
        predicted = probs >= row["threshold"]
        sensitivity = predicted[labels == 1].mean()
        specificity = (~predicted[labels == 0]).mean()
        assert row["sensitivity"] == pytest.approx(sensitivity) and row["specificity"] == pytest.approx(specificity)
        assert row["balanced_accuracy"] == pytest.approx((sensitivity + specificity) / 2)
        assert (row["tumour"], row["no_tumour"]) == (int(labels.sum()), int((labels == 0).sum()))
        assert row["copies_removed"] == 7 and row["tumour_after_removal"] == 50
        # the threshold is Youden's J on validation, never on the test scans
        val_labels, val_probs = np.array(fold["validation"]["labels"]), np.array(fold["validation"]["probs"])
        j = lambda t: (val_probs[val_labels == 1] >= t).mean() - (val_probs[val_labels == 0] >= t).mean()  # noqa: E731
        assert j(row["threshold"]) == pytest.approx(max(j(t) for t in val_probs))
    summary = result["summary"]
    aucs = [row["auc"] for row in result["rows"]]
    assert summary["mean_auc"] == pytest.approx(np.mean(aucs))
    assert summary["worst_auc"] == min(aucs) and summary["worst_auc_source"] == "mos"
    assert summary["meets_targets"] is False and summary["targets"]["mean_auc"] == 0.92


def test_written_table_reproduces_from_its_json(folds, tmp_path):
    written = write_table(tmp_path, {"title": "test", "seed": 3, "folds": folds, "settings": {},
                                     "bootstrap_rounds": 300})
    assert sorted(p.name for p in written) == ["crossval.csv", "crossval.json", "crossval.md", "crossval.png",
                                               "crossval_roc.png"]
    payload = json.loads((tmp_path / "crossval.json").read_text())
    assert payload["bootstrap_rounds"] == 300
    assert recompute(tmp_path / "crossval.json") == {"rows": payload["rows"], "summary": payload["summary"]}
    with open(tmp_path / "crossval.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["held_out"] for r in rows] == ["br35h", "mos", "lgg", "mean", "worst (mos)"]
    assert float(rows[1]["auc"]) == pytest.approx(payload["rows"][1]["auc"])
    assert float(rows[3]["auc"]) == pytest.approx(payload["summary"]["mean_auc"])
    markdown = (tmp_path / "crossval.md").read_text()
    assert markdown.count("\n") == 2 + 3 + 2 and "| **worst** |" in markdown
    for name in ("crossval.png", "crossval_roc.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[0] > 100 and image.std() > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_single_class_test_set_gives_no_auc(folds):
    fold = folds[0]
    fold["test"]["labels"] = [1] * len(fold["test"]["labels"])
    row = crossval_table.fold_row(fold, rounds=100)
    assert row["auc"] is None and row["auc_low"] is None and row["specificity"] is None
    result = table(folds, rounds=100)
    assert result["summary"]["folds"] == 3 and result["summary"]["worst_auc_source"] == "mos"


#: The CPU studies committed with their per-scan scores: (document, folder of variants, variants).
DOCS = REPO / "docs"
STUDIES = [("crossval_small_profile.md", "crossval_small", ("baseline", "appearance", "normalise")),
           ("head_refit_study.md", "crossval_refit", ("as-shipped", "source-class", "none"))]


def assert_same_table(computed, stored, where: str = "") -> None:
    """Equal tables: the same keys and texts, numbers equal to 1e-12 (summation order may differ)."""
    if isinstance(stored, dict):
        assert isinstance(computed, dict) and computed.keys() == stored.keys(), where
        for key in stored:
            assert_same_table(computed[key], stored[key], f"{where}.{key}")
    elif isinstance(stored, list):
        assert isinstance(computed, list) and len(computed) == len(stored), where
        for index, (a, b) in enumerate(zip(computed, stored)):
            assert_same_table(a, b, f"{where}[{index}]")
    elif isinstance(stored, float):
        assert computed == pytest.approx(stored, rel=1e-12, abs=1e-12), where
    else:
        assert computed == stored, where


@pytest.mark.parametrize("document, folder, variants", STUDIES, ids=[doc for doc, _, _ in STUDIES])
def test_committed_study_reproduces_from_its_scores_and_the_document_quotes_it(document, folder, variants):
    text = (DOCS / document).read_text()
    for variant in variants:
        path = DOCS / folder / variant / "crossval.json"
        payload = json.loads(path.read_text())
        assert_same_table(recompute(path), {"rows": payload["rows"], "summary": payload["summary"]}, variant)
        assert [row["held_out"] for row in payload["rows"]] == ["br35h", "mos", "lgg"]
        assert (path.parent / "crossval.md").read_text().strip() in text, variant
        assert payload["command"] in text, variant


def test_refit_study_says_the_backbone_is_shared_and_quotes_the_independent_folds():
    text = (DOCS / "head_refit_study.md").read_text()
    for variant in STUDIES[1][2]:
        payload = json.loads((DOCS / "crossval_refit" / variant / "crossval.json").read_text())
        assert "the backbone is shared by every fold" in payload["title"]
        for row in payload["rows"]:  # the summary table quotes each independent fold's AUC and interval
            if row["held_out"] != "br35h":
                assert f"{row['auc']:.3f} [{row['auc_low']:.3f}, {row['auc_high']:.3f}]" in text
