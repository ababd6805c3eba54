"""The machinery every explanation method shares: one compiled split of the model, built once.

An :class:`Explainer` runs on a *clone* of the classifier's model (the
classifier's layers and weights are never touched), cut at the explained conv
layer into a backbone (image -> layer output) and a head (layer output ->
logit, probability), each a compiled TF graph. Gradient methods run the
backbone once and differentiate only the head; Keras would take ~1 s per map
eagerly. Each Explainer has its own lock (Keras calls are not thread-safe), so
explaining never blocks the classifier's predictions. Explainers are cached per
layer in `Classifier.explainers` (:func:`explainer_for`).

A method is a :class:`Method`: a name, a label for people and a function
``compute(explainer, model_input, features, target) -> raw map (h', w')``.

Scores are taken on the *logit* (negated for ``no_tumour``), never the
sigmoid output, so a prediction that rounds to 1.0 still has a gradient.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from core.model.classifier import LOGIT_LAYER
from core.model.labels import TUMOUR

#: Keyword arguments every tf-keras-vis CAM call takes: the named layer as given (no walking back to
#: a "real" conv, which would lose ResNet's residual sum), raw maps on the layer's grid.
CAM_OPTIONS = dict(seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)


@dataclass(frozen=True)
class Method:
    """An explanation method.

    name: the value `explain(method=...)` and `--method` take ("gradcam").
    label: what a person reads ("Grad-CAM").
    compute: (explainer, model_input float32 (1, s, s, 3), features (1, h', w', c), target)
        -> float32 (h', w') raw map, any scale (normalised later).
    """

    name: str
    label: str
    compute: Callable[["Explainer", np.ndarray, Any, str], np.ndarray]


def check_layer(model, layer: str) -> None:
    """Raise ValueError unless `layer` is a 4-D layer of `model` before its linear logit layer."""
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


def explainer_for(classifier, layer: str) -> "Explainer":
    """The classifier's cached Explainer for `layer`, built on first use (under the classifier's lock)."""
    with classifier.lock:
        if layer not in classifier.explainers:
            classifier.explainers[layer] = Explainer(classifier.model, layer)
        return classifier.explainers[layer]


class Explainer:
    """A compiled backbone/head split of one model at one layer, with per-method caches."""

    def __init__(self, model, layer: str) -> None:
        check_layer(model, layer)
        import keras
        import tensorflow as tf

        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        features = clone.get_layer(layer).output
        backbone = keras.Model(clone.inputs, features)
        head = keras.Model(features, [clone.get_layer(LOGIT_LAYER).output, clone.outputs[0]])
        self.layer = layer
        self.input_shape = tuple(clone.inputs[0].shape[1:])
        self.feature_shape = tuple(features.shape[1:])
        self.backbone = tf.function(lambda x: backbone(x, training=False),
                                    input_signature=[tf.TensorSpec((None, *self.input_shape), tf.float32)])
        self.head = tf.function(lambda f: head(f, training=False),
                                input_signature=[tf.TensorSpec((None, *self.feature_shape), tf.float32)])
        self.lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def run(self, model_input: np.ndarray, method: Method, target: str) -> tuple[np.ndarray, float]:
        """float32 (1, s, s, 3) -> (raw map float32 (h', w'), tumour probability in [0, 1])."""
        import tensorflow as tf

        with self.lock:
            features = self.backbone(tf.constant(model_input))
            _, probability = self.head(features)
            cam = method.compute(self, model_input, features, target)
        return np.asarray(cam, dtype=np.float32), float(np.asarray(probability)[0, 0])

    def probabilities(self, model_inputs: np.ndarray) -> np.ndarray:
        """float32 (n, s, s, 3) -> float32 (n,) tumour probabilities through the clone (for faithfulness)."""
        import tensorflow as tf

        with self.lock:
            _, probability = self.head(self.backbone(tf.constant(model_inputs, dtype=tf.float32)))
        return np.asarray(probability, dtype=np.float32)[:, 0]

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()` once per key (visualisers, derived models); later calls return the same object."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def gradient_cam(self, visualiser_class, features, target: str, shifted: bool = False) -> np.ndarray:
        """A tf-keras-vis gradient CAM (Gradcam, GradcamPlusPlus ...) of the logit score -> (h', w')."""
        visualiser = self.cached(visualiser_class.__name__,
                                 lambda: visualiser_class(self.gradient_model(), clone=False))
        cam = visualiser(logit_score(target, shifted), features, penultimate_layer=self.layer, **CAM_OPTIONS)
        return np.asarray(cam, dtype=np.float32)[0]

    def gradient_model(self):
        """features -> logit, with the features exposed as a layer named like the explained one."""
        import keras

        def build():
            inputs = keras.Input(self.feature_shape, name="features")
            exposed = keras.layers.Identity(name=self.layer)(inputs)
            logit = graph_layer()(lambda f: self.head(f)[0], (1,), name=LOGIT_LAYER)(exposed)
            return keras.Model(inputs, logit, name="gradient_explainer")

        return self.cached("gradient_model", build)


def logit_score(target: str, shifted: bool = False):
    """Score on the logit (n, 1): +logit for tumour, -logit for no_tumour.

    shifted: return ``s - stop_gradient(s)`` (zero-valued, same gradient). Grad-CAM++ weighs by
    ``exp(score)``; the shift rescales its map by ``exp(-s)`` only and keeps ``exp`` from overflowing.
    """
    import tensorflow as tf

    sign = 1.0 if target == TUMOUR else -1.0

    def score(logit):
        value = sign * logit[:, 0]
        return value - tf.stop_gradient(value) if shifted else value

    return score


@functools.cache
def graph_layer():
    """A Keras layer class that calls a compiled TF function (no weights of its own)."""
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
