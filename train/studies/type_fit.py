"""Fit a tumour-type head on pooled backbone features: the head, its temperature and its "uncertain" level.

    fit_type_head(train_features, train_types, val_features, val_types, seed) -> (keras model, history)
    fit_temperature(logits, types) -> float
    choose_level(probabilities, types) -> float

The head is a small MLP in Keras: the features standardised with the training set's mean and variance (a
Normalization layer, so the saved model takes raw features), dropout 0.5, Dense 256 ReLU, dropout 0.5, and a
Dense layer to the three types' logits (both L2-penalised); each type weighs the same in the loss; Adam until
the validation loss stops falling (best weights kept). Chosen on the MOS-only head's validation groups
(macro-F1 0.928, against 0.896-0.905 for multinomial logistic regression with dropout 0-0.5 and L2 1e-4-1e-2),
never on its test groups.
"""

from __future__ import annotations

import numpy as np

from core.model.tumour_type import TYPES, softmax

#: The level at which the top type is named is at least this: below it no type has a majority.
MIN_LEVEL = 0.5
#: The level is raised until the named slices of the validation set reach this macro recall.
TARGET_NAMED_RECALL = 0.95
L2 = 1e-4
DROPOUT = 0.5
HIDDEN = 256
MAX_EPOCHS = 200
PATIENCE = 15


def type_weights(types: np.ndarray) -> np.ndarray:
    """float32 (n,) sample weights: each type's total the same, mean 1."""
    counts = np.bincount(types, minlength=len(TYPES)).astype(np.float64)
    present = counts > 0
    per_type = np.where(present, len(types) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return per_type[types].astype(np.float32)


def build_type_head(mean: np.ndarray, variance: np.ndarray, seed: int):
    """Keras model: float32 (n, d) features -> (n, 3) logits."""
    import keras

    inputs = keras.Input((len(mean),), name="pooled_features")
    x = keras.layers.Normalization(mean=mean, variance=np.maximum(variance, 1e-6), name="standardise")(inputs)
    x = keras.layers.Dropout(DROPOUT, seed=seed, name="type_dropout")(x)
    x = keras.layers.Dense(HIDDEN, activation="relu", kernel_regularizer=keras.regularizers.L2(L2),
                           name="type_hidden")(x)
    x = keras.layers.Dropout(DROPOUT, seed=seed + 1, name="type_hidden_dropout")(x)
    outputs = keras.layers.Dense(len(TYPES), kernel_regularizer=keras.regularizers.L2(L2), name="type_logits")(x)
    return keras.Model(inputs, outputs, name="tumour_type_head")


def fit_type_head(train_features: np.ndarray, train_types: np.ndarray, val_features: np.ndarray,
                  val_types: np.ndarray, seed: int = 0, epochs: int = MAX_EPOCHS, lr: float = 1e-3):
    """Train the head (module docstring). Features float32 (n, d); types int (n,) in [0, 3).
    Returns (model, {'epochs': int, 'val_loss': float})."""
    import keras

    keras.utils.set_random_seed(seed)
    features = np.asarray(train_features, np.float32)
    model = build_type_head(features.mean(axis=0), features.var(axis=0), seed)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), weighted_metrics=[])
    stop = keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)
    history = model.fit(features, train_types, sample_weight=type_weights(train_types), batch_size=256,
                        epochs=epochs, shuffle=True, verbose=0, callbacks=[stop],
                        validation_data=(np.asarray(val_features, np.float32), val_types, type_weights(val_types)))
    losses = history.history["val_loss"]
    return model, {"epochs": len(losses), "val_loss": float(min(losses))}


def logits_of(model, features: np.ndarray) -> np.ndarray:
    """float64 (n, 3) logits of a head for float32 (n, d) features."""
    return np.asarray(model.predict(np.asarray(features, np.float32), batch_size=1024, verbose=0), np.float64)


def fit_temperature(logits: np.ndarray, types: np.ndarray) -> float:
    """The temperature T > 0 that minimises the type-weighted negative log-likelihood of
    softmax(logits / T) on held-out logits (n, 3) and types (n,)."""
    from scipy.optimize import minimize_scalar

    weights = type_weights(types)

    def loss(log_t: float) -> float:
        p = softmax(logits, np.exp(log_t))[np.arange(len(types)), types]
        return float(-np.sum(weights * np.log(np.clip(p, 1e-12, 1))) / np.sum(weights))

    return float(np.exp(minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def named_recall(probabilities: np.ndarray, types: np.ndarray, level: float) -> tuple[float, float]:
    """(macro recall over the types among slices whose top probability reaches `level`, their share)."""
    named = probabilities.max(axis=1) >= level
    if not named.any():
        return float("nan"), 0.0
    predicted = probabilities.argmax(axis=1)
    recalls = [np.mean(predicted[named & (types == t)] == t) for t in range(len(TYPES)) if (named & (types == t)).any()]
    return float(np.mean(recalls)), float(named.mean())


def choose_level(probabilities: np.ndarray, types: np.ndarray, target: float = TARGET_NAMED_RECALL) -> float:
    """The lowest level in [MIN_LEVEL, 0.99] (steps of 0.01) at which the validation slices that get a type
    reach `target` macro recall; 0.99 when none does."""
    for level in np.round(np.arange(MIN_LEVEL, 0.995, 0.01), 2):
        recall, share = named_recall(probabilities, types, float(level))
        if share > 0 and recall >= target:
            return float(level)
    return 0.99
