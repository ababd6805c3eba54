"""LayerCAM (Jiang et al. 2021): positive gradients x activations at every position, summed over channels.

Like HiResCAM, but only positive gradients count (relu(grad) * activation), so a
position is marked by the channels that raise the score there; ReLU on the sum.
tf-keras-vis' ``Layercam`` on the Explainer's compiled head (its defaults are
exactly these two ReLUs).
"""

from __future__ import annotations

from core.explain.base import Method


def compute(explainer, model_input, features, target):
    from tf_keras_vis.layercam import Layercam

    return explainer.gradient_cam(Layercam, features, target)


METHOD = Method("layercam", "LayerCAM", compute)
