"""The model shipped in models/: it loads, verifies its hash, predicts, and its card's numbers reproduce."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest

from core import load_classifier, read_scan
from core.model import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, sha256_of

REQUIRED_CARD_FIELDS = ("name", "command", "seed", "versions", "initialisation", "recipe", "data", "threshold",
                        "threshold_method", "metrics", "external_test", "intended_use", "limitations",
                        "weights_sha256")


@pytest.fixture(scope="module")
def shipped():
    if not (DEFAULT_MODEL_DIR / MODEL_FILE).is_file():
        pytest.fail(f"The shipped model is missing from {DEFAULT_MODEL_DIR}")
    return load_classifier()


def test_card_describes_the_model(shipped):
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    missing = [field for field in REQUIRED_CARD_FIELDS if field not in card]
    assert not missing, f"model card lacks {missing}"
    assert card["weights_sha256"] == sha256_of(DEFAULT_MODEL_DIR / MODEL_FILE)
    assert 0.0 < shipped.threshold < 1.0
    assert shipped.input_size == card["input"]["size"] == 224
    assert "not" in card["intended_use"].lower() and card["limitations"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def test_card_links_to_the_side_by_side_comparison():
    comparison = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())["comparison"]
    document, anchor = comparison["document"].split("#")
    text = (DEFAULT_MODEL_DIR.parents[1] / document).read_text()
    headings = [line.lstrip("#") for line in text.splitlines() if line.startswith("#")]
    assert anchor in [github_anchor(h) for h in headings], f"{document} has no heading for #{anchor}"
    script = comparison["command"].split()[1]
    assert (DEFAULT_MODEL_DIR.parents[1] / script).is_file()
    assert comparison["command"] in text  # the README gives the same command


def test_loads_by_default_and_predicts_real_scans(shipped, shared_data):
    tumour = read_scan(shared_data / "br35h" / "yes" / "y0.jpg").pixels
    normal = read_scan(shared_data / "br35h" / "no" / "no0.jpg").pixels
    probabilities = shipped.predict([tumour, normal])
    assert probabilities.dtype == np.float32 and probabilities.shape == (2,)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert probabilities[0] > shipped.threshold > probabilities[1]  # training scans, one of each class


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    with open(copy / MODEL_FILE, "r+b") as handle:
        handle.seek(-100, 2)
        handle.write(b"\0" * 10)
    with pytest.raises(ValueError, match="do not match"):
        load_classifier(copy)


@pytest.mark.slow
def test_evaluate_reproduces_the_card(shipped, shared_data, tmp_path, monkeypatch):
    """`python -m train.evaluate` on de-duplicated MOS Testing gives the card's external numbers exactly."""
    from train.evaluate import run

    monkeypatch.setenv("BRAIN_MRI_CACHE", str(tmp_path / "cache"))
    recorded = shipped.card.external_test["mos/Testing"]
    args = argparse.Namespace(
        model=str(DEFAULT_MODEL_DIR), data=[str(shared_data / "mos" / "Testing")],
        exclude_duplicates_of=[str(shared_data / "br35h")], negative_classes=["no", "notumor", "no_tumor",
                                                                             "normal", "healthy"],
        near_threshold=recorded["duplicates_removed"]["near_threshold"], workers=2, seed=0)
    result = run(args)["results"]["mos/Testing"]
    assert result["scans"] == recorded["scans"]
    assert result["auc"] == pytest.approx(recorded["auc"], abs=1e-9)
    assert result["auc_ci95"] == pytest.approx(recorded["auc_ci95"], abs=1e-9)
    for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1"):
        assert result["at_card"][key] == pytest.approx(recorded["at_card"][key], abs=1e-9)
    assert result["at_card"]["confusion"] == recorded["at_card"]["confusion"]
