"""`explain()`: one call for every method, and the :class:`Explanation` it returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.explain.base import explainer_for
from core.explain.drawing import blend
from core.explain.maps import is_blank, place_in_scan, to_crop
from core.explain.registry import DEFAULT_METHOD, get_method
from core.imaging.pipeline import OfScan, PreparedScan, as_prepared
from core.model.classifier import LAST_CONV_LAYER
from core.model.labels import LABELS

OVERLAY_ON = ("scan", "crop")


@dataclass(frozen=True, eq=False)
class Explanation(OfScan):
    """A heatmap of the evidence for `target`, on the scan and on the crop.

    heatmap: float32 (H, W) in [0, 1], the scan's height and width; zero outside `crop.box`.
    crop_heatmap: float32 (h, w) in [0, 1], the crop's size; equals heatmap[y0:y1, x0:x1].
    raw: float32 (h', w'), the method's map on the layer's grid, before resizing and normalising.
    probability: the classifier's tumour probability for this scan, in [0, 1].
    blank: True when the map carries no signal (flat, all zero or not finite);
        both heatmaps are then all zero.
    scan: the :class:`core.imaging.pipeline.PreparedScan` explained (pixels, crop, model input).
    method, target, layer: how the map was made and what it is evidence for.
    """

    heatmap: np.ndarray
    crop_heatmap: np.ndarray
    raw: np.ndarray
    probability: float
    blank: bool
    scan: PreparedScan
    method: str
    target: str
    layer: str

    def overlay(self, alpha: float = 0.4, on: str = "scan") -> np.ndarray:
        """The map drawn over the scan (`on="scan"`) or the crop (`on="crop"`).

        Returns uint8 (H, W, 3) RGB. Each pixel is blended with the 'inferno'
        colour of its map value at opacity `alpha * value`: zero evidence
        (everything outside the crop, and every pixel of a blank map) leaves
        the image unchanged; the strongest evidence is bright yellow at
        opacity `alpha`.
        """
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1]. Received: alpha={alpha!r}")
        if on not in OVERLAY_ON:
            raise ValueError(f"on must be one of {OVERLAY_ON}. Received: on={on!r}")
        if on == "scan":
            return blend(self.pixels, self.heatmap, alpha)
        return blend(self.crop.image, self.crop_heatmap, alpha)


def explain(classifier, scan: PreparedScan | np.ndarray, method: str = DEFAULT_METHOD, target: str = "tumour",
            layer: str | None = None) -> Explanation:
    """Explain the classifier's prediction for one scan.

    classifier: a :class:`core.model.classifier.Classifier` whose model has a linear ``logit`` layer.
    scan: a :class:`core.imaging.pipeline.PreparedScan` (not cropped again), or uint8 HxW / HxWx3 pixels.
    method: a name from `core.explain.METHODS` ("gradcam", "gradcam++", "scorecam", ...).
    target: "tumour" or "no_tumour": what the map is evidence for.
    layer: the conv layer to explain; default the card's ``explain_layer``, else ``conv5_block3_out``.
    """
    chosen = get_method(method)
    if target not in LABELS:
        raise ValueError(f"target must be one of {LABELS}. Received: target={target!r}")
    layer = layer or classifier.card.explain_layer or LAST_CONV_LAYER
    prepared = as_prepared(scan, classifier.input_size)
    cam, probability = explainer_for(classifier, layer).run(classifier.inputs_of(prepared.grey)[None], chosen, target)
    blank = is_blank(cam)
    crop_heatmap = to_crop(cam, prepared.crop.image.shape[:2], blank)
    return Explanation(
        heatmap=place_in_scan(crop_heatmap, prepared.crop.box, prepared.pixels.shape[:2]),
        crop_heatmap=crop_heatmap, raw=cam, probability=probability, blank=blank, scan=prepared,
        method=method, target=target, layer=layer,
    )
