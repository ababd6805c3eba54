"""Explain a prediction: heatmaps of where the model found evidence, and overlays.

    explain(classifier, scan, method=DEFAULT_METHOD ("hirescam"), target="tumour") -> Explanation

`scan` is a :class:`core.imaging.pipeline.PreparedScan` (or pixels, prepared here), so
the map is computed on exactly the classifier's input, then resized to the
crop and placed into a scan-sized array at the crop box. Methods live one per
module and are listed in :mod:`core.explain.registry`; the machinery they
share (a compiled backbone/head split of a clone of the model, cached per
layer, with its own lock) is :mod:`core.explain.base`. TensorFlow, Keras and
tf-keras-vis are imported on first use, so importing `core` stays light.
"""

from core.explain.base import Explainer, Method, explainer_for
from core.explain.drawing import blend, colourise
from core.explain.explanation import OVERLAY_ON, Explanation, explain
from core.explain.maps import is_blank, place_in_scan
from core.explain.registry import DEFAULT_METHOD, METHODS, get_method, method_labels, method_names, register
from core.imaging.pixels import to_rgb
from core.model.labels import LABELS as TARGETS

__all__ = ["DEFAULT_METHOD", "METHODS", "OVERLAY_ON", "TARGETS", "Explainer", "Explanation", "Method", "blend",
           "colourise", "explain", "explainer_for", "get_method", "is_blank", "method_labels", "method_names",
           "place_in_scan", "register", "to_rgb"]
