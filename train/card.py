"""The model card: what a trained model is, what it saw and how well it did."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from core.model.card import ModelCard, read_card, write_card
from train.options import command_line
from train.settings import RunSettings

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


#: The card's name for each backbone (core.recipe.BACKBONES).
ARCHITECTURES = {"resnet50": "ResNet50", "small": "small CNN (5 conv stages, a smoke-test model, not for results)"}


def _initialisation(settings: RunSettings) -> str:
    if settings.optimisation.weights == "imagenet":
        return "ImageNet (Keras download)"
    if not settings.pretrained:
        return "random (no ImageNet weights)"
    return f"weights file {Path(str(settings.optimisation.weights)).name}"


def _data_entry(data_report: dict) -> dict:
    return {
        "counts_after_deduplication": data_report.get("counts", {}),
        "validation": data_report.get("validation"),
        "duplicates_removed": {role: {k: v for k, v in info.items() if k != "pairs"}
                               for role, info in data_report.get("duplicates", {}).items()},
        "near_duplicate_rule": f"{data_report.get('hash')} Hamming <= {data_report.get('near_threshold')}",
        "unreadable_skipped": len(data_report.get("unreadable", [])),
        "crops_fell_back": data_report.get("fell_back"),
        "bundle_encoding": data_report.get("bundle_encoding", "raw"),
    }


def build_card(name: str, settings: RunSettings, data_report: dict, threshold: float, threshold_method: str,
               metrics: dict, placement: str, command: str | None = None) -> ModelCard:
    """A model card for a finished run (the weights' hash is added when it is saved).

    command: the command that trained it; default `python -m train` with this process's arguments.
    """
    return ModelCard.from_dict({
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": "binary: tumour (1) / no tumour (0) on a 2D brain MRI slice",
        "architecture": f"{ARCHITECTURES[settings.backbone]} + GlobalMaxPooling2D, Dense 512 relu, BatchNorm, "
                        "Dropout 0.5, Dense 1 sigmoid",
        "input": {"size": settings.image_size, "channels": "grey repeated to 3", "normalise": settings.normalise,
                  "preprocessing": "crop_brain -> prepare_crop -> "
                                   f"{'' if settings.normalise == 'none' else 'normalise_brain -> '}"
                                   "ResNet50 caffe normalisation"},
        "initialisation": _initialisation(settings),
        "command": command or command_line("train", prog="python -m train"),
        "seed": settings.seed,
        "recipe": settings.recipe(),
        "data_options": settings.data,
        "training_placement": placement,
        "versions": versions(),
        "data": _data_entry(data_report),
        "threshold": threshold,
        "threshold_method": threshold_method,
        "metrics": metrics,
        "intended_use": INTENDED_USE,
        "limitations": [],
    }, require_hash=False)


def record_external_results(model_dir, outcome: dict) -> Path:
    """Store an evaluation (from train.evaluate) in the model card; the weights are untouched.

    With duplicates of the training data excluded it becomes `external_test`; without, it
    goes to `test_including_training_copies`, so leaky numbers never pass for external ones.
    """
    card = read_card(model_dir)
    # Numbers on sets that may hold copies of the training data are kept apart from the external test.
    key = "external_test" if outcome["excluded_duplicates_of"] else "test_including_training_copies"
    section = dict(getattr(card, key))
    for name, result in outcome["results"].items():
        section[name] = {
            "data": outcome["data"],
            "excluded_duplicates_of": outcome["excluded_duplicates_of"],
            "duplicates_removed": outcome["report"]["duplicates"].get(name, {}),
            **{k: v for k, v in result.items() if k != "reliability"},
        }
    return write_card(model_dir, card.with_entries(**{key: section}))
