"""The model card: what a trained model is, what it saw and how well it did."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from core.model import CARD_FILE, read_card
from train.report import write_json

INTENDED_USE = (
    "Research and teaching demo for 2D brain MRI slices (tumour / no tumour). "
    "Not a medical device; not for diagnosis or any clinical decision."
)
PACKAGES = ("keras", "tensorflow-cpu", "tensorflow", "jax", "numpy", "opencv-python-headless", "scikit-learn")


def versions() -> dict:
    """Python, backend and package versions of this process."""
    import keras

    found = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def build_card(name: str, settings: dict, data_report: dict, threshold: float, threshold_method: str,
               metrics: dict, placement: str) -> dict:
    """A model card for a finished run (the weights' hash is added when it is saved)."""
    imagenet = settings["weights"] == "imagenet"
    return {
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": "binary: tumour (1) / no tumour (0) on a 2D brain MRI slice",
        "architecture": "ResNet50 + GlobalMaxPooling2D, Dense 512 relu, BatchNorm, Dropout 0.5, Dense 1 sigmoid",
        "input": {"size": settings["image_size"], "channels": "grey repeated to 3",
                  "preprocessing": "crop_brain -> prepare_crop -> ResNet50 caffe normalisation"},
        "initialisation": ("ImageNet (Keras download)" if imagenet else
                           "random (no ImageNet weights)" if settings["weights"] in (None, "none") else
                           f"weights file {Path(str(settings['weights'])).name}"),
        "command": " ".join(["python -m train"] + sys.argv[1:]),
        "seed": settings["seed"],
        "recipe": {key: value for key, value in settings.items() if key not in ("seed", "data")},
        "data_options": settings.get("data"),
        "training_placement": placement,
        "versions": versions(),
        "data": {
            "counts_after_deduplication": data_report.get("counts", {}),
            "validation": data_report.get("validation"),
            "duplicates_removed": {role: {k: v for k, v in info.items() if k != "pairs"}
                                   for role, info in data_report.get("duplicates", {}).items()},
            "near_duplicate_rule": f"{data_report.get('hash')} Hamming <= {data_report.get('near_threshold')}",
            "unreadable_skipped": len(data_report.get("unreadable", [])),
            "crops_fell_back": data_report.get("fell_back"),
            "bundle_encoding": data_report.get("bundle_encoding", "raw"),
        },
        "threshold": threshold,
        "threshold_method": threshold_method,
        "metrics": metrics,
        "intended_use": INTENDED_USE,
        "limitations": [],
    }


def record_external_results(model_dir, outcome: dict) -> Path:
    """Store an evaluation (from train.evaluate) in the model card; the weights are untouched.

    With duplicates of the training data excluded it becomes `external_test`; without, it
    goes to `test_including_training_copies`, so leaky numbers never pass for external ones.
    """
    card = read_card(model_dir)
    # Numbers on sets that may hold copies of the training data are kept apart from the external test.
    key = "external_test" if outcome["excluded_duplicates_of"] else "test_including_training_copies"
    card.setdefault(key, {})
    for name, result in outcome["results"].items():
        card[key][name] = {
            "data": outcome["data"],
            "excluded_duplicates_of": outcome["excluded_duplicates_of"],
            "duplicates_removed": outcome["report"]["duplicates"].get(name, {}),
            **{k: v for k, v in result.items() if k != "reliability"},
        }
    return write_json(Path(model_dir) / CARD_FILE, card)


def load_json(path) -> dict:
    return json.loads(Path(path).read_text())
