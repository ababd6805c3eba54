"""The model card in a few readable lines: what the app's model panel and the PDF reports show.

Cards written by `python -m train` are summarised (training counts, external test
results with their intervals), cards written by `brain-mri refit` by their
leave-one-source-out rows and held-out test; other cards' `data` and `metrics`
entries are shown as given.
"""

from __future__ import annotations

import math
from typing import Any

from core.model.calibration import Calibration
from core.model.card import ModelCard


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    return str(value)


def describe(value: Any) -> str:
    """A card entry (number, text, list, nested dict) as one readable line."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if _is_interval_key(key):
                continue
            text = f"{key} {describe(item)}"
            interval = _interval_for(key, value)
            if interval is not None:
                text += f" (95% CI {_number(interval[0])}–{_number(interval[1])})"
            parts.append(text)
        return "; ".join(parts)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{_number(value[0])}–{_number(value[1])}"
        return ", ".join(describe(item) for item in value)
    return _number(value)


def _is_interval_key(key: str) -> bool:
    key = str(key).lower()
    return key.endswith(("_ci", "_ci95", "_interval")) or key in ("ci", "ci95", "interval")


def _interval_for(key: str, siblings: dict) -> Any:
    for suffix in ("_ci", "_ci95", "_interval"):
        found = siblings.get(f"{key}{suffix}")
        if isinstance(found, (list, tuple)) and len(found) == 2:
            return found
    return None


def _training_data(card: ModelCard) -> str:
    """'train: data/br35h 1348 tumour / 1347 no tumour; val: ...' from a trainer-written card; 'train: 10143 scans;
    val: 728 scans; sources: br35h, lgg, mos' from a fine-tuned model's card (counts per split only)."""
    data = card.data if isinstance(card.data, dict) else {}
    counts = data.get("counts_after_deduplication")
    parts = []
    for split, sources in (counts.items() if isinstance(counts, dict) else ()):
        for source, n in (sources.items() if isinstance(sources, dict) else ()):
            if not isinstance(n, dict):
                continue
            parts.append(f"{split}: {source} {n.get('tumour', 0)} tumour / {n.get('no_tumour', 0)} no tumour")
    if not parts and isinstance(data.get("counts"), dict):
        parts = [f"{split}: {n} scans" for split, n in data["counts"].items()
                 if split in ("train", "val", "test") and isinstance(n, int)]
        if parts and isinstance(data.get("sources"), list):
            parts.append(f"sources: {', '.join(map(str, data['sources']))}")
    if card.initialisation:
        parts.append(f"initialisation: {card.initialisation}")
    return "; ".join(parts)


def _external_result(source: str, result: dict[str, Any]) -> str:
    """One phrase for one external test source: AUC with its interval, balanced accuracy, size."""
    if result.get("auc") is None:
        return f"{source}: AUC not defined ({result.get('scans', 0)} scans of one class)"
    low, high = result.get("auc_ci95") or (float("nan"), float("nan"))
    at = result.get("at_card", {})
    removed = result.get("duplicates_removed") or {}
    text = (f"{source}: AUC {_number(result['auc'])} (95% CI {_number(low)}–{_number(high)}), "
            f"balanced accuracy {_number(at.get('balanced_accuracy'))} at the threshold, "
            f"{result.get('scans')} scans ({result.get('no_tumour')} without tumour)")
    if removed:
        text += f", after removing {removed.get('exact', 0) + removed.get('near', 0)} copies of training scans"
    return text


def _unseen_and_held_out(card: ModelCard) -> str:
    """A head refit card's leave-one-source-out rows, then its in-distribution test per source ('' if none)."""
    loso = card.extra.get("leave_one_source_out")
    rows = loso.get("rows") if isinstance(loso, dict) else None
    test = card.metrics.get("test")
    parts = []
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, dict) and row.get("auc") is not None:
            parts.append(f"{row.get('held_out')}: AUC {_number(row['auc'])} (95% CI {_number(row.get('auc_low'))}–"
                         f"{_number(row.get('auc_high'))}), balanced accuracy {_number(row.get('balanced_accuracy'))}")
    text = f"a source left out of training (leave-one-source-out): {'; '.join(parts)}" if parts else ""
    if isinstance(test, dict) and all(isinstance(result, dict) for result in test.values()):
        held = "; ".join(_external_result(source, result) for source, result in test.items())
        text += (". " if text else "") + f"held-out scans of its training sources: {held}"
    return text


def unseen_sources(card: ModelCard) -> str:
    """One line: the AUC on each source left out of training. A head refit card's leave-one-source-out rows
    ("AUC on each source left out of its training: mos 0.687 · lgg 0.783", with the card's caveat when it has
    one) or a trainer card's external tests ("AUC on a source it never saw: ..."); '' when it has neither."""
    loso = card.extra.get("leave_one_source_out")
    rows = loso.get("rows") if isinstance(loso, dict) else None
    if isinstance(rows, list):
        pairs = [(row.get("held_out"), row.get("auc")) for row in rows if isinstance(row, dict)]
        caveat = loso.get("caveat")
        lead, tail = "AUC on each source left out of its training", f" ({caveat})" if isinstance(caveat, str) else ""
    else:
        pairs = [(source, result.get("auc")) for source, result in card.external_test.items()
                 if isinstance(result, dict)]
        lead, tail = "AUC on a source it never saw", ""
    shown = [f"{name} {_number(auc)}" for name, auc in pairs if isinstance(auc, (int, float))]
    return f"{lead}: {' · '.join(shown)}{tail}" if shown else ""


def _threshold(card: ModelCard) -> str:
    """The decision threshold on the scale the results are shown in: calibrated when the card has a calibration."""
    raw = float(card.threshold)
    if not card.calibration:
        return _number(raw)
    calibrated = float(Calibration.from_dict(card.calibration)([raw])[0])
    return f"{_number(calibrated)} on the calibrated probability ({_number(raw)} on the raw network output)"


def card_summary(card: ModelCard) -> dict[str, str]:
    """What the page always shows about the model, taken from its (validated) model card.

    Cards written by `python -m train` are summarised (training counts, external test
    results); other cards' `data` and `metrics` entries are shown as given.
    """
    data = _training_data(card) or describe(card.data if card.data is not None else "not stated in the model card")
    external = "; ".join(_external_result(source, result) for source, result in card.external_test.items())
    external = external or _unseen_and_held_out(card)
    return {
        "name": card.name,
        "data": data,
        "metrics": external or describe(card.metrics or "not stated in the model card"),
        "threshold": _threshold(card),
        "unseen_sources": unseen_sources(card),
        "limitations": "\n".join(f"- {describe(item)}" for item in card.limitations),
        "weights_sha256": card.weights_sha256 or "unknown",
    }


#: Columns of results_table, in order, and what a reader needs to know to read them.
RESULT_COLUMNS = ("test set", "scans (no tumour)", "AUC [95% CI]", "balanced accuracy")
RESULTS_NOTE = ("Balanced accuracy at the model's threshold; for a source left out of training, at that run's own "
                "threshold. A source left out of training is the best guess of how the model does on a user's scans.")


def _result_row(name: str, scans: Any, no_tumour: Any, auc: Any, interval: Any, balanced: Any) -> dict[str, str]:
    low, high = interval if isinstance(interval, (list, tuple)) and len(interval) == 2 else (None, None)
    shown = "not defined (one class)" if auc is None else (
        f"{_number(auc)} [{_number(low)}, {_number(high)}]" if low is not None else _number(auc))
    return dict(zip(RESULT_COLUMNS, (name, f"{scans} ({no_tumour})" if scans is not None else "", shown,
                                     "" if balanced is None else _number(balanced))))


def results_table(card: ModelCard) -> list[dict[str, str]]:
    """The card's test results as rows of RESULT_COLUMNS (strings): sources never seen (a trainer card's external
    tests), sources left out of training (a head refit's leave-one-source-out rows), then held-out scans of the
    training sources (balanced accuracy at the card's threshold). [] when the card has none of these."""
    rows = [_result_row(f"{source} (never seen)", result.get("scans"), result.get("no_tumour"), result.get("auc"),
                        result.get("auc_ci95"), result.get("at_card", {}).get("balanced_accuracy"))
            for source, result in card.external_test.items() if isinstance(result, dict)]
    loso = card.extra.get("leave_one_source_out")
    for row in (loso.get("rows") or ()) if isinstance(loso, dict) else ():
        if isinstance(row, dict):
            scans = (row.get("tumour") or 0) + (row.get("no_tumour") or 0)
            rows.append(_result_row(f"{row.get('held_out')} (left out of training)", scans, row.get("no_tumour"),
                                    row.get("auc"), (row.get("auc_low"), row.get("auc_high")),
                                    row.get("balanced_accuracy")))
    test = card.metrics.get("test")
    if isinstance(test, dict) and all(isinstance(result, dict) for result in test.values()):
        rows += [_result_row(f"{source} (held-out scans)", result.get("scans"), result.get("no_tumour"),
                             result.get("auc"), result.get("auc_ci95"),
                             result.get("at_card", {}).get("balanced_accuracy"))
                 for source, result in test.items()]
    return rows
