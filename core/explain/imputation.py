"""Hide pixels without leaving a shape: ROAD's linear imputation (Rong et al. 2022), used by the occlusion
method to hide patches and by `core.explain.metrics.faithfulness` to hide what a map highlights.

    impute(grey, removed) -> grey       every removed pixel filled from its neighbours (a discrete harmonic fill)
"""

from __future__ import annotations

import numpy as np


def check_grey(grey) -> np.ndarray:
    """`grey` when it is a uint8 (s, s) image; ValueError otherwise."""
    if not isinstance(grey, np.ndarray) or grey.dtype != np.uint8 or grey.ndim != 2:
        raise ValueError(
            "Expected a uint8 (s, s) grey image. "
            f"Received: {type(grey).__name__} dtype={getattr(grey, 'dtype', None)} shape={getattr(grey, 'shape', None)}"
        )
    return grey


#: ROAD's linear imputer stencil: (dy, dx, weight); direct neighbours 1/6, diagonal ones 1/12.
STENCIL = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
           (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))
#: Conjugate-gradient stop: largest residual, in grey levels.
IMPUTE_TOL = 0.25


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    """float64 (H, W) -> the STENCIL-weighted sum of each pixel's neighbours (none beyond the border)."""
    height, width = values.shape
    padded = np.pad(values, 1)
    return sum(weight * padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx, weight in STENCIL)


def impute(grey: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Fill the removed pixels from their neighbours: ROAD's linear imputation (a neutral fill).

    grey: uint8 (H, W); removed: bool (H, W). Returns uint8 (H, W), equal to
    `grey` where not removed. Every removed pixel becomes the STENCIL-weighted
    mean of its eight neighbours, kept or removed (the discrete harmonic fill),
    so a hidden region is a smooth blend of the grey around it, with no edge or
    shape of what was there. When every pixel is removed, all become the image's mean.
    """
    grey = check_grey(grey)
    removed = np.asarray(removed, dtype=bool)
    if removed.shape != grey.shape:
        raise ValueError(f"removed must have the image's shape {grey.shape}. Received: {removed.shape}")
    if removed.all() or not removed.any():
        return np.full_like(grey, int(round(float(grey.mean())))) if removed.any() else grey.copy()
    rows, cols = np.flatnonzero(removed.any(axis=1)), np.flatnonzero(removed.any(axis=0))
    window = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    filled = grey.copy()  # the stencil reaches one pixel: the removed pixels' box plus a margin holds the problem
    filled[window] = _harmonic_fill(grey[window].astype(np.float64), removed[window])
    return filled


def _harmonic_fill(values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Solve (degree - W) x = W kept for the removed pixels by conjugate gradients -> uint8 (h, w)."""
    kept_values = np.where(removed, 0.0, values)
    degree = _neighbour_sum(np.ones(values.shape))

    def apply(x):  # the system's matrix, on the removed pixels: degree * x - weighted removed neighbours
        return np.where(removed, degree * x - _neighbour_sum(x), 0.0)

    filled = np.where(removed, kept_values.sum() / max((~removed).sum(), 1), 0.0)
    residual = np.where(removed, _neighbour_sum(kept_values), 0.0) - apply(filled)
    direction, power = residual.copy(), float((residual**2).sum())
    for _ in range(4 * max(values.shape)):
        if np.abs(residual).max() <= IMPUTE_TOL:
            break
        step = apply(direction)
        alpha = power / float((direction * step).sum())
        filled, residual = filled + alpha * direction, residual - alpha * step
        power, previous = float((residual**2).sum()), power
        direction = residual + (power / previous) * direction
    return np.clip(np.round(np.where(removed, filled, values)), 0, 255).astype(np.uint8)
