"""Write a run's reports: JSON and CSV files and PNG plots, each atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from core.io.atomic import write_atomic


def write_json(path, payload) -> Path:
    return write_atomic(path, json.dumps(payload, indent=2) + "\n")


def write_history(path, history: list[dict]) -> Path:
    """One row per epoch: epoch, then every logged value."""
    keys = sorted({key for row in history for key in row if key != "epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch"] + keys)
    writer.writeheader()
    writer.writerows(history)
    return write_atomic(path, buffer.getvalue())


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return write_atomic(path, buffer.getvalue())


def plot_learning_curves(path, history: list[dict]) -> Path:
    """Loss, accuracy and AUC per epoch, training against validation."""
    plt = _figure()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [row["epoch"] for row in history]
    for axis, metric in zip(axes, ("loss", "accuracy", "auc")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, style, marker="o", label=("validation " if prefix else "training ") + metric)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    return _save(fig, path)


def plot_roc(path, curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]]) -> Path:
    """ROC curves, one per named set: {name: (labels, probs, auc)}."""
    from sklearn.metrics import roc_curve

    plt = _figure()
    fig, axis = plt.subplots(figsize=(5, 5))
    for name, (labels, probs, auc) in curves.items():
        if len(set(np.asarray(labels).tolist())) == 2:
            fpr, tpr, _ = roc_curve(labels, probs)
            axis.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f}, n={len(labels)})")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_confusion(path, name: str, result: dict) -> Path:
    """Confusion matrices at every threshold evaluated for one set."""
    plt = _figure()
    keys = [key for key in result if key.startswith("at_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6), squeeze=False)
    for axis, key in zip(axes[0], keys):
        c = result[key]["confusion"]
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(value), ha="center", va="center")
        axis.set_xticks([0, 1], ["no tumour", "tumour"])
        axis.set_yticks([0, 1], ["no tumour", "tumour"])
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(f"{name}, threshold {result[key]['threshold']:.3f}")
    return _save(fig, path)


def plot_reliability(path, results: dict[str, dict]) -> Path:
    """Observed tumour fraction against mean predicted probability, per set."""
    plt = _figure()
    fig, axis = plt.subplots(figsize=(5, 5))
    for name, result in results.items():
        r = result["reliability"]
        axis.plot(r["predicted"], r["observed"], marker="o", label=name)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed tumour fraction")
    axis.legend(fontsize=8)
    return _save(fig, path)


def safe_name(name: str) -> str:
    """A set name usable in a file name (``mos/Testing`` -> ``mos_Testing``)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def pyplot():
    """matplotlib.pyplot on the Agg backend (for plots drawn by other modules)."""
    return _figure()


def save_figure(fig, path) -> Path:
    """Write a matplotlib figure as PNG, atomically, and close it."""
    return _save(fig, path)
