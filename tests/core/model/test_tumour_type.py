"""core.model.tumour_type: type calls, the card entry, the loaded head, and the type wherever the binary answer is shown
(assessment, `python -m core predict` CSV and PDF): only for scans called tumour."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.model.tumour_type import CARD_ENTRY, TYPES, call_types, check_entry, describe_type, softmax
from tests.core.test_cli import tiny_model

keras = pytest.importorskip("keras")


def test_softmax_rows_sum_to_one_and_temperature_flattens():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    sharp, flat = softmax(logits), softmax(logits, temperature=4.0)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0)
    np.testing.assert_allclose(flat[1], [1 / 3] * 3)
    assert flat[0, 0] < sharp[0, 0] and flat[0, 0] > 1 / 3


def test_a_type_is_named_only_at_or_above_the_level():
    named, unsure = call_types(np.array([[0.71, 0.22, 0.07], [0.45, 0.40, 0.15]]), uncertain_below=0.6)
    assert named.type == "glioma" and not named.uncertain
    assert unsure.type is None and unsure.uncertain
    assert named.describe() == "Type: glioma 71% · meningioma 22% · pituitary 7%"
    assert unsure.describe() == "Type uncertain (glioma 45% · meningioma 40% · pituitary 15%)"
    assert [name for name, _ in call_types(np.array([[0.1, 0.2, 0.7]]), 0.5)[0].ranked()] == [
        "pituitary", "meningioma", "glioma"]
    assert describe_type(None) == ""


@pytest.mark.parametrize("change, words", [
    ({"classes": ["a", "b", "c"]}, "classes"), ({"temperature": 0}, "temperature > 0"),
    ({"uncertain_below": 1.5}, "uncertain_below"), ({"file": "../elsewhere.keras"}, "file name")])
def test_a_broken_card_entry_is_refused_by_name(change, words):
    entry = {"file": "type_head.keras", "sha256": "0" * 64, "temperature": 1.0, "uncertain_below": 0.6,
             "classes": list(TYPES)}
    assert check_entry(entry, "card") == entry
    with pytest.raises(ValueError, match=words):
        check_entry({**entry, **change}, "card")
    with pytest.raises(ValueError, match="lacks sha256"):
        check_entry({k: v for k, v in entry.items() if k != "sha256"}, "card")


def attach_type_head(directory: Path, width: int, level: float = 0.5) -> None:
    """Give a saved model a type head on its `width` pooled features that calls every scan glioma 17%,
    meningioma 77%, pituitary 6% (only the output bias is not zero), and the card entry that names it."""
    from core.io.atomic import write_atomic
    from core.model.card import CARD_FILE, read_card
    from core.model.classifier import sha256_of
    from train.studies.type_fit import build_type_head

    head = build_type_head(np.zeros(width), np.ones(width), seed=0)
    hidden, logits = head.get_layer("type_hidden"), head.get_layer("type_logits")
    hidden.set_weights([np.zeros(w.shape, np.float32) for w in hidden.get_weights()])
    logits.set_weights([np.zeros(logits.get_weights()[0].shape, np.float32), np.array([0.0, 1.5, -1.0], np.float32)])
    head.save(directory / "type_head.keras")
    entry = {"file": "type_head.keras", "sha256": sha256_of(directory / "type_head.keras"), "temperature": 1.0,
             "uncertain_below": level, "classes": list(TYPES)}
    write_atomic(directory / CARD_FILE, read_card(directory).with_entries(**{CARD_ENTRY: entry}).to_json())


def model_with_type_head(root: Path, threshold: float) -> Path:
    from core.model.classifier import save_classifier

    directory = save_classifier(tiny_model(), {"name": "tiny-typed", "threshold": threshold,
                                                "explain_layer": "last_conv"}, root)
    attach_type_head(directory, width=4)
    return directory


def scan(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((96, 96), np.uint8)
    pixels[12:-12, 14:-14] = rng.integers(60, 200, size=(72, 68))
    return pixels


def test_the_type_head_loads_with_the_model_and_is_checked(tmp_path):
    from core.model.classifier import load_classifier

    directory = model_with_type_head(tmp_path / "m", threshold=0.0)
    classifier = load_classifier(directory)
    probabilities = classifier.type_head.probabilities(np.ones((2, 4), np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert probabilities.argmax(axis=1).tolist() == [1, 1]
    (directory / "type_head.keras").write_bytes(b"replaced")
    with pytest.raises(ValueError, match="does not match its model card"):
        load_classifier(directory)
    (directory / "type_head.keras").unlink()
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier(directory)


def test_assessment_names_the_type_only_for_scans_called_tumour(tmp_path):
    from core.imaging.pipeline import prepare_pixels
    from core.model.classifier import load_classifier
    from core.predict.assessment import assess

    scans = [prepare_pixels(scan(seed), 32) for seed in range(3)]
    every_tumour = load_classifier(model_with_type_head(tmp_path / "low", threshold=0.0))
    results = assess(every_tumour, scans)
    assert {r.verdict for r in results} == {"tumour"}
    assert all(r.tumour_type is not None and r.tumour_type.type == "meningioma" for r in results)
    # the binary answer is the same with and without the type head
    plain = every_tumour.predict_inputs(np.stack([s.model_input for s in scans]))
    np.testing.assert_allclose([r.raw for r in results], plain, rtol=1e-5)
    never_tumour = load_classifier(model_with_type_head(tmp_path / "high", threshold=1.0))
    assert all(r.verdict != "tumour" and r.tumour_type is None for r in assess(never_tumour, scans))


@pytest.mark.parametrize("threshold, typed", [(0.0, True), (1.0, False)])
def test_predict_csv_and_pdf_show_the_type_only_for_tumour(tmp_path, threshold, typed):
    from core.cli import main

    directory = model_with_type_head(tmp_path / "m", threshold)
    folder = tmp_path / "scans"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(scan(seed)).save(folder / f"s{seed}.png")
    out, pdf = tmp_path / "out.csv", tmp_path / "out.pdf"
    assert main(["predict", str(folder), "--model", str(directory), "--csv", str(out), "--pdf", str(pdf)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)
    for row in rows:
        if typed:
            assert row["label"] == "tumour" and row["type"] == "meningioma"
            assert abs(sum(float(row[f"p_{t}"]) for t in TYPES) - 1) < 1e-5
        else:
            assert row["label"] != "tumour" and row["type"] == "" and row["p_glioma"] == ""
    text = pdf_text(pdf)
    assert ("Tumour type" in text) == typed and ("meningioma" in text) == typed


def pdf_text(path: Path) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext not found: install poppler-utils (apt-get install poppler-utils) to read PDFs")
    return subprocess.run([tool, "-layout", str(path), "-"], check=True, capture_output=True, text=True,
                          timeout=120).stdout


def test_a_card_without_a_type_head_loads_as_before(tmp_path):
    from core.model.classifier import load_classifier, save_classifier

    directory = save_classifier(tiny_model(), {"name": "untyped", "threshold": 0.5}, tmp_path / "m")
    assert load_classifier(directory).type_head is None
    assert CARD_ENTRY not in json.loads((directory / "model_card.json").read_text())
