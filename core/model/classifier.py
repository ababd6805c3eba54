"""Build the recipe's classifier; save and load it with its model card.

The model is one flat functional graph: ResNet50's layers keep their Keras
names (``conv5_block3_out`` ...), and the head hangs off ``base.output``
(the "small" smoke-test backbone uses the same stage names):

    max_pool (GlobalMaxPooling2D) -> head_dense (Dense 512, relu)
    -> head_bn (BatchNormalization) -> head_dropout (Dropout 0.5)
    -> logit (Dense 1) -> tumour_probability (sigmoid)

The logit has a layer of its own so explanations can score on it directly.
"""

from __future__ import annotations

import os
import threading
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.imaging.normalise import normalise_crops
from core.imaging.pipeline import PreparedScan, as_prepared
from core.imaging.preprocess import caffe_normalise
from core.io.atomic import atomic_path, sha256_of
from core.model.calibration import IDENTITY, Calibration
from core.model.card import CARD_FILE, MODEL_FILE, CardError, ModelCard, read_card, write_card
from core.model.tumour_type import CARD_ENTRY, FEATURE_LAYER, load_type_head
from core.recipe import BACKBONES, INPUT_SIZE, STAGES, default_trainable_from

LOGIT_LAYER = "logit"
OUTPUT_LAYER = "tumour_probability"
LAST_CONV_LAYER = "conv5_block3_out"
#: Environment variable naming a model directory to use instead of the shipped one.
MODEL_DIR_ENV = "BRAIN_MRI_MODEL_DIR"
#: The model shipped with the repository, used when no path is given.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "brain-mri-resnet50"

_OFFLINE_HELP = (
    "Offline options: build_model(weights=None) for random initialisation, or "
    "build_model(weights='/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'), "
    "or place that file in ~/.keras/models/ so Keras finds it without downloading."
)


def _stage_of(layer_name: str) -> str:
    """The recipe stage a layer belongs to ('pool1_*' belongs to conv1)."""
    if layer_name.startswith("pool1"):
        return "conv1"
    for stage in STAGES[:-1]:
        if layer_name.startswith(stage + "_"):
            return stage
    return "head"


def _check_build_args(weights: Any, trainable_from: str | None, input_size: int, backbone: str) -> None:
    if not (weights is None or weights == "imagenet" or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            "weights must be 'imagenet', None or a path to a weights file. "
            f"Received: weights={weights!r}"
        )
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}. Received: backbone={backbone!r}")
    if backbone == "small" and weights is not None:
        raise ValueError(f"The small backbone has no pretrained weights: build it with weights=None. "
                         f"Received: weights={weights!r}")
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"No weights file at {str(weights)!r}. {_OFFLINE_HELP}")
    if trainable_from is not None and trainable_from not in STAGES:
        raise ValueError(
            f"trainable_from must be one of {', '.join(STAGES)}. Received: trainable_from={trainable_from!r}"
        )
    if not isinstance(input_size, int) or isinstance(input_size, bool) or not 32 <= input_size <= 1024:
        raise ValueError(
            f"input_size must be an integer between 32 and 1024. Received: input_size={input_size!r}"
        )


def build_model(weights: Any = "imagenet", trainable_from: str | None = None, input_size: int = INPUT_SIZE,
                backbone: str = "resnet50"):
    """The recipe's ResNet50 + head as one flat, uncompiled `keras.Model`.

    weights: 'imagenet' (downloaded by Keras), None (random init) or a path to
        ResNet50 no-top weights (.h5).
    trainable_from: first trainable stage, one of conv1..conv5 or head. Default:
        'conv4' with pretrained weights (the recipe), 'conv1' (everything) with None.
    input_size: side of the square input, 32..1024.
    backbone: 'resnet50' (the recipe) or 'small' (core.recipe.BACKBONES; weights must be None).
    Input: float32 (batch, input_size, input_size, 3), caffe-preprocessed.
    Output: float32 (batch, 1), tumour probability in [0, 1].
    """
    _check_build_args(weights, trainable_from, input_size, backbone)
    import keras

    if trainable_from is None:
        trainable_from = default_trainable_from(pretrained=weights is not None)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = _resnet50(inputs, weights) if backbone == "resnet50" else _small_backbone(inputs)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(features)
    x = keras.layers.Dense(512, activation="relu", name="head_dense")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    x = keras.layers.Dense(1, name=LOGIT_LAYER)(x)
    outputs = keras.layers.Activation("sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=f"{backbone}_tumour")
    set_trainable_from(model, trainable_from)
    return model


def _resnet50(inputs, weights: Any):
    """ResNet50 without its top on `inputs`; its last block's output (conv5_block3_out)."""
    import keras

    try:
        base = keras.applications.ResNet50(
            include_top=False,
            weights=None if weights is None else str(weights),
            input_tensor=inputs,
        )
    except (urllib.error.URLError, OSError, ConnectionError) as error:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not download the ImageNet weights for ResNet50 ({error}). {_OFFLINE_HELP}"
        ) from error
    return base.output


def _small_backbone(inputs):
    """Five conv-BN-ReLU stages (8..64 filters, stride 2 from conv2), named like ResNet50's stages so that
    trainable_from and the explained layer (conv5_block3_out) mean the same; a 1/16-size feature map."""
    import keras

    x = inputs
    for index, (stage, filters) in enumerate(zip(STAGES[:-1], (8, 16, 32, 64, 64))):
        x = keras.layers.Conv2D(filters, 3, strides=1 if index == 0 else 2, padding="same", name=f"{stage}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{stage}_bn")(x)
        x = keras.layers.ReLU(name="conv5_block3_out" if stage == "conv5" else f"{stage}_out")(x)
    return x


def set_trainable_from(model, trainable_from: str) -> None:
    """Freeze every stage before `trainable_from`; make it and later stages trainable."""
    if trainable_from not in STAGES:
        raise ValueError(
            f"trainable_from must be one of {', '.join(STAGES)}. Received: trainable_from={trainable_from!r}"
        )
    first = STAGES.index(trainable_from)
    for layer in model.layers:
        layer.trainable = STAGES.index(_stage_of(layer.name)) >= first


def without_optimizer(model):
    """An uncompiled copy of `model` with the same layers and weights, so no optimizer state is saved."""
    if getattr(model, "optimizer", None) is None:
        return model
    import keras

    copy = keras.Model.from_config(model.get_config())  # clone_model would copy the compile state too
    copy.set_weights(model.get_weights())
    return copy


def save_classifier(model, card: ModelCard | dict, directory: str | os.PathLike) -> Path:
    """Write `model.keras` (no optimizer state) and `model_card.json` atomically.

    The weights go first, the card (which carries their SHA-256) last, each
    under a temporary name renamed into place, so a reader never sees a
    half-written model or a card for other weights. Returns the directory.
    """
    if isinstance(card, dict):
        card = ModelCard.from_dict(card, require_hash=False)
    directory = Path(directory)
    with atomic_path(directory / MODEL_FILE, suffix=".keras") as model_tmp:
        without_optimizer(model).save(model_tmp)
        digest = sha256_of(model_tmp)
    card = card.with_entries(weights_file=MODEL_FILE, weights_sha256=digest)
    write_card(directory, card)
    return directory


@dataclass
class Classifier:
    """A loaded classifier with its model card.

    predict(uint8 scans) or predict_prepared(PreparedScans) -> float32 (n,)
    tumour probabilities in [0, 1]. `type_head` is the card's tumour-type head
    (`core.model.tumour_type`), or None for a model without one. Inference is serialised by a lock: one
    cached instance may serve many threads. `explainers` caches the
    explanation machinery built for this model (see `core.explain`), one per
    explained layer; it is filled under the classifier's lock.
    """

    model: Any
    card: ModelCard
    directory: Path | None = None
    batch_size: int = 16
    type_head: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    explainers: dict[str, Any] = field(default_factory=dict, repr=False)
    _with_features: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.card, dict):
            self.card = ModelCard.from_dict({"name": "model", **self.card}, require_hash=False)

    @property
    def threshold(self) -> float:
        """Decision threshold on the tumour probability, from the card."""
        return float(self.card.threshold)

    @property
    def input_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def calibration(self) -> Calibration:
        """The card's calibration of the raw output (identity when the card has none)."""
        return Calibration.from_dict(self.card.calibration) if self.card.calibration else IDENTITY

    @property
    def model_id(self) -> str:
        """Short, stable identifier: card name plus the first 12 hex digits of the weights hash."""
        return self.card.model_id

    @property
    def normalise(self) -> str:
        """The per-scan normalisation the model was trained with (card input.normalise; core.imaging.normalise)."""
        return str(self.card.input.get("normalise", "none"))

    def inputs_of(self, grey: np.ndarray) -> np.ndarray:
        """uint8 (size, size) or (n, size, size) grey crops -> float32 (..., size, size, 3) network inputs: the
        card's normalisation, then ResNet50 caffe preprocessing."""
        return caffe_normalise(normalise_crops(grey[None], self.normalise)[0] if grey.ndim == 2
                               else normalise_crops(grey, self.normalise))

    def predict_grey(self, grey: np.ndarray) -> np.ndarray:
        """uint8 (n, size, size) grey crops -> float32 (n,) probabilities (through inputs_of)."""
        return self.predict_inputs(self.inputs_of(grey))

    def predict_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """float32 (n, size, size, 3) network inputs (see inputs_of) -> float32 (n,) probabilities."""
        inputs = np.asarray(inputs, dtype=np.float32)
        expected = (self.input_size, self.input_size, 3)
        if inputs.ndim != 4 or inputs.shape[1:] != expected:
            raise ValueError(f"Expected inputs of shape (n, {expected}). Received: shape={inputs.shape}")
        if len(inputs) == 0:
            return np.zeros((0,), dtype=np.float32)
        with self.lock:
            outputs = [  # predict_on_batch runs the backend's compiled predict step
                np.asarray(self.model.predict_on_batch(inputs[i : i + self.batch_size]))
                for i in range(0, len(inputs), self.batch_size)
            ]
        return np.concatenate(outputs)[:, 0].astype(np.float32)

    def predict_inputs_with_features(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (n, size, size, 3) preprocessed inputs -> (float32 (n,) probabilities, float32 (n, d)
        pooled backbone features, the type head's input), from one pass through the network."""
        import keras

        inputs = np.asarray(inputs, dtype=np.float32)
        with self.lock:
            if self._with_features is None:
                self._with_features = keras.Model(self.model.input, [self.model.output,
                                                                     self.model.get_layer(FEATURE_LAYER).output])
            outputs = [self._with_features.predict_on_batch(inputs[i : i + self.batch_size])
                       for i in range(0, len(inputs), self.batch_size)]
        probabilities = np.concatenate([np.asarray(o[0]) for o in outputs])[:, 0].astype(np.float32)
        return probabilities, np.concatenate([np.asarray(o[1]) for o in outputs]).astype(np.float32)

    def predict_prepared(self, scans: Sequence[PreparedScan]) -> np.ndarray:
        """Prepared scans (see `core.imaging.pipeline`) -> float32 (n,) tumour probabilities."""
        if not scans:
            return np.zeros((0,), dtype=np.float32)
        return self.predict_grey(np.stack([as_prepared(scan, self.input_size).grey for scan in scans]))

    def predict(self, scans: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 scans (HxW or HxWx3, any size) -> float32 (n,) tumour probabilities.

        Each scan is cropped and preprocessed by `core.imaging.pipeline`, exactly as in training.
        """
        return self.predict_prepared([as_prepared(scan, self.input_size) for scan in scans])


def _no_model_message(directory: Path) -> str:
    return (
        f"No trained model found in {directory}. Train one with "
        "`python -m train --train DIR --val-split 0.1 --out RUN_DIR` and pass RUN_DIR/model, "
        f"or copy a model directory ({MODEL_FILE} + {CARD_FILE}) to {DEFAULT_MODEL_DIR}."
    )


def default_model_dir() -> Path:
    """$BRAIN_MRI_MODEL_DIR, else the shipped model beside the package, else ./models/brain-mri-resnet50."""
    if os.environ.get(MODEL_DIR_ENV):
        return Path(os.environ[MODEL_DIR_ENV])
    if DEFAULT_MODEL_DIR.is_dir():
        return DEFAULT_MODEL_DIR
    return Path.cwd() / "models" / DEFAULT_MODEL_DIR.name


def load_classifier(path: str | os.PathLike | None = None) -> Classifier:
    """Load a trained classifier and its model card.

    path: a model directory (holding model.keras and model_card.json), or None
    for :func:`default_model_dir`. The card is validated and the weights'
    SHA-256 checked against it before Keras reads them; loading uses safe mode
    and rejects Lambda layers.
    """
    directory = Path(path) if path is not None else default_model_dir()
    if directory.is_file():
        directory = directory.parent
    if not (directory / CARD_FILE).is_file() or not (directory / MODEL_FILE).is_file():
        raise FileNotFoundError(_no_model_message(directory))
    card = read_card(directory)
    weights_path = directory / card.weights_file
    actual = sha256_of(weights_path)
    if actual != card.weights_sha256:
        raise ValueError(
            f"The weights in {weights_path} do not match their model card "
            f"(SHA-256 {actual[:12]}... instead of {card.weights_sha256[:12]}...). "
            "The file is corrupt or was replaced: restore it from the repository or retrain."
        )
    import keras

    model = keras.saving.load_model(weights_path, compile=False, safe_mode=True)
    if any(isinstance(layer, keras.layers.Lambda) for layer in model.layers):
        raise ValueError(f"{weights_path} contains a Lambda layer; refusing to load arbitrary code.")
    type_head = load_type_head(directory, card.extra[CARD_ENTRY]) if CARD_ENTRY in card.extra else None
    return Classifier(model=model, card=card, directory=directory, type_head=type_head)


__all__ = ["CARD_FILE", "MODEL_FILE", "CardError", "Classifier", "ModelCard", "build_model", "load_classifier",
           "read_card", "save_classifier", "set_trainable_from", "sha256_of"]
