"""Score-CAM (Wang et al. 2020), "Faster Score-CAM" setting: no gradients, masks scored by the model.

The input is masked by each of the `MAX_N` highest-variance channels of the
layer; each mask's weight is the target's probability. tf-keras-vis weighs masks
by a softmax over the model's outputs, which is constant for a single unit, so
the model used here outputs the two-class logits ``[0, logit]``, whose softmax is
``[1 - p, p]``.
"""

from __future__ import annotations

import functools

import numpy as np

from core.explain.base import CAM_OPTIONS, Method, graph_layer
from core.model.labels import TUMOUR

#: Channels Score-CAM masks the input with (tf-keras-vis' ``max_N``).
MAX_N = 10


def compute(explainer, model_input, features, target):
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    visualiser = explainer.cached("scorecam", lambda: Scorecam(_image_model(explainer), clone=False))
    max_n = min(MAX_N, explainer.feature_shape[-1])
    cam = visualiser(CategoricalScore(1 if target == TUMOUR else 0), model_input, max_N=max_n, batch_size=max_n,
                     penultimate_layer=explainer.layer, **CAM_OPTIONS)
    return np.asarray(cam, dtype=np.float32)[0]


def _image_model(explainer):
    """image -> two-class logits [0, logit]; the layer output is named like the explained layer."""
    import keras
    import tensorflow as tf

    def two_class(features):
        logit = explainer.head(features)[0]
        return tf.concat([tf.zeros_like(logit), logit], axis=-1)

    inputs = keras.Input(explainer.input_shape, name="image")
    features = graph_layer()(explainer.backbone, explainer.feature_shape, name=explainer.layer)(inputs)
    logits = graph_layer()(two_class, (2,), name="two_class_logits")(features)
    return _batched_model_class()(inputs, logits, name="scorecam_explainer")


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


METHOD = Method("scorecam", "Score-CAM", compute)
