"""Explain a prediction: Grad-CAM, Grad-CAM++ and Score-CAM heatmaps (tf-keras-vis), and overlays.

    explain(classifier, pixels, method="gradcam", target="tumour") -> Explanation

The scan goes through exactly the classifier's path (``crop_brain`` then
``to_model_input``); the map is computed on the model-input grid of one conv
layer (``conv5_block3_out`` by default), resized bilinearly to the crop and
placed into a scan-sized array at the crop box.

How the pitfalls are designed out:

- The explainer is built once per (classifier, layer, method) and cached on
  the classifier. It runs on a *clone* of the model: the classifier's model,
  its layers and weights are never touched.
- The explained layer is named explicitly and tf-keras-vis is told not to
  walk back to a "real" conv layer (``seek_penultimate_conv_layer=False``),
  so ResNet's residual sum ``conv5_block3_out`` is what gets explained.
- The score is the *logit* (the ``logit`` layer), negated for ``no_tumour``,
  never the sigmoid output: a prediction that rounds to 1.0 still has a
  gradient. For Grad-CAM++ (which weights by ``exp(score)``) the score is
  shifted by its own stop-gradient value, ``s - stop_gradient(s)``; that
  rescales the map by ``exp(-s)`` only, and keeps ``exp`` from overflowing.
- Speed: the clone is cut into a backbone (image -> layer output) and a head
  (layer output -> logit, probability), each a compiled TF graph. For the
  gradient methods the backbone runs once outside the gradient tape and
  tf-keras-vis differentiates the head with respect to the layer output
  (Grad-CAM needs nothing else). Eager Keras would take ~1 s per map here.
- Keras calls are not thread-safe: every call runs under the classifier's lock.

Score-CAM uses the "Faster Score-CAM" setting (the ``SCORECAM_MAX_N``
highest-variance channels). tf-keras-vis weighs Score-CAM masks by a softmax
over the model's outputs, which is constant for a single unit; the Score-CAM
model therefore outputs the two-class logits ``[0, logit]``, whose softmax is
``[1 - p, p]``: each mask is weighted by the probability of the target class.

TensorFlow, Keras and tf-keras-vis are imported on first use, so importing
``core`` stays light (and works under other Keras backends for training).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.crop import Crop, crop_brain
from core.model import LAST_CONV_LAYER, LOGIT_LAYER
from core.preprocess import to_model_input

METHODS = ("gradcam", "gradcam++", "scorecam")
TARGETS = ("tumour", "no_tumour")
OVERLAY_ON = ("scan", "crop")
#: Channels Score-CAM masks the input with (Faster Score-CAM; tf-keras-vis' ``max_N``).
SCORECAM_MAX_N = 10
#: A raw map is blank when its range (max - min) is at most this ...
BLANK_ABS_TOL = 1e-10
#: ... or at most this fraction of its peak |value| (a flat map localises nothing).
BLANK_REL_TOL = 1e-4
#: OpenCV's copy of matplotlib's perceptually uniform 'inferno' colormap.
COLORMAP = cv2.COLORMAP_INFERNO
_CACHE_ATTRIBUTE = "_explainers"


@dataclass(frozen=True, eq=False)
class Explanation:
    """A heatmap of the evidence for `target`, on the scan and on the crop.

    heatmap: float32 (H, W) in [0, 1], the scan's height and width; zero outside `crop.box`.
    crop_heatmap: float32 (h, w) in [0, 1], the crop's size; equals heatmap[y0:y1, x0:x1].
    probability: the classifier's tumour probability for this scan, in [0, 1].
    blank: True when the map carries no signal (flat, all zero or not finite);
        both heatmaps are then all zero.
    pixels: the scan, uint8 HxW or HxWx3. crop: its :class:`core.crop.Crop`.
    method, target, layer: how the map was made and what it is evidence for.
    """

    heatmap: np.ndarray
    crop_heatmap: np.ndarray
    probability: float
    blank: bool
    pixels: np.ndarray
    crop: Crop
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


def explain(
    classifier,
    pixels: np.ndarray,
    method: str = "gradcam",
    target: str = "tumour",
    layer: str | None = None,
) -> Explanation:
    """Explain the classifier's prediction for one scan.

    classifier: a :class:`core.model.Classifier` whose model has a linear
        ``logit`` layer (the model's output is a function of it).
    pixels: uint8 HxW or HxWx3 scan, [0, 255], any size.
    method: "gradcam", "gradcam++" or "scorecam".
    target: "tumour" or "no_tumour": what the map is evidence for.
    layer: the conv layer to explain; default the card's ``explain_layer``,
        else ``conv5_block3_out``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}. Received: target={target!r}")
    if layer is None:
        layer = classifier.card.get("explain_layer") or LAST_CONV_LAYER
    crop = crop_brain(pixels)
    model_input = to_model_input(crop.image, classifier.input_size)[None]
    explainer = _explainer(classifier, layer)
    with classifier._lock:
        cam, probability = explainer.run(model_input, method, target)
    blank = is_blank(cam)
    crop_heatmap = _to_crop(cam, crop, blank)
    heatmap = place_in_scan(crop_heatmap, crop.box, pixels.shape[:2])
    return Explanation(
        heatmap=heatmap,
        crop_heatmap=crop_heatmap,
        probability=probability,
        blank=blank,
        pixels=pixels,
        crop=crop,
        method=method,
        target=target,
        layer=layer,
    )


def is_blank(cam: np.ndarray) -> bool:
    """True when a raw map carries no signal.

    cam: float, any shape (values as the explainer produced them, before
    normalisation). Blank means: empty, any value not finite, or its range
    max - min is at most max(BLANK_ABS_TOL, BLANK_REL_TOL * max|cam|), i.e. the
    map is zero or flat, so normalising it would only draw noise.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.size == 0 or not np.all(np.isfinite(cam)):
        return True
    spread = float(cam.max() - cam.min())
    return spread <= max(BLANK_ABS_TOL, BLANK_REL_TOL * float(np.abs(cam).max()))


def _to_crop(cam: np.ndarray, crop: Crop, blank: bool) -> np.ndarray:
    """Raw map (h', w') on the model grid -> float32 (crop h, crop w) in [0, 1].

    Resized bilinearly (pixel centres aligned), then min-max normalised, so the
    strongest evidence is exactly 1 and the weakest in the crop 0. The model
    input is the crop stretched to a square, so the grid maps straight onto it.
    """
    height, width = crop.image.shape[:2]
    if blank:
        return np.zeros((height, width), dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    resized = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width)
    low, high = float(resized.min()), float(resized.max())
    scaled = (resized - low) / (high - low) if high > low else np.zeros_like(resized)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def place_in_scan(crop_map: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) map of the crop -> float32 `shape` (H, W) map, zero outside `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if crop_map.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"The map's shape {crop_map.shape} does not match the box {box}.")
    scan_map = np.zeros(shape, dtype=np.float32)
    scan_map[y0:y1, x0:x1] = crop_map
    return scan_map


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1, HxWx3 or HxWx4 -> uint8 HxWx3 RGB (a new array)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"Expected an HxW or HxWx3 image. Received: shape={image.shape}")


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (H, W, 3) RGB, 'inferno' colours (black-purple-red-yellow)."""
    levels = np.round(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAP), cv2.COLOR_BGR2RGB)


def blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """uint8 image (H, W[, 3]) + float heatmap (H, W) in [0, 1] -> uint8 (H, W, 3) RGB.

    Per-pixel opacity `alpha * heatmap`: where the map is 0 the image is unchanged.
    """
    if image.shape[:2] != heatmap.shape:
        raise ValueError(f"Image {image.shape[:2]} and heatmap {heatmap.shape} differ in size.")
    base = to_rgb(image).astype(np.float32)
    opacity = (alpha * np.clip(heatmap, 0.0, 1.0)).astype(np.float32)[:, :, None]
    mixed = base * (1.0 - opacity) + colourise(heatmap).astype(np.float32) * opacity
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


# --- Explainers: built once per classifier and layer, cached on the classifier ---------------


def _explainer(classifier, layer: str) -> "_Explainer":
    """The cached explainer of `classifier` for `layer`, built on first use (under its lock)."""
    with classifier._lock:
        cache = classifier.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
        if layer not in cache:
            cache[layer] = _Explainer(classifier.model, layer)
        return cache[layer]


def _check_layer(model, layer: str) -> None:
    names = [item.name for item in model.layers]
    if LOGIT_LAYER not in names:
        raise ValueError(
            f"explain needs a model with a linear '{LOGIT_LAYER}' layer to score on. "
            f"Received a model without one (layers end with {names[-3:]})."
        )
    if layer not in names:
        raise ValueError(f"The model has no layer named {layer!r}. Received: layer={layer!r}")
    shape = model.get_layer(layer).output.shape
    if len(shape) != 4:
        raise ValueError(
            f"The explained layer must output (batch, height, width, channels). "
            f"Received: layer={layer!r} with output shape {shape}"
        )
    if names.index(layer) >= names.index(LOGIT_LAYER):
        raise ValueError(f"The explained layer must come before '{LOGIT_LAYER}'. Received: layer={layer!r}")


class _Explainer:
    """tf-keras-vis explainers for one layer of one model, on a compiled clone of it."""

    def __init__(self, model, layer: str) -> None:
        _check_layer(model, layer)
        import keras
        import tensorflow as tf

        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        features = clone.get_layer(layer).output
        backbone = keras.Model(clone.inputs, features)
        head = keras.Model(features, [clone.get_layer(LOGIT_LAYER).output, clone.outputs[0]])
        self.layer = layer
        self.feature_shape = tuple(features.shape[1:])
        self.backbone = tf.function(
            lambda x: backbone(x, training=False),
            input_signature=[tf.TensorSpec((None, *clone.inputs[0].shape[1:]), tf.float32)],
        )
        self.head = tf.function(
            lambda f: head(f, training=False),
            input_signature=[tf.TensorSpec((None, *self.feature_shape), tf.float32)],
        )
        self._visualisers: dict[str, Any] = {}

    def run(self, model_input: np.ndarray, method: str, target: str) -> tuple[np.ndarray, float]:
        """float32 (1, size, size, 3) -> (raw map float32 (h', w'), tumour probability)."""
        import tensorflow as tf

        features = self.backbone(tf.constant(model_input))
        _, probability = self.head(features)
        kwargs = dict(penultimate_layer=self.layer, seek_penultimate_conv_layer=False,
                      expand_cam=False, normalize_cam=False)
        if method == "scorecam":
            max_n = min(SCORECAM_MAX_N, self.feature_shape[-1])
            cam = self._visualiser(method)(_category_score(target), model_input, max_N=max_n,
                                           batch_size=max_n, **kwargs)
        else:
            score = _logit_score(target, shifted=method == "gradcam++")
            cam = self._visualiser(method)(score, features, **kwargs)
        return np.asarray(cam, dtype=np.float32)[0], float(np.asarray(probability)[0, 0])

    def _visualiser(self, method: str):
        if method not in self._visualisers:
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.scorecam import Scorecam

            if method == "scorecam":
                self._visualisers[method] = Scorecam(self._image_model(), clone=False)
            else:
                visualiser = Gradcam if method == "gradcam" else GradcamPlusPlus
                self._visualisers[method] = visualiser(self._gradient_model(), clone=False)
        return self._visualisers[method]

    def _gradient_model(self):
        """features -> logit, with the features exposed as a layer named `self.layer`."""
        import keras

        inputs = keras.Input(self.feature_shape, name="features")
        exposed = keras.layers.Identity(name=self.layer)(inputs)
        logit = _graph_layer()(lambda f: self.head(f)[0], (1,), name=LOGIT_LAYER)(exposed)
        return keras.Model(inputs, logit, name="gradient_explainer")

    def _image_model(self):
        """image -> two-class logits [0, logit]; the layer output is named `self.layer`."""
        import keras
        import tensorflow as tf

        def two_class(features):
            logit = self.head(features)[0]
            return tf.concat([tf.zeros_like(logit), logit], axis=-1)

        inputs = keras.Input(self.backbone.input_signature[0].shape[1:], name="image")
        features = _graph_layer()(self.backbone, self.feature_shape, name=self.layer)(inputs)
        logits = _graph_layer()(two_class, (2,), name="two_class_logits")(features)
        return _batched_model_class()(inputs, logits, name="scorecam_explainer")


def _logit_score(target: str, shifted: bool):
    """Score on the logit (n, 1): +logit for tumour, -logit for no_tumour; optionally s - stop_gradient(s)."""
    import tensorflow as tf

    sign = 1.0 if target == "tumour" else -1.0

    def score(logit):
        value = sign * logit[:, 0]
        return value - tf.stop_gradient(value) if shifted else value

    return score


def _category_score(target: str):
    from tf_keras_vis.utils.scores import CategoricalScore

    return CategoricalScore(1 if target == "tumour" else 0)


@functools.cache
def _graph_layer():
    """A Keras layer that calls a compiled TF function (no weights of its own)."""
    import keras

    class GraphCall(keras.layers.Layer):
        def __init__(self, function, output_shape: tuple, **kwargs) -> None:
            super().__init__(**kwargs)
            self._function = function
            self._output_shape = tuple(output_shape)

        def call(self, inputs):
            return self._function(inputs)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *self._output_shape)

    return GraphCall


@functools.cache
def _batched_model_class():
    """A functional model whose `predict` calls it in batches, silently (Score-CAM calls predict)."""
    import keras

    class BatchedModel(keras.Model):
        def predict(self, x, batch_size=None, verbose=None, steps=None, callbacks=None):
            x = x[0] if isinstance(x, (list, tuple)) else x
            step = batch_size or 32
            return np.concatenate([np.asarray(self(x[i : i + step])) for i in range(0, len(x), step)])

    return BatchedModel
