"""The Streamlit app through Streamlit's AppTest (in-process; the upload widget is driven directly)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app_support
from core.io import ScanError, read_scan
from core.model.classifier import load_classifier
from core.predict import analysis

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"

TIMEOUT = 180  # the first run loads and warms up the model


def _app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    return at.run()


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader[0].set_value([(name, data, "application/octet-stream") for name, data in files])
    return at.run()


def _page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "subheader", "title")
             for e in getattr(at, kind)]
    parts += [m.value for m in at.metric] + [m.label for m in at.metric]
    parts += [c for img in at.image for c in img.captions]
    parts += [b.label for b in at.download_button]
    return "\n".join(str(p) for p in parts)


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in _page_text(at)


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return load_classifier(tiny_model_dir)


def test_no_model_page_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(tmp_path / "nothing-here"))
    at = _app()
    _assert_clean(at)
    assert "No trained model is available" in at.error[0].value
    text = _page_text(at)
    assert "python -m train" in text and "BRAIN_MRI_MODEL_DIR" in text and "model.keras" in text
    assert "not for clinical use" in text
    assert len(at.file_uploader) == 0


def test_model_card_and_disclaimer_always_visible(model_env):
    at = _app()
    _assert_clean(at)
    text = _page_text(at)
    assert "Research demo, not for clinical use" in text
    classifier = load_classifier(model_env)
    assert classifier.model_id in text
    assert "Br35H (test fixture)" in text  # training data, from the card
    assert "auc 0.500 (95% CI 0.450–0.550)" in text  # external metric with its interval
    assert classifier.card.weights_sha256 in text
    assert "threshold **0.500**" in text and "AUC on" not in text  # the fixture's card names no unseen source
    assert at.expander[0].label == "What it was trained and tested on"  # the details, one click away
    assert "What it cannot claim" not in text  # the fixture's card lists no limitation
    assert "bright yellow marks the regions with the strongest evidence for **tumour**" in text  # what the colours mean
    assert [r.label for r in at.radio] == ["Method", "Explain evidence for"]
    from core.explain import method_labels

    assert at.radio[0].options == list(method_labels())  # every registered method, in table order
    assert at.radio[0].options[:3] == ["Grad-CAM", "Grad-CAM++", "Score-CAM"]
    assert at.radio[0].value == "HiResCAM"  # the default method (core.explain.DEFAULT_METHOD) is shown first
    assert at.selectbox[0].label == "Compare with" and at.selectbox[0].value == "(none)"
    assert at.slider[0].value == pytest.approx(0.4)


def test_the_model_panel_lists_the_cards_limitations(tiny_model_dir, monkeypatch, tmp_path):
    import shutil

    from core.model.card import update_card

    directory = shutil.copytree(tiny_model_dir, tmp_path / "with-limitations")
    update_card(directory, limitations=["Research demo only.", "At chance on central T1 slices of LGG."])
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(directory))
    at = _app()
    _assert_clean(at)
    text = _page_text(at)
    assert "What it cannot claim" in text
    assert "- Research demo only.\n- At chance on central T1 slices of LGG." in text


def test_the_model_panel_shows_the_cards_results_as_a_table(tiny_model_dir, monkeypatch, tmp_path):
    import shutil

    from core.model.card import update_card

    directory = shutil.copytree(tiny_model_dir, tmp_path / "with-results")
    update_card(directory, external_test={"mos/Testing": {"auc": 0.748, "auc_ci95": [0.634, 0.845], "scans": 898,
                                                          "no_tumour": 37, "at_card": {"balanced_accuracy": 0.7}}})
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(directory))
    at = _app()
    _assert_clean(at)
    assert "AUC on a source it never saw: mos/Testing 0.748" in _page_text(at)
    shown = at.table[0].value
    assert list(shown.columns) == ["test set", "scans (no tumour)", "AUC [95% CI]", "balanced accuracy"]
    assert shown.iloc[0].tolist() == ["mos/Testing (never seen)", "898 (37)", "0.748 [0.634, 0.845]", "0.700"]
    assert app_support.RESULTS_NOTE in _page_text(at)


@pytest.mark.parametrize("kind, name", [("jpeg", "scan.jpg"), ("png", "scan.png"), ("dicom", "IM0001")])
def test_valid_upload_gives_probability(model_env, classifier, request, kind, name):
    data = request.getfixturevalue(f"{'png_bytes' if kind == 'png' else kind + '_bytes'}")
    at = _upload(_app(), [(name, data)])
    _assert_clean(at)
    expected = app_support.analyse(classifier, data, name)  # the same core calls, outside the app
    assert not expected.refused and expected.probability == pytest.approx(
        float(classifier.predict([read_scan(data, name=name).pixels])[0]), abs=1e-5)  # no calibration in the card
    assert at.metric[0].label == "Tumour probability"
    assert at.metric[0].value == f"{expected.probability:.1%}"
    assert app_support.verdict_text(expected) in _page_text(at)
    assert f"{expected.assessment.low:.1%}–{expected.assessment.high:.1%}" in _page_text(at)
    assert at.subheader[0].value == name
    captions = [c for img in at.image for c in img.captions]
    assert captions[:2] == ["Original, crop box in green", "Cropped brain (model input)"]
    assert len(at.image) == 3, "original, crop and overlay"
    assert captions[2] == "HiResCAM: evidence for tumour"
    assert [b.label for b in at.download_button] == ["Overlay (PNG)", "Report (JSON)", "Report (PDF)"]
    assert at.caption and any("Hiding the highlighted 15% of the brain" in c.value or "map is blank" in c.value
                              for c in at.caption)  # the map's faithfulness, in words
    assert not at.error and not at.dataframe  # one scan: no table


def test_dicom_patient_tags_never_reach_the_page(model_env, dicom_bytes, patient_tags):
    at = _upload(_app(), [("IM0001", dicom_bytes)])
    _assert_clean(at)
    text = _page_text(at)
    for secret in patient_tags:
        assert secret not in text


def test_several_files_give_a_table_and_csv(model_env, classifier, jpeg_bytes, png_bytes, dicom_bytes):
    files = [("a.jpg", jpeg_bytes), ("b.png", png_bytes), ("c.dcm", dicom_bytes)]
    at = _upload(_app(), files)
    _assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["a.jpg", "b.png", "c.dcm"]
    expected = classifier.predict([read_scan(d).pixels for _, d in files])
    assert table["tumour_probability"].tolist() == pytest.approx(expected.tolist(), abs=1e-4)
    assert set(table["label"]) <= {"Tumour", "No tumour", "Uncertain"}
    assert set(table["status"]) == {"ok"}
    assert "Download results (CSV)" in [b.label for b in at.download_button]
    assert len(at.metric) == 3 and len(at.image) == 9


BAD_FILES = [
    ("report.pdf", "pdf_bytes"),
    ("cut.jpg", "truncated_jpeg_bytes"),
    ("huge.png", "bomb_png_bytes"),
    ("jpegls.dcm", "compressed_dicom_bytes"),
]


@pytest.mark.parametrize("name, fixture", BAD_FILES)
def test_bad_file_gives_message_and_others_still_work(model_env, request, jpeg_bytes, name, fixture):
    at = _upload(_app(), [(name, request.getfixturevalue(fixture)), ("good.jpg", jpeg_bytes)])
    _assert_clean(at)
    assert len(at.error) == 1
    message = at.error[0].value
    with pytest.raises(ScanError) as raised:  # the page shows core's own message for the file
        read_scan(request.getfixturevalue(fixture), name=name)
    assert message == str(raised.value) and name in message and len(message) < 500
    assert [s.value for s in at.subheader if s.value != "All results"] == ["good.jpg"]
    assert len(at.metric) == 1
    row = at.dataframe[0].value.set_index("file").loc[name]
    assert row["label"] == "—" and row["error"] == message and row["status"] == "unreadable"


def test_unexpected_failure_gives_a_friendly_message(model_env, jpeg_bytes, monkeypatch, caplog):
    def broken(data, size, *, name=None):
        raise RuntimeError("internal detail /srv/secret")

    monkeypatch.setattr(analysis, "prepare_scan", broken)  # core.predict.analysis: the app's one path
    at = _upload(_app(), [("odd.jpg", jpeg_bytes)])
    _assert_clean(at)
    assert at.error[0].value.startswith("odd.jpg: this file could not be analysed.")
    assert "secret" not in _page_text(at)
    logged = [r.getMessage() for r in caplog.records if r.name == "brain_mri.app"]
    assert logged == ["Analysis failed: RuntimeError"]  # the type only: no file name, no content


def test_opacity_change_only_reblends(model_env, jpeg_bytes, monkeypatch):
    calls = {"analyse": 0, "explain": 0}
    analyse, explain_scan = app_support.analyse, app_support.explain_scan

    def counted(kind, function):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(app_support, "analyse", counted("analyse", analyse))
    monkeypatch.setattr(app_support, "explain_scan", counted("explain", explain_scan))
    at = _upload(_app(), [("scan.jpg", jpeg_bytes)])
    assert calls == {"analyse": 1, "explain": 1}
    before = at.image[2].value
    at.slider[0].set_value(0.9).run()
    _assert_clean(at)
    assert calls == {"analyse": 1, "explain": 1}, "opacity must not re-run the model"
    assert at.image[2].value != before, "the overlay is re-blended"
    at.radio[1].set_value("No tumour").run()
    _assert_clean(at)
    assert calls == {"analyse": 1, "explain": 2}, "a new target re-explains but does not re-classify"
    assert at.image[2].captions == ["HiResCAM: evidence for no tumour"]


def test_report_holds_the_result_and_no_patient_data(classifier, dicom_bytes, patient_tags):
    analysis = app_support.analyse(classifier, dicom_bytes, "IM0001")
    report = app_support.report(analysis, classifier.model_id, "gradcam", "tumour")
    assert report["tumour_probability"] == pytest.approx(analysis.probability)
    assert report["label"] == analysis.label and report["threshold"] == 0.5
    assert tuple(report["crop_box"].values()) == analysis.crop.box
    assert report["explanation"] == {"method": "gradcam", "target": "tumour"}
    assert report["model_id"] == classifier.model_id
    text = app_support.report_json(report).decode()
    assert json.loads(text) == report
    for secret in patient_tags:
        assert secret not in text


def test_draw_box_and_png(jpeg_bytes):
    pixels = read_scan(jpeg_bytes).pixels
    boxed = app_support.draw_box(pixels, (10, 20, 60, 80))
    assert boxed.shape[:2] == pixels.shape[:2] and boxed.shape[2] == 3
    assert tuple(boxed[20, 30]) == app_support.BOX_COLOUR
    decoded = np.asarray(Image.open(io.BytesIO(app_support.png_bytes(boxed))))
    assert np.array_equal(decoded, boxed)


def test_notes_are_worded_when_they_apply(classifier, jpeg_bytes):
    analysis = app_support.analyse(classifier, jpeg_bytes, "a.jpg")
    fell_back_scan = dataclasses.replace(analysis.scan, crop=dataclasses.replace(analysis.crop, fell_back=True))
    fell_back = dataclasses.replace(analysis, scan=fell_back_scan)

    class Blank:
        blank = True

    found = app_support.notes(fell_back, Blank(), "Tumour")
    assert len(found) == 2
    assert "whole image" in found[0] and "blank" in found[1]
    confident_scan = dataclasses.replace(analysis.scan, crop=dataclasses.replace(analysis.crop, fell_back=False))
    assert app_support.notes(dataclasses.replace(analysis, scan=confident_scan), None) == []


def test_reruns_keep_the_keras_session(model_env, jpeg_bytes, monkeypatch, streamlit_clean_up):
    """Streamlit would call keras.backend.clear_session() after each run (emptying TF's kernel
    cache: ~1 s on the next inference); the app switches that off."""
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    at = _upload(_app(), [("scan.jpg", jpeg_bytes)])
    at.slider[0].set_value(0.7).run()
    _assert_clean(at)
    assert cleared == []


def _typed_model(tiny_model_dir: Path, folder: Path, threshold: float) -> Path:
    """A copy of the tiny model with a type head (meningioma-leaning) and the given threshold."""
    import shutil

    from core.io.atomic import write_atomic
    from core.model.card import read_card
    from tests.core.model.test_tumour_type import attach_type_head

    typed = Path(shutil.copytree(tiny_model_dir, folder))
    write_atomic(typed / "model_card.json", read_card(typed).with_entries(threshold=threshold).to_json())
    attach_type_head(typed, width=2048)
    return typed


def test_the_tumour_type_is_shown_under_a_tumour_verdict(tiny_model_dir, jpeg_bytes, monkeypatch, tmp_path):
    """A model with a type head (the tiny model, every scan called tumour): the type line under the verdict, in
    the JSON report and the table too; the same model calling no tumour gives no type anywhere (the page shows
    only what app_support returns)."""
    typed = _typed_model(tiny_model_dir, tmp_path / "typed", threshold=0.0)
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(typed))
    at = _upload(_app(), [("scan.jpg", jpeg_bytes)])
    _assert_clean(at)
    expected = app_support.analyse(load_classifier(typed), jpeg_bytes, "scan.jpg")
    assert expected.assessment.verdict == "tumour" and expected.assessment.tumour_type.type == "meningioma"
    assert "**Type: meningioma 77%** · glioma 17% · pituitary 6%" in _page_text(at)
    report = app_support.report(expected, "m", "gradcam", "tumour")
    assert report["tumour_type"]["type"] == "meningioma"
    assert app_support.table_row("scan.jpg", expected)["type"] == "meningioma 77%"
    never = app_support.analyse(load_classifier(_typed_model(tiny_model_dir, tmp_path / "never", threshold=1.0)),
                                jpeg_bytes, "scan.jpg")
    assert never.assessment.verdict == "no_tumour" and never.assessment.tumour_type is None
    assert app_support.table_row("scan.jpg", never)["type"] == ""
    assert "tumour_type" not in app_support.report(never, "m", "gradcam", "tumour")
