"""Grad-CAM++ (Chattopadhay et al. 2018): higher-order gradient weights, better for several regions."""

from __future__ import annotations

from core.explain.base import Method


def compute(explainer, model_input, features, target):
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

    return explainer.gradient_cam(GradcamPlusPlus, features, target, shifted=True)


METHOD = Method("gradcam++", "Grad-CAM++", compute)
