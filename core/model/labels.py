"""The two classes, spelled once: ``tumour`` / ``no_tumour`` in data, "Tumour" / "No tumour" on screen."""

from __future__ import annotations

TUMOUR = "tumour"
NO_TUMOUR = "no_tumour"
#: Every label, in data spelling; the order of explanation targets.
LABELS = (TUMOUR, NO_TUMOUR)
#: Data spelling -> what a person reads.
DISPLAY = {TUMOUR: "Tumour", NO_TUMOUR: "No tumour"}


def label_for(probability: float, threshold: float) -> str:
    """'tumour' when the tumour probability is at or above the threshold, else 'no_tumour'."""
    return TUMOUR if probability >= threshold else NO_TUMOUR


def display(label: str) -> str:
    """'tumour' -> 'Tumour', 'no_tumour' -> 'No tumour'."""
    try:
        return DISPLAY[label]
    except KeyError:
        raise ValueError(f"label must be one of {LABELS}. Received: label={label!r}") from None
