"""Which tumour: glioma, meningioma or pituitary, from the backbone's pooled features, with "type uncertain".

The type head is a second small Keras model beside the binary one (`type_head.keras` in the model directory,
trained by `brain-mri type-head`): float32 (n, 2048) pooled features of the binary model's backbone ->
(n, 3) logits, in TYPES order. The card's `tumour_type` entry holds its file, SHA-256, temperature and the
level below which the top type is not named:

    probabilities = softmax(logits / temperature); uncertain when max(probabilities) < uncertain_below.

The type is shown only for scans the binary output calls tumour; the binary output, its threshold and its
calibration do not depend on this head.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

#: The types, in the head's output order (MOS's class folder names).
TYPES = ("glioma", "meningioma", "pituitary")
#: The card entry that describes the type head.
CARD_ENTRY = "tumour_type"
#: A name for the layer whose output the head reads (the binary model's pooled features).
FEATURE_LAYER = "max_pool"


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float (n, k) logits -> float64 (n, k) probabilities of softmax(logits / temperature), rows sum to 1."""
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class TypeCall:
    """One scan's type: probabilities (glioma, meningioma, pituitary) in [0, 1] summing to 1; `type` the
    most probable one, or None when its probability is below the head's level (type uncertain)."""

    probabilities: tuple[float, float, float]
    type: str | None

    @property
    def uncertain(self) -> bool:
        return self.type is None

    def ranked(self) -> list[tuple[str, float]]:
        """[(type, probability)] from the most to the least probable."""
        return sorted(zip(TYPES, self.probabilities), key=lambda item: -item[1])

    def describe(self) -> str:
        """'Type: meningioma 71% · glioma 22% · pituitary 7%', or 'Type uncertain (meningioma 45% · ...)'."""
        listed = " · ".join(f"{name} {p:.0%}" for name, p in self.ranked())
        return f"Type uncertain ({listed})" if self.uncertain else f"Type: {listed}"


def describe_type(call: TypeCall | None) -> str:
    """A type call's text for people, or "" when there is none (no type head, or not called tumour)."""
    return "" if call is None else call.describe()


def call_types(probabilities: np.ndarray, uncertain_below: float) -> list[TypeCall]:
    """float (n, 3) probabilities -> one TypeCall each; the top type is named when it reaches the level."""
    calls = []
    for row in np.asarray(probabilities, dtype=np.float64):
        top = int(np.argmax(row))
        named = TYPES[top] if row[top] >= uncertain_below else None
        calls.append(TypeCall(tuple(float(p) for p in row), named))
    return calls


@dataclass
class TypeHead:
    """A loaded type head. model: Keras, float32 (n, 2048) -> (n, 3) logits; temperature > 0;
    uncertain_below in [1/3, 1]. Inference is serialised by a lock, as the classifier's is (one cached head
    serves every app session)."""

    model: Any
    temperature: float
    uncertain_below: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """float32 (n, 2048) pooled features -> float64 (n, 3) calibrated type probabilities."""
        features = np.asarray(features, dtype=np.float32)
        if len(features) == 0:
            return np.zeros((0, len(TYPES)))
        with self.lock:
            logits = np.asarray(self.model.predict_on_batch(features))
        return softmax(logits, self.temperature)

    def calls(self, features: np.ndarray) -> list[TypeCall]:
        return call_types(self.probabilities(features), self.uncertain_below)


def check_entry(entry: Any, source: str) -> dict:
    """The card's tumour_type entry, validated; raises ValueError naming what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{source}: '{CARD_ENTRY}' must be an object. Received: {type(entry).__name__}")
    missing = [key for key in ("file", "sha256", "temperature", "uncertain_below", "classes") if key not in entry]
    if missing:
        raise ValueError(f"{source}: '{CARD_ENTRY}' lacks {', '.join(missing)}.")
    if list(entry["classes"]) != list(TYPES):
        raise ValueError(f"{source}: '{CARD_ENTRY}.classes' must be {list(TYPES)}. Received: {entry['classes']}")
    if not float(entry["temperature"]) > 0 or not 0 < float(entry["uncertain_below"]) <= 1:
        raise ValueError(f"{source}: '{CARD_ENTRY}' needs temperature > 0 and uncertain_below in (0, 1]. "
                         f"Received: {entry['temperature']}, {entry['uncertain_below']}")
    if Path(str(entry["file"])).name != str(entry["file"]):
        raise ValueError(f"{source}: '{CARD_ENTRY}.file' must be a file name in the model directory. "
                         f"Received: {entry['file']!r}")
    return dict(entry)


def load_type_head(directory: Path, entry: Any) -> TypeHead:
    """The type head a card's tumour_type entry names, its SHA-256 checked; ValueError when it is broken."""
    import keras

    from core.io.atomic import sha256_of

    entry = check_entry(entry, f"The model card in {directory}")
    path = Path(directory) / entry["file"]
    if not path.is_file():
        raise ValueError(f"The model card names a type head {path} that does not exist. Restore it from the "
                         f"repository, or retrain it with `brain-mri type-head`.")
    if sha256_of(path) != entry["sha256"]:
        raise ValueError(f"The type head {path} does not match its model card (SHA-256). The file is corrupt or "
                         "was replaced: restore it from the repository or retrain it.")
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return TypeHead(model, float(entry["temperature"]), float(entry["uncertain_below"]))
