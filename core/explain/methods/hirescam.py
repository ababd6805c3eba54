"""HiResCAM (Draelos & Carin 2020): gradient x activations at every position, summed over channels.

Grad-CAM first averages each channel's gradient over the grid, so a channel that
matters at one position lights up everywhere it is active. HiResCAM keeps the
gradient where it is: the map at a position is sum_c(grad * activation), the
first-order contribution of that position to the score, then ReLU (evidence for
the target only). Behind a GlobalMaxPooling head the gradient of a channel is
non-zero only at its maximum, so the map marks exactly the positions the score
reads. Computed with a compiled tf.GradientTape through the Explainer's head
(tf-keras-vis has no HiResCAM).
"""

from __future__ import annotations

import numpy as np

from core.explain.base import Method
from core.model.labels import TUMOUR


def compute(explainer, model_input, features, target):
    gradients = np.asarray(head_gradients(explainer, features, target))
    return np.maximum(np.sum(gradients * np.asarray(features), axis=-1)[0], 0.0).astype(np.float32)


def head_gradients(explainer, features, target: str):
    """d score / d features, float32 (n, h', w', c), score = +logit for tumour, -logit for no_tumour.

    features: the layer output (n, h', w', c). The gradient function is traced
    once per Explainer (cached) and takes the sign as a tensor, so both targets
    share one graph.
    """
    import tensorflow as tf

    gradient = explainer.cached("head_gradients", lambda: _gradient_function(explainer))
    return gradient(tf.convert_to_tensor(features, tf.float32), tf.constant(1.0 if target == TUMOUR else -1.0))


def _gradient_function(explainer):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, *explainer.feature_shape), tf.float32),
                                  tf.TensorSpec((), tf.float32)])
    def gradient(features, sign):
        with tf.GradientTape() as tape:
            tape.watch(features)
            score = sign * explainer.head(features)[0][:, 0]
        return tape.gradient(score, features)

    return gradient


METHOD = Method("hirescam", "HiResCAM", compute)
