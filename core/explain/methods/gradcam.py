"""Grad-CAM (Selvaraju et al. 2017): channels weighted by the mean gradient of the logit score."""

from __future__ import annotations

from core.explain.base import Method


def compute(explainer, model_input, features, target):
    from tf_keras_vis.gradcam import Gradcam

    return explainer.gradient_cam(Gradcam, features, target)


METHOD = Method("gradcam", "Grad-CAM", compute)
