"""The model card: one schema for what a trained model is, read and written by everyone.

`model_card.json` sits beside `model.keras`. This module is the only one that reads or writes that file
(`read_card`, `write_card`, `update_card`); the trainer writes it
(`train/card.py`), `core.load_classifier` validates it before the weights are
trusted, and the CLI and the app read their summaries from it. Known entries
are typed attributes; anything else a card carries (provenance notes,
published references, ...) is kept in `extra` and written back unchanged.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.imaging.normalise import NORMALISATIONS
from core.io.atomic import write_atomic
from core.model.calibration import Calibration
from core.recipe import INPUT_SIZE

CARD_FILE = "model_card.json"
MODEL_FILE = "model.keras"


class CardError(ValueError):
    """A model card that is not valid JSON or breaks the schema; the message names the entry."""


@dataclass(frozen=True)
class ModelCard:
    """A trained model's record. Value ranges: threshold in [0, 1]; weights_sha256 64 hex digits."""

    name: str
    weights_sha256: str = ""
    weights_file: str = MODEL_FILE
    threshold: float = 0.5
    threshold_method: str = ""
    input: dict = field(default_factory=dict)
    initialisation: str = ""
    data: Any = None
    metrics: dict = field(default_factory=dict)
    external_test: dict = field(default_factory=dict)
    test_including_training_copies: dict = field(default_factory=dict)
    intended_use: str = ""
    limitations: list = field(default_factory=list)
    explain_layer: str | None = None
    calibration: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return int(self.input.get("size", INPUT_SIZE))

    @property
    def model_id(self) -> str:
        """Card name plus the first 12 hex digits of the weights' hash."""
        return f"{self.name}@{self.weights_sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: typed entries (empty optional ones left out), then `extra`."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "extra" or (value in (None, {}, "") and item.name not in ("name", "threshold")):
                continue
            out[item.name] = value
        return {**out, **self.extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def with_entries(self, **entries: Any) -> "ModelCard":
        """A copy with entries replaced or added (unknown names go to `extra`)."""
        known = {item.name for item in fields(self)} - {"extra"}
        typed = {key: value for key, value in entries.items() if key in known}
        extra = {**self.extra, **{key: value for key, value in entries.items() if key not in known}}
        return _validated(replace(self, **typed, extra=extra), "the card", require_hash=False)

    @classmethod
    def from_dict(cls, entries: dict[str, Any], source: str = "the card", require_hash: bool = True) -> "ModelCard":
        """Build and validate a card from a dict; raises CardError naming `source` and the entry."""
        if not isinstance(entries, dict):
            raise CardError(f"{source} must be a JSON object. Received: {type(entries).__name__}")
        if "name" not in entries:
            raise CardError(f"{source} has no 'name' entry.")
        known = {item.name for item in fields(cls)} - {"extra"}
        card = cls(**{k: v for k, v in entries.items() if k in known},
                   extra={k: v for k, v in entries.items() if k not in known})
        return _validated(card, source, require_hash)

    @classmethod
    def from_json(cls, text: str, source: str = "the card", require_hash: bool = True) -> "ModelCard":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise CardError(f"{source} is not valid JSON ({error}).") from error
        return cls.from_dict(entries, source, require_hash)


_TYPES = {"name": str, "weights_file": str, "threshold_method": str, "input": dict, "initialisation": str,
          "metrics": dict, "external_test": dict, "test_including_training_copies": dict, "intended_use": str,
          "limitations": list, "weights_sha256": str, "calibration": dict}


def _validated(card: ModelCard, source: str, require_hash: bool) -> ModelCard:
    for name, kind in _TYPES.items():
        if not isinstance(getattr(card, name), kind):
            raise CardError(f"{source}: '{name}' must be a {kind.__name__}. "
                            f"Received: {type(getattr(card, name)).__name__}")
    threshold = card.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise CardError(f"{source}: 'threshold' must be a number in [0, 1]. Received: {threshold!r}")
    size = card.input.get("size", INPUT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 1024:
        raise CardError(f"{source}: 'input.size' must be an integer between 32 and 1024. Received: {size!r}")
    normalise = card.input.get("normalise", "none")
    if normalise not in NORMALISATIONS:
        raise CardError(f"{source}: 'input.normalise' must be one of {', '.join(NORMALISATIONS)}. "
                        f"Received: {normalise!r}. A model trained with another normalisation needs the code "
                        "that applies it at prediction time.")
    for section in ("external_test", "test_including_training_copies"):
        bad = [key for key, value in getattr(card, section).items() if not isinstance(value, dict)]
        if bad:
            raise CardError(f"{source}: every '{section}' entry must be an object; {bad} are not.")
    if card.calibration:
        try:
            Calibration.from_dict(card.calibration)
        except ValueError as error:
            raise CardError(f"{source}: {error}") from None
    digest = card.weights_sha256
    if require_hash and (len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)):
        raise CardError(f"{source} has no valid 'weights_sha256' entry (64 hex digits).")
    return card


def read_card(directory: str | os.PathLike) -> ModelCard:
    """The validated model card of a model directory; raises CardError (a ValueError) when it is broken."""
    path = Path(directory) / CARD_FILE
    return ModelCard.from_json(path.read_text(), source=f"The model card {path}")


def write_card(directory: str | os.PathLike, card: ModelCard) -> Path:
    """Write `card` as the directory's model_card.json, atomically (a reader never sees half a card)."""
    return write_atomic(Path(directory) / CARD_FILE, card.to_json())


def update_card(directory: str | os.PathLike, **entries: Any) -> ModelCard:
    """Read the directory's card, replace or add `entries` (the weights and their hash unchanged), write it back."""
    card = read_card(directory).with_entries(**entries)
    write_card(directory, card)
    return card


#: Entries of a card that no longer hold once part of its model is retrained. A new head invalidates the results
#: measured with the old one (threshold, metrics and calibration are rewritten by whoever writes the new card);
#: new backbone weights also invalidate what depends on the backbone's features (the tumour-type head) and the
#: record of how the old weights were trained.
STALE_AFTER = {
    "head": ("weights_sha256", "external_test", "test_including_training_copies", "explanations"),
    "backbone": ("weights_sha256", "external_test", "test_including_training_copies", "explanations", "threshold",
                 "threshold_method", "metrics", "calibration", "tumour_type", "head_refit", "training_runs",
                 "comparison", "leave_one_source_out", "command", "created", "seed", "data",
                 "data_preparation_command", "training_placement", "training_hardware", "transport"),
}


def carried_over(card: ModelCard, retrained: str) -> dict[str, Any]:
    """The card's entries (as in its JSON) that still hold for a model whose `retrained` part ('head' or
    'backbone') has new weights."""
    if retrained not in STALE_AFTER:
        raise ValueError(f"retrained must be one of {', '.join(STALE_AFTER)}. Received: {retrained!r}")
    return {key: value for key, value in card.to_dict().items() if key not in STALE_AFTER[retrained]}
