"""Brain-tumour detector for MRI slices: the Streamlit app.

Run: ``streamlit run streamlit_app.py`` (model from ``models/brain-mri-resnet50/``,
or the directory named by the ``BRAIN_MRI_MODEL_DIR`` environment variable).

A thin layer over `core` (via `app_support`): uploads stay in memory, results
are cached per browser session only, the model once per server process. About 440 lines because it is only
page layout (single scans, series, results table, downloads), each section a short function; what the page
shows is computed in `app_support` and `core`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

import app_support as support
from core.explain.registry import DEFAULT_METHOD
from core.io import ScanError
from core.model.classifier import MODEL_DIR_ENV, load_classifier

log = logging.getLogger("brain_mri.app")

#: Per-file upload limit (MB); also `server.maxUploadSize` in .streamlit/config.toml.
MAX_UPLOAD_MB = 50
FORMATS = "JPEG, PNG, BMP, TIFF or DICOM, or a .zip of DICOM files"
#: What "Compare with" offers besides the registered methods.
NO_COMPARISON = "(none)"
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
        summary, rows = support.card_summary(classifier.card), support.results_table(classifier.card)
    except Exception as error:  # a malformed card must not take the page down
        log.error("Model card summary failed: %s", type(error).__name__)
        st.error("The model card could not be read; the model's provenance is unknown.")
        return
    with st.container(border=True):
        line = f"**Model:** `{classifier.model_id}` · decision threshold **{summary['threshold']}**"
        st.markdown(line + (f" · {summary['unseen_sources']}" if summary["unseen_sources"] else ""))
        with st.expander("What it was trained and tested on"):
            st.caption(f"**Trained on:** {summary['data']}")
            if rows:
                st.table(rows)
                st.caption(support.RESULTS_NOTE)
            else:
                st.caption(f"**Tested on:** {summary['metrics']}")
            if summary["limitations"]:
                st.caption(f"**What it cannot claim** (from its card):\n{summary['limitations']}")
            st.caption(f"**Weights SHA-256:** `{summary['weights_sha256']}`")


@dataclass(frozen=True)
class Controls:
    """The sidebar's choices: (label, core value) for the method, the comparison method and the target."""

    method: tuple[str, str]
    compare: tuple[str, str] | None
    target: tuple[str, str]
    alpha: float

    def methods(self) -> list[tuple[str, str]]:
        return [self.method] + ([self.compare] if self.compare else [])


def controls_ui() -> Controls:
    """Sidebar: explanation method (and one to compare with), target and opacity."""
    with st.sidebar:
        st.header("Explanation")
        methods = support.methods()
        method_label = st.radio("Method", list(methods), key="method",
                                index=list(methods.values()).index(DEFAULT_METHOD))
        compare_label = st.selectbox("Compare with", [NO_COMPARISON] + [m for m in methods if m != method_label],
                                     key="compare", help="Show a second method's map beside the first.")
        target_label = st.radio("Explain evidence for", list(support.TARGETS), key="target")
        alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.4, 0.05, key="alpha")
        st.markdown(
            f"**Reading the overlay:** bright yellow marks the regions with the strongest evidence for "
            f"**{target_label.lower()}**, orange and red weaker evidence; dark purple, or the scan left "
            "unchanged, means little or none. The map shows where the model looked, not the outline "
            "of a tumour. Under each map, one sentence says whether hiding its brightest part changes "
            "the probability: a map that matters to the model does. "
            "The green box on the original is the brain crop the model saw."
        )
    compare = None if compare_label == NO_COMPARISON else (compare_label, methods[compare_label])
    return Controls((method_label, methods[method_label]), compare,
                    (target_label, support.TARGETS[target_label]), alpha)


def upload_ui() -> list[tuple[str, bytes]]:
    """The uploader. Returns (file name, bytes) pairs, kept in memory only."""
    files = st.file_uploader(
        f"Upload MRI slices ({FORMATS}); drag and drop or browse",
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
        help="The type is checked from the content, so DICOM files without an extension work too. "
             "Several DICOM files of one series are shown as a series. "
             "Files are kept in memory for this browser session only and never saved.",
        key="uploads",
    )
    return [(file.name, file.getvalue()) for file in files or []]


CACHES = ("_analyses", "_explanations", "_faithfulness", "_series")


def _session_cache(name: str, model_id: str) -> dict:
    """A per-session dict, emptied when the model changes. Never shared across sessions."""
    if st.session_state.get("_cache_model") != model_id:
        st.session_state["_cache_model"] = model_id
        for key in CACHES:
            st.session_state[key] = {}
    return st.session_state.setdefault(name, {})


def _friendly(name: str, error: Exception) -> str:
    if isinstance(error, ScanError):
        message = str(error)
        return message if name in message else f"{name}: {message}"
    log.warning("Analysis failed: %s", type(error).__name__)  # no file name, no content
    return f"{name}: {GENERIC_FAILURE}"


def _computed(store: dict, key, compute, spinner: str, failure: str = ""):
    """store[key], computing it once under a spinner.

    A failure is stored as `failure` (a message for the page) and logged by its type only (never a
    file name or content); without `failure` the exception itself is stored for the caller to word.
    """
    if key not in store:
        with st.spinner(spinner):
            try:
                store[key] = compute()
            except Exception as error:  # noqa: BLE001 - every failure becomes a message
                if not failure:
                    store[key] = error
                    return error
                log.warning("%s: %s", failure, type(error).__name__)
                store[key] = failure
    return store[key]


def analyse_all(classifier, uploads, controls: Controls) -> list[tuple[str, object, dict]]:
    """(name, Analysis or error text, {method: Explanation or error text}) per upload, cached per session."""
    analyses = _session_cache("_analyses", classifier.model_id)
    explanations = _session_cache("_explanations", classifier.model_id)
    results, keys = [], set()
    for name, data in uploads:
        key = (support.digest_of(data), name)
        keys.add(key)
        analysis = _computed(analyses, key, lambda: support.analyse(classifier, data, name), f"Analysing {name}…")
        if isinstance(analysis, Exception):
            analysis = analyses[key] = _friendly(name, analysis)
        found = {}
        if isinstance(analysis, support.Analysis) and not analysis.refused:
            found = {method: _explanation(classifier, explanations, analysis, method, controls.target[1])
                     for _, method in controls.methods()}
        results.append((name, analysis, found))
    _prune(keys, {method for _, method in controls.methods()}, controls.target[1])
    return results


def _explanation(classifier, store: dict, analysis, method: str, target: str):
    return _computed(store, (analysis.digest, method, target),
                     lambda: support.explain_scan(classifier, analysis, method, target),
                     f"Explaining {analysis.name}…", "The explanation could not be computed for this scan.")


def _prune(keys: set, methods: set, target: str) -> None:
    """Keep only what the current uploads and settings need, so a session's memory stays bounded."""
    analyses = st.session_state["_analyses"]
    for key in set(analyses) - keys:
        del analyses[key]
    digests = {digest for digest, _ in keys} | st.session_state.get("_series_digests", set())
    for name in ("_explanations", "_faithfulness"):
        store = st.session_state[name]
        for key in [k for k in store if k[0] not in digests or k[1] not in methods or k[2] != target]:
            del store[key]


def table_ui(classifier, results, method: str) -> None:
    """Sortable table of every upload, with CSV and PDF downloads."""
    rows = [support.table_row(name, analysis if isinstance(analysis, support.Analysis) else None,
                              None if isinstance(analysis, support.Analysis) else analysis)
            for name, analysis, _ in results]
    st.subheader("All results")
    shown = [{**row, "label": support.SHOWN[row["label"]]} for row in rows]
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "tumour_probability": st.column_config.NumberColumn("tumour probability", format="%.3f"),
        "probability_low": st.column_config.NumberColumn("lowest over views", format="%.3f"),
        "probability_high": st.column_config.NumberColumn("highest over views", format="%.3f"),
        "crop_fell_back": st.column_config.CheckboxColumn("crop fell back"),
    })
    left, right = st.columns(2)
    left.download_button("Download results (CSV)", support.csv_bytes(rows), "results.csv", "text/csv",
                         on_click="ignore", key="csv")
    items = [(a, None if isinstance(found.get(method), str) else found.get(method)) for _, a, found in results
             if isinstance(a, support.Analysis) and not a.refused]
    if items:
        right.download_button("Report of all scans (PDF)", lambda: support.pdf_bytes(classifier, items),
                              "brain-mri-report.pdf", "application/pdf", on_click="ignore", key="pdf-all")


def _stem(analysis) -> str:
    return analysis.name.rsplit(".", 1)[0] or "scan"


def refused_ui(index: int, analysis, model_id: str) -> None:
    """A scan the input check refused: why, and no probability."""
    with st.container(border=True, key=f"scan-{index}"):
        st.subheader(analysis.name)
        st.warning(support.verdict_text(analysis))
        left, _ = st.columns(2)
        left.image(support.draw_box(analysis.pixels, analysis.crop.box), caption="Uploaded image",
                   width="stretch")
        report = support.report(analysis, model_id, "", "")
        st.download_button("Report (JSON)", support.report_json(report), f"{_stem(analysis)}-report.json",
                           "application/json", on_click="ignore", key=f"json-{index}")


def probability_ui(analysis) -> None:
    """The calibrated probability, its range over flipped views, and the verdict."""
    result = analysis.assessment
    st.metric("Tumour probability", f"{result.probability:.1%}",
              help="Calibrated on held-out scans the model did not train on (see the model card).")
    if result.high > result.low:
        st.caption(f"Range over the scan and its flipped views: {result.low:.1%}–{result.high:.1%}")
    st.markdown(support.verdict_text(analysis))
    if result.tumour_type is not None:
        st.markdown(support.type_text(result.tumour_type),
                    help="Which tumour, if it is one: glioma, meningioma or pituitary (the model card's type head; "
                         "it was trained on MOS and LGG slices). 'Type uncertain' when no type is likely enough.")


def faithfulness_ui(where, classifier, digest: str, explanation) -> None:
    """Below a map: what hiding its brightest 15% of the brain does to the probability (computed once)."""
    store = _session_cache("_faithfulness", classifier.model_id)
    with where:
        text = _computed(store, (digest, explanation.method, explanation.target),
                         lambda: support.faithfulness_text(classifier, explanation),
                         "Measuring how much the map matters…", "The map's effect could not be measured.")
        st.caption(text)


def maps_ui(classifier, analysis, explanations: dict, controls: Controls) -> list:
    """The original with its crop box, the crop, and one overlay per chosen method (with its effect)."""
    target_label = controls.target[0]
    columns = st.columns(2 + len(controls.methods()))
    columns[0].image(support.draw_box(analysis.pixels, analysis.crop.box), caption="Original, crop box in green",
                     width="stretch")
    columns[1].image(analysis.crop.image, caption="Cropped brain (model input)", width="stretch")
    overlays = []
    for column, (label, method) in zip(columns[2:], controls.methods()):
        explanation = explanations.get(method)
        if explanation is None or isinstance(explanation, str):
            column.warning(explanation or "No explanation available.")
            continue
        overlay = explanation.overlay(alpha=controls.alpha, on="crop")
        column.image(overlay, caption=f"{label}: evidence for {target_label.lower()}", width="stretch")
        overlays.append(overlay)
    for column, (_, method) in zip(columns[2:], controls.methods()):  # after every image is on the page
        explanation = explanations.get(method)
        if explanation is not None and not isinstance(explanation, str):
            faithfulness_ui(column, classifier, analysis.digest, explanation)
    return overlays


def scan_ui(index: int, classifier, analysis, explanations: dict, controls: Controls) -> None:
    """One scan: probability and verdict, notes, the maps, downloads (PNG, JSON, PDF)."""
    with st.container(border=True, key=f"scan-{index}"):  # key: a stable CSS class for browser tests
        st.subheader(analysis.name)
        probability_ui(analysis)
        first = explanations.get(controls.method[1])
        first = first if not isinstance(first, str) else None
        for note in support.notes(analysis, first, controls.target[0]):
            st.info(note)
        overlays = maps_ui(classifier, analysis, explanations, controls)
        buttons = st.columns(3)
        if first is not None and overlays:
            buttons[0].download_button("Overlay (PNG)", support.png_bytes(overlays[0]),
                                       f"{_stem(analysis)}-overlay.png", "image/png", on_click="ignore",
                                       key=f"png-{index}")
        report = support.report(analysis, classifier.model_id, controls.method[1], controls.target[1])
        buttons[1].download_button("Report (JSON)", support.report_json(report), f"{_stem(analysis)}-report.json",
                                   "application/json", on_click="ignore", key=f"json-{index}")
        buttons[2].download_button("Report (PDF)", lambda: support.pdf_bytes(classifier, [(analysis, first)]),
                                   f"{_stem(analysis)}-report.pdf", "application/pdf", on_click="ignore",
                                   key=f"pdf-{index}")


def _series_analysis(classifier, series):
    store = _session_cache("_series", classifier.model_id)
    key = (series.key, tuple(f.name for f in series.files))
    return _computed(store, key, lambda: support.analyse_series(classifier, series),
                     f"Analysing {len(series.files)} slices of {series.label}…")


def strip_ui(analysis) -> None:
    """Every slice's probability in slice order, and the most suspicious slices first."""
    import pandas as pd

    read = analysis.read
    st.bar_chart(pd.DataFrame({"slice": [s.index for s in read], "tumour probability": [s.probability for s in read]}),
                 x="slice", y="tumour probability", height=180)
    top = [{"slice": s.index, "file": s.name, "tumour probability": round(s.probability, 4),
            "label": support.SHOWN[s.label(analysis.threshold)]} for s in analysis.most_suspicious()]
    st.caption("Most suspicious slices first:")
    st.dataframe(top, hide_index=True, width="stretch")


def series_ui(index: int, classifier, series, controls: Controls) -> None:
    """A DICOM series: the probability strip, what was not assessed, then a slider to step through slices."""
    analysis = _series_analysis(classifier, series)
    with st.container(border=True, key=f"series-{index}"):
        st.subheader(f"{series.label}{' · ' + series.description if series.description else ''}")
        if isinstance(analysis, Exception):
            log.warning("Series analysis failed: %s", type(analysis).__name__)
            st.error(f"{series.label}: {GENERIC_FAILURE}")
            return
        st.markdown(f"Ordered by {series.ordered_by}. {analysis.summary()}.")
        if analysis.read:
            strip_ui(analysis)
        edges = analysis.edges
        if edges:
            st.info(f"{analysis.edge_summary}.")
        for result in (s for s in analysis.slices if s.probability is None and s not in edges):
            st.warning(f"Slice {result.index} ({result.name}): {result.error}")
        if not analysis.read:
            return
        numbers = [s.index for s in analysis.read]
        chosen = st.select_slider("Slice", numbers, value=analysis.peak.index, key=f"slice-{index}")
        result = next(s for s in analysis.read if s.index == chosen)
        slice_analysis = support.slice_analysis(result)
        st.session_state.setdefault("_series_digests", set()).add(result.digest)
        explanations = {method: _explanation(classifier, st.session_state["_explanations"], slice_analysis,
                                             method, controls.target[1]) for _, method in controls.methods()}
        probability_ui(slice_analysis)
        maps_ui(classifier, slice_analysis, explanations, controls)
        st.download_button("Series report (PDF)", lambda: support.pdf_bytes(
            classifier, [(support.slice_analysis(s), None) for s in analysis.read], heading=analysis.summary(),
            notes=(analysis.edge_summary,)),
            f"{series.label.split(' ')[0].replace(':', '-')}-report.pdf", "application/pdf", on_click="ignore",
            key=f"series-pdf-{index}")


def results_ui(classifier, upload, controls: Controls) -> None:
    """Everything below the uploader: refused files, series, the table and each scan."""
    if upload.message:
        st.info(upload.message)
    for name, message in upload.failed:
        st.error(message if name in message else f"{name}: {message}")
    for index, series in enumerate(upload.series):
        series_ui(index, classifier, series, controls)
    shown = {(series.key, tuple(f.name for f in series.files)) for series in upload.series}
    store = _session_cache("_series", classifier.model_id)
    for key in set(store) - shown:
        del store[key]
    results = analyse_all(classifier, upload.singles, controls)
    if len(results) > 1:
        table_ui(classifier, results, controls.method[1])
    for index, (name, analysis, explanations) in enumerate(results):
        if isinstance(analysis, str):
            st.error(analysis)
            continue
        try:
            if analysis.refused:
                refused_ui(index, analysis, classifier.model_id)
            else:
                scan_ui(index, classifier, analysis, explanations, controls)
        except Exception as error:
            log.error("Drawing a result failed: %s", type(error).__name__)
            st.error(f"{name}: {GENERIC_FAILURE}")


def main() -> None:
    keep_keras_session()
    st.set_page_config(page_title="Brain MRI tumour detector", layout="wide")
    st.title("Brain MRI tumour detector")
    st.warning(support.DISCLAIMER)
    classifier = classifier_ui()
    if classifier is None:
        return
    model_ui(classifier)
    controls = controls_ui()
    uploads = upload_ui()
    if not uploads:
        st.session_state["_series_digests"] = set()
        st.info(f"Upload one or more brain MRI slices ({FORMATS}) to see the tumour probability "
                "and where the model looked.")
        return
    results_ui(classifier, support.sort_upload(uploads), controls)


main()
