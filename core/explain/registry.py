"""The table of explanation methods. Adding one = a module defining `METHOD` + one line here.

The app's method picker and the command line's `--method` choices are read
from this table at run time, so nothing else needs editing.
"""

from __future__ import annotations

from core.explain.base import Method
from core.explain.methods import gradcam, gradcam_plus_plus, hirescam, layercam, occlusion, scorecam

METHODS: dict[str, Method] = {}
#: What the app shows first and `explain()` / `--method` use unless told otherwise: the method with the best
#: localisation and faithfulness for the shipped model in `python -m core explain-eval` (the card's
#: `explanations`; README, "How far to trust the maps").
DEFAULT_METHOD = "hirescam"


def register(method: Method) -> Method:
    """Add (or replace) a method in the table; returns it."""
    if not isinstance(method, Method):
        raise TypeError(f"Expected a core.explain.Method. Received: {type(method).__name__}")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method called `name`; ValueError naming the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method must be one of {tuple(METHODS)}. Received: method={name!r}") from None


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def method_labels() -> dict[str, str]:
    """{label people read: method name}, in table order ("Grad-CAM" -> "gradcam")."""
    return {method.label: method.name for method in METHODS.values()}


register(gradcam.METHOD)
register(gradcam_plus_plus.METHOD)
register(scorecam.METHOD)
register(hirescam.METHOD)
register(layercam.METHOD)
register(occlusion.METHOD)
