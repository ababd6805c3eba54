"""What the scan readers share: the result type, the error, the limits and intensity scaling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Largest frame accepted, in pixels (checked from the header, before decoding).
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in pixels: anything smaller cannot show a brain.
MIN_SIDE = 32
#: Largest accepted file, in bytes.
MAX_BYTES = 256 * 1024 * 1024

ACCEPTED = "Upload a JPEG, PNG, BMP, TIFF or DICOM scan."


class ScanError(ValueError):
    """A scan could not be read; the message says why and what to do."""


@dataclass(frozen=True)
class Scan:
    """A decoded scan.

    pixels: uint8, HxW (grey) or HxWx3 (RGB), [0, 255]; never RGBA, never 16-bit.
    meta: non-identifying facts about the file (format, size as (w, h), mode or
    photometric interpretation, bits, frame used of frames, window, ...).
    """

    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def damaged(label: str, kind: str) -> ScanError:
    return ScanError(f"{label} looks like a {kind} image but is damaged or incomplete, so it "
                     "cannot be read. Download or export it again and upload the new copy.")


def check_size(size: tuple[int, int], label: str) -> None:
    """Reject frames larger than MAX_PIXELS or smaller than MIN_SIDE, from (width, height)."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise ScanError(f"{label} is {width} x {height} pixels ({width * height / 1e6:.0f} "
                        f"megapixels); the limit is {MAX_PIXELS // 1_000_000} megapixels. "
                        "Downscale it or export a single slice.")
    if min(width, height) < MIN_SIDE:
        raise ScanError(f"{label} is only {width} x {height} pixels, too small to show a brain "
                        f"(at least {MIN_SIDE} x {MIN_SIDE} needed). Upload the original scan, "
                        "not a thumbnail.")


def scale_min_max(values: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Map an array's finite min..max linearly to uint8 [0, 255] -> (pixels, (min, max))."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8), (0.0, 0.0)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    return scale(np.where(finite, values, lo), lo, hi), (lo, hi)


def scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map lo..hi linearly to uint8 [0, 255], clipping outside; all 0 when hi <= lo."""
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
