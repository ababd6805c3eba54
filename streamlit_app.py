"""Brain-tumour detector for MRI slices: the Streamlit app.

Run: ``streamlit run streamlit_app.py`` (model from ``models/brain-mri-resnet50/``,
or the directory named by the ``BRAIN_MRI_MODEL_DIR`` environment variable).

A thin layer over `core` (via `app_support`): uploads stay in memory, results
are cached per browser session only, the model once per server process.
"""

from __future__ import annotations

import logging
import os
import sys

import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

import app_support as support
from core.labels import display
from core.model import MODEL_DIR_ENV, load_classifier
from core.scanio import ScanError

log = logging.getLogger("brain_mri.app")

#: Per-file upload limit (MB); also `server.maxUploadSize` in .streamlit/config.toml.
MAX_UPLOAD_MB = 50
FORMATS = "JPEG, PNG, BMP, TIFF or DICOM"
GENERIC_FAILURE = (f"this file could not be analysed. Check that it is a single brain MRI slice "
                   f"({FORMATS}) and try again.")


def _close_pyplot_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def keep_keras_session() -> None:
    """Stop Streamlit from calling `keras.backend.clear_session()` after every script run.

    Streamlit's `script_runner._clean_problem_modules` (private; 1.67) does so for apps that
    build models in the script. It empties TensorFlow's kernel cache, so the first inference
    of every rerun took ~1 s instead of ~0.15 s, and it can fire while another session is
    mid-inference. Our models live in `st.cache_resource` and are never rebuilt per run, so
    only the other clean-up (closing pyplot figures) is kept.
    """
    if callable(getattr(script_runner, "_clean_problem_modules", None)):
        script_runner._clean_problem_modules = _close_pyplot_figures


@st.cache_resource(show_spinner="Loading the model…")
def get_classifier(model_dir: str | None):
    """The classifier, loaded and warmed up once per server process (shared, read-only)."""
    classifier = load_classifier(model_dir)
    support.warm_up(classifier)
    return classifier


def classifier_ui():
    """Load the model, or explain how to get one. Returns the classifier or None."""
    model_dir = os.environ.get(MODEL_DIR_ENV) or None  # part of the cache key: a new directory loads anew
    try:
        return get_classifier(model_dir)
    except FileNotFoundError as error:
        st.error("No trained model is available, so scans cannot be analysed yet.")
        st.markdown(
            f"{error}\n\nTo use a model stored elsewhere, start the app with "
            f"`{MODEL_DIR_ENV}=/path/to/model_dir streamlit run streamlit_app.py`; "
            "the directory must hold `model.keras` and `model_card.json`. See the README."
        )
    except ValueError as error:  # weights do not match their card, card unreadable, ...
        st.error(f"The model could not be loaded: {error}")
    except Exception as error:
        log.error("Model loading failed: %s", type(error).__name__)
        st.error("The model could not be loaded. See the server log and the README.")
    return None


def model_ui(classifier) -> None:
    """What model is running and what it was trained on, from its model card."""
    try:
        summary = support.card_summary(classifier.card)
    except Exception as error:  # a malformed card must not take the page down
        log.error("Model card summary failed: %s", type(error).__name__)
        st.error("The model card could not be read; the model's provenance is unknown.")
        return
    with st.container(border=True):
        st.markdown(f"**Model:** `{classifier.model_id}` · decision threshold **{summary['threshold']}**")
        st.caption(f"**Trained on:** {summary['data']}")
        st.caption(f"**External test:** {summary['metrics']}")
        st.caption(f"**Weights SHA-256:** `{summary['weights_sha256']}`")


def controls_ui() -> tuple[str, str, str, str, float]:
    """Sidebar: explanation method, target and opacity. Returns labels, core values and alpha."""
    with st.sidebar:
        st.header("Explanation")
        methods = support.methods()
        method_label = st.radio("Method", list(methods), key="method")
        target_label = st.radio("Explain evidence for", list(support.TARGETS), key="target")
        alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.4, 0.05, key="alpha")
        st.markdown(
            f"**Reading the overlay:** bright yellow marks the regions with the strongest evidence for "
            f"**{target_label.lower()}**, orange and red weaker evidence; dark purple, or the scan left "
            "unchanged, means little or none. The map shows where the model looked, not the outline "
            "of a tumour. "
            "The green box on the original is the brain crop the model saw."
        )
    return method_label, methods[method_label], target_label, support.TARGETS[target_label], alpha


def upload_ui() -> list[tuple[str, bytes]]:
    """The uploader. Returns (file name, bytes) pairs, kept in memory only."""
    files = st.file_uploader(
        f"Upload MRI slices ({FORMATS}); drag and drop or browse",
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
        help="The type is checked from the content, so DICOM files without an extension work too. "
             "Files are kept in memory for this browser session only and never saved.",
        key="uploads",
    )
    return [(file.name, file.getvalue()) for file in files or []]


def _session_cache(name: str, model_id: str) -> dict:
    """A per-session dict, emptied when the model changes. Never shared across sessions."""
    if st.session_state.get("_cache_model") != model_id:
        st.session_state["_cache_model"] = model_id
        for key in ("_analyses", "_explanations"):
            st.session_state[key] = {}
    return st.session_state.setdefault(name, {})


def _friendly(name: str, error: Exception) -> str:
    if isinstance(error, ScanError):
        message = str(error)
        return message if name in message else f"{name}: {message}"
    log.warning("Analysis failed: %s", type(error).__name__)  # no file name, no content
    return f"{name}: {GENERIC_FAILURE}"


def analyse_all(classifier, uploads, method: str, target: str) -> list[tuple[str, object, object]]:
    """(name, Analysis or error text, Explanation or error text or None) per upload, cached per session."""
    analyses = _session_cache("_analyses", classifier.model_id)
    explanations = _session_cache("_explanations", classifier.model_id)
    results, keys = [], set()
    for name, data in uploads:
        key = (support.digest_of(data), name)
        keys.add(key)
        if key not in analyses:
            with st.spinner(f"Analysing {name}…"):
                try:
                    analyses[key] = support.analyse(classifier, data, name)
                except Exception as error:  # noqa: BLE001 - every failure becomes a message
                    analyses[key] = _friendly(name, error)
        analysis, explanation = analyses[key], None
        if isinstance(analysis, support.Analysis):
            explained_key = (key[0], method, target)
            if explained_key not in explanations:
                with st.spinner(f"Explaining {name}…"):
                    try:
                        explanations[explained_key] = support.explain_scan(classifier, analysis, method, target)
                    except Exception as error:  # noqa: BLE001
                        log.warning("Explanation failed: %s", type(error).__name__)
                        explanations[explained_key] = "The explanation could not be computed for this scan."
            explanation = explanations[explained_key]
        results.append((name, analysis, explanation))
    # Keep only what the current upload and settings need, so memory stays bounded.
    for key in set(analyses) - keys:
        del analyses[key]
    digests = {digest for digest, _ in keys}
    for key in [k for k in explanations if k[0] not in digests or k[1:] != (method, target)]:
        del explanations[key]
    return results


def table_ui(results) -> None:
    """Sortable table of every upload, with a CSV download."""
    rows = [support.table_row(name, analysis if isinstance(analysis, support.Analysis) else None,
                              None if isinstance(analysis, support.Analysis) else analysis)
            for name, analysis, _ in results]
    st.subheader("All results")
    shown = [{**row, "label": display(row["label"]) if row["tumour_probability"] is not None else row["label"]}
             for row in rows]
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "tumour_probability": st.column_config.NumberColumn("tumour probability", format="%.3f"),
        "crop_fell_back": st.column_config.CheckboxColumn("crop fell back"),
        "near_threshold": st.column_config.CheckboxColumn("near threshold"),
    })
    st.download_button("Download results (CSV)", support.csv_bytes(rows), "results.csv", "text/csv",
                       on_click="ignore", key="csv")


def scan_ui(index: int, analysis, explanation, method: tuple[str, str], target: tuple[str, str],
            alpha: float, model_id: str) -> None:
    """One scan: original with crop box, cropped brain and overlay; probability, label, notes, downloads."""
    (method_label, method_value), (target_label, target_value) = method, target
    with st.container(border=True, key=f"scan-{index}"):  # key: a stable CSS class for browser tests
        st.subheader(analysis.name)
        st.metric("Tumour probability", f"{analysis.probability:.1%}")
        st.markdown(f"Label at the model's threshold ({analysis.threshold:.2f}): **{display(analysis.label)}**")
        explained = explanation if not isinstance(explanation, str) else None
        for note in support.notes(analysis, explained, target_label):
            st.info(note)
        left, middle, right = st.columns(3)
        left.image(support.draw_box(analysis.pixels, analysis.crop.box), caption="Original, crop box in green",
                   width="stretch")
        middle.image(analysis.crop.image, caption="Cropped brain (model input)", width="stretch")
        if explained is None:
            right.warning(explanation or "No explanation available.")
        else:
            overlay = explained.overlay(alpha=alpha, on="crop")
            right.image(overlay, caption=f"{method_label}: evidence for {target_label.lower()}",
                        width="stretch")
        stem = analysis.name.rsplit(".", 1)[0] or "scan"
        buttons = st.columns(2)
        if explained is not None:
            buttons[0].download_button("Overlay (PNG)", support.png_bytes(overlay), f"{stem}-overlay.png",
                                       "image/png", on_click="ignore", key=f"png-{index}")
        report = support.report(analysis, model_id, method_value, target_value)
        buttons[1].download_button("Report (JSON)", support.report_json(report), f"{stem}-report.json",
                                   "application/json", on_click="ignore", key=f"json-{index}")


def main() -> None:
    keep_keras_session()
    st.set_page_config(page_title="Brain MRI tumour detector", layout="wide")
    st.title("Brain MRI tumour detector")
    st.warning(support.DISCLAIMER)
    classifier = classifier_ui()
    if classifier is None:
        return
    model_ui(classifier)
    method_label, method, target_label, target, alpha = controls_ui()
    uploads = upload_ui()
    if not uploads:
        st.info(f"Upload one or more brain MRI slices ({FORMATS}) to see the tumour probability "
                "and where the model looked.")
        return
    results = analyse_all(classifier, uploads, method, target)
    if len(results) > 1:
        table_ui(results)
    for index, (name, analysis, explanation) in enumerate(results):
        if isinstance(analysis, str):
            st.error(analysis)
        else:
            try:
                scan_ui(index, analysis, explanation, (method_label, method), (target_label, target),
                        alpha, classifier.model_id)
            except Exception as error:
                log.error("Drawing a result failed: %s", type(error).__name__)
                st.error(f"{name}: {GENERIC_FAILURE}")


main()
