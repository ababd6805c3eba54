"""Draw a map over an image: the 'inferno' colour map, opacity proportional to the evidence."""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.pixels import to_rgb

#: OpenCV's copy of matplotlib's perceptually uniform 'inferno' colormap.
COLORMAP = cv2.COLORMAP_INFERNO


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """float (H, W) in [0, 1] -> uint8 (H, W, 3) RGB, 'inferno' colours (black-purple-red-yellow)."""
    levels = np.round(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAP), cv2.COLOR_BGR2RGB)


def blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """uint8 image (H, W[, 3]) + float heatmap (H, W) in [0, 1] -> uint8 (H, W, 3) RGB.

    Per-pixel opacity `alpha * heatmap`: where the map is 0 the image is unchanged.
    """
    if image.shape[:2] != heatmap.shape:
        raise ValueError(f"Image {image.shape[:2]} and heatmap {heatmap.shape} differ in size.")
    base = to_rgb(image).astype(np.float32)
    opacity = (alpha * np.clip(heatmap, 0.0, 1.0)).astype(np.float32)[:, :, None]
    mixed = base * (1.0 - opacity) + colourise(heatmap).astype(np.float32) * opacity
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)
