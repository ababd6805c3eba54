"""The image conventions every module shares: uint8 pixels, grey or RGB.

A scan, a crop or an augmented image is a numpy uint8 array, HxW (grey) or
HxWx3 (RGB), values [0, 255]. These helpers check that and convert between
grey and RGB, so no other module repeats them.
"""

from __future__ import annotations

import cv2
import numpy as np


def check_uint8(image, what: str = "image", channels: tuple[int, ...] = (3,)) -> None:
    """Raise ValueError unless `image` is a non-empty uint8 HxW or HxWxC array with C in `channels`."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(
            f"Expected a uint8 numpy {what}. Received: "
            f"{type(image).__name__} of dtype {getattr(image, 'dtype', None)}"
        )
    shaped = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in channels)
    if not shaped or min(image.shape[:2]) < 1:
        raise ValueError(f"Expected an HxW or HxWx3 {what}. Received: shape={image.shape}")


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) -> uint8 HxW (the input itself when already grey)."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_RGB2GRAY)
    raise ValueError(f"Expected an HxW or HxWx3 image. Received: shape={pixels.shape}")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1, HxWx3 or HxWx4 -> uint8 HxWx3 RGB (always a new array)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.array(image[:, :, :3])
    raise ValueError(f"Expected an HxW or HxWx3 image. Received: shape={image.shape}")


def levels_at(hist: np.ndarray, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """From a (256,) grey-level histogram: for each fraction in [0, 1], the lowest grey level at which the
    cumulative share of pixels reaches it (0-255)."""
    cumulative = np.cumsum(hist)
    return tuple(int(np.searchsorted(cumulative, f * cumulative[-1])) for f in fractions)
