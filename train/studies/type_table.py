"""The tumour-type head's evidence table, recomputed from stored scores (scores.json of `train.studies.type_head`).

    type_tables(scores) -> dict;  markdown(tables, heads) -> str

scores: {"types": [...], "heads": {head: {"temperature", "uncertain_below"}}, "slices": [{"path", "folder",
"source", "type", "role", "plane" (only for slices whose plane was labelled by eye), head: [3 calibrated
probabilities] or absent}]}. Two heads:
`mos_only` (trained on MOS alone: tested on MOS's test groups and on every LGG tumour slice, a source it never
saw) and `shipped` (trained on MOS and LGG: tested on both sources' test groups).
"""

from __future__ import annotations

import numpy as np

from core.model.tumour_type import TYPES


def _rate(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if len(hits) else None


def type_metrics(probabilities: np.ndarray, types: np.ndarray, level: float) -> dict:
    """Counts and rates of one head on typed slices: confusion (rows true, columns predicted, argmax), recall
    per type, macro-F1, the share marked uncertain, and recall per type among the slices it names."""
    from sklearn.metrics import confusion_matrix, f1_score

    predicted = probabilities.argmax(axis=1)
    named = probabilities.max(axis=1) >= level
    labels = list(range(len(TYPES)))
    present = [t for t in labels if (types == t).any()]
    recall = {TYPES[t]: _rate(predicted[types == t] == t) for t in present}
    named_recall = {TYPES[t]: _rate(predicted[named & (types == t)] == t) for t in present}
    named_values = [v for v in named_recall.values() if v is not None]
    return {"n": int(len(types)), "counts": {TYPES[t]: int((types == t).sum()) for t in present},
            "confusion": confusion_matrix(types, predicted, labels=labels).tolist(),
            "recall": recall, "macro_f1": float(f1_score(types, predicted, labels=present, average="macro")),
            "uncertain": _rate(~named), "named_recall": named_recall,
            "named_macro_recall": float(np.mean(named_values)) if named_values else None}


def glioma_rates(probabilities: np.ndarray, level: float) -> dict:
    """On glioma-only slices: the share called glioma (argmax), the share marked uncertain, and the share
    called glioma among those given a type."""
    glioma = TYPES.index("glioma")
    predicted = probabilities.argmax(axis=1)
    named = probabilities.max(axis=1) >= level
    return {"n": int(len(predicted)), "glioma": _rate(predicted == glioma), "uncertain": _rate(~named),
            "named_glioma": _rate(predicted[named] == glioma)}


PLANES = ("axial", "coronal", "sagittal")


def _slices(scores: dict, head: str, **where) -> tuple[np.ndarray, np.ndarray]:
    rows = [s for s in scores["slices"] if head in s and all(where[k](s.get(k)) for k in where)]
    probabilities = np.array([s[head] for s in rows], np.float64).reshape(-1, len(TYPES))
    return probabilities, np.array([TYPES.index(s["type"]) for s in rows], np.int64)


def type_tables(scores: dict) -> dict:
    """Every figure of the evidence table (module docstring), from the stored scores alone."""
    levels = {name: head["uncertain_below"] for name, head in scores["heads"].items()}
    mos_test = {"source": lambda v: v == "mos", "role": lambda v: v == "test"}
    tables = {"mos_only": {"mos_test": type_metrics(*_slices(scores, "mos_only", **mos_test), levels["mos_only"]),
                           "mos_test_by_plane": {}, "lgg": {}}}
    for plane in PLANES:
        p, t = _slices(scores, "mos_only", **mos_test, plane=lambda v, plane=plane: v == plane)
        if len(t):
            tables["mos_only"]["mos_test_by_plane"][plane] = type_metrics(p, t, levels["mos_only"])
    folders = sorted({s["folder"] for s in scores["slices"] if s["source"] == "lgg"})
    for folder in ["all", *folders]:
        p, _ = _slices(scores, "mos_only", source=lambda v: v == "lgg",
                          folder=(lambda v: True) if folder == "all" else (lambda v, f=folder: v == f))
        tables["mos_only"]["lgg"][folder] = glioma_rates(p, levels["mos_only"])
    tables["shipped"] = {}
    for source in ["all", *sorted({s["source"] for s in scores["slices"]})]:
        p, t = _slices(scores, "shipped", role=lambda v: v == "test",
                          source=(lambda v: True) if source == "all" else (lambda v, s=source: v == s))
        tables["shipped"][source] = type_metrics(p, t, levels["shipped"])
    return tables


def _pct(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _metrics_row(name: str, m: dict) -> str:
    recalls = " | ".join(_pct(m["recall"].get(t)) for t in TYPES)
    named = " | ".join(_pct(m["named_recall"].get(t)) for t in TYPES)
    return f"| {name} | {m['n']} | {_pct(m['macro_f1'])} | {recalls} | {_pct(m['uncertain'])} | {named} |"


def markdown(tables: dict, heads: dict) -> str:
    """The tables as Markdown, for results.md and the README."""
    types = " | ".join(f"recall {t}" for t in TYPES)
    named = " | ".join(f"named: {t}" for t in TYPES)
    lines = ["#### MOS alone -> MOS test groups (copies of training slices are in the same group)", "",
             f"Level for a type: {heads['mos_only']['uncertain_below']:.2f}; temperature "
             f"{heads['mos_only']['temperature']:.2f}.", "",
             f"| slices | n | macro-F1 | {types} | uncertain | {named} |", "|---" * (4 + 2 * len(TYPES)) + "|"]
    lines.append(_metrics_row("all", tables["mos_only"]["mos_test"]))
    lines += [_metrics_row(f"{plane} (plane labelled by eye)", m)
              for plane, m in tables["mos_only"]["mos_test_by_plane"].items()]
    matrix = tables["mos_only"]["mos_test"]["confusion"]
    lines += ["", "Confusion on the MOS test groups (rows: true type, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(TYPES) + " |", "|---" * (1 + len(TYPES)) + "|"]
    lines += [f"| {TYPES[i]} | " + " | ".join(str(c) for c in row) + " |" for i, row in enumerate(matrix)]
    lines += ["", "#### MOS alone -> every LGG tumour slice (all gliomas; a source the head never saw)", "",
              "| sequence | n | called glioma | uncertain | glioma among named |", "|---|---|---|---|---|"]
    lines += [f"| {folder} | {m['n']} | {_pct(m['glioma'])} | {_pct(m['uncertain'])} | {_pct(m['named_glioma'])} |"
              for folder, m in tables["mos_only"]["lgg"].items()]
    lines += ["", "#### The shipped head (MOS and LGG) -> test groups of both", "",
              f"Level for a type: {heads['shipped']['uncertain_below']:.2f}; temperature "
              f"{heads['shipped']['temperature']:.2f}.", "",
              f"| source | n | macro-F1 | {types} | uncertain | {named} |", "|---" * (4 + 2 * len(TYPES)) + "|"]
    lines += [_metrics_row(source, m) for source, m in tables["shipped"].items()]
    return "\n".join(lines) + "\n"
