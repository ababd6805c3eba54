"""The published recipe's settings, written once: the trainer's defaults and the model's shape.

Everything here is a plain constant or a frozen dataclass, so `core` (model,
preprocessing, augmentation) and `train` (options, run settings) read the
same values.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Side of the square model input, in pixels.
INPUT_SIZE = 224
#: Backbones the model can be built on: the recipe's ResNet50, or a small CNN with ResNet50's stage and
#: layer names (conv1..conv5, conv5_block3_out) that traces and trains in seconds on a CPU: for smoke tests
#: of the training pipeline and the test suite, never for results.
BACKBONES = ("resnet50", "small")
#: ResNet50's stages in order; the recipe's head counts as the last one.
STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5", "head")
#: First trainable stage with pretrained weights (the recipe freezes conv1-conv3) ...
PRETRAINED_TRAINABLE_FROM = "conv4"
#: ... and without them: a randomly initialised network must learn every layer.
SCRATCH_TRAINABLE_FROM = "conv1"


def default_trainable_from(pretrained: bool) -> str:
    """'conv4' when starting from pretrained weights, 'conv1' (everything) from random initialisation."""
    return PRETRAINED_TRAINABLE_FROM if pretrained else SCRATCH_TRAINABLE_FROM


@dataclass(frozen=True)
class Optimisation:
    """Training settings of the recipe (Adam, label-smoothed BCE, early stopping on validation AUC)."""

    weights: str = "imagenet"
    epochs: int = 15
    batch_size: int = 100
    lr: float = 2e-4
    label_smoothing: float = 0.01
    patience: int = 5
    lr_factor: float = 0.2
    lr_patience: int = 2  # the recipe gives none; 2 is this project's choice


@dataclass(frozen=True)
class Augmentation:
    """The recipe's augmentation: histogram matching, one affine warp with flips, brightness."""

    hist_match_p: float = 0.3
    rotation: float = 30.0
    shift: float = 0.1
    zoom: float = 0.3
    shear: float = 15.0
    brightness: tuple[float, float] = (0.7, 1.3)
    hflip: float = 0.5
    vflip: float = 0.5


OPTIMISATION = Optimisation()
AUGMENTATION = Augmentation()
