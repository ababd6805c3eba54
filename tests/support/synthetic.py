"""Synthetic images for tests that need the shape of a scan, not a real one."""

from __future__ import annotations

import numpy as np


def brain(size=64, level=120, seed=0) -> np.ndarray:
    """uint8 (size, size): a textured ellipse on a black background, like a brain crop."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = ((xx - size / 2) / (0.45 * size)) ** 2 + ((yy - size / 2) / (0.4 * size)) ** 2 <= 1
    values = np.clip(rng.normal(level, 25, (size, size)), 1, 255)
    return np.where(inside, values, 0).astype(np.uint8)
