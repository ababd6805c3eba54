"""Raw maps on the model grid -> normalised maps on the crop and on the scan."""

from __future__ import annotations

import cv2
import numpy as np

#: A raw map is blank when its range (max - min) is at most this ...
BLANK_ABS_TOL = 1e-10
#: ... or at most this fraction of its peak |value| (a flat map localises nothing).
BLANK_REL_TOL = 1e-4


def is_blank(cam: np.ndarray) -> bool:
    """True when a raw map carries no signal.

    cam: float, any shape (values as the explainer produced them, before
    normalisation). Blank means: empty, any value not finite, or its range
    max - min is at most max(BLANK_ABS_TOL, BLANK_REL_TOL * max|cam|), i.e. the
    map is zero or flat, so normalising it would only draw noise.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.size == 0 or not np.all(np.isfinite(cam)):
        return True
    spread = float(cam.max() - cam.min())
    return spread <= max(BLANK_ABS_TOL, BLANK_REL_TOL * float(np.abs(cam).max()))


def to_crop(cam: np.ndarray, crop_shape: tuple[int, int], blank: bool) -> np.ndarray:
    """Raw map (h', w') on the model grid -> float32 `crop_shape` (h, w) in [0, 1].

    Resized bilinearly (pixel centres aligned), then min-max normalised, so the
    strongest evidence is exactly 1 and the weakest in the crop 0. The model
    input is the crop stretched to a square, so the grid maps straight onto it.
    """
    height, width = crop_shape
    if blank:
        return np.zeros((height, width), dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    resized = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width)
    low, high = float(resized.min()), float(resized.max())
    scaled = (resized - low) / (high - low) if high > low else np.zeros_like(resized)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def place_in_scan(crop_map: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) map of the crop -> float32 `shape` (H, W) map, zero outside `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if crop_map.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"The map's shape {crop_map.shape} does not match the box {box}.")
    scan_map = np.zeros(shape, dtype=np.float32)
    scan_map[y0:y1, x0:x1] = crop_map
    return scan_map
