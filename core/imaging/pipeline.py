"""The one path from a scan to the model's input, used by every caller.

    source (bytes | path | file) --read_scan--> pixels --crop_brain--> Crop
        --prepare_crop--> grey uint8 (size, size) --caffe_normalise--> model input

The classifier, the command line, the app, the trainer's crop cache and the
explanations all take a :class:`PreparedScan` from here, so a scan is read and
cropped once, and turned into a tensor the same way everywhere.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from core.imaging.crop import Crop, crop_brain
from core.imaging.preprocess import caffe_normalise, prepare_crop
from core.io import read_scan
from core.recipe import INPUT_SIZE


@dataclass(frozen=True, eq=False)
class PreparedScan:
    """A scan ready for the model.

    pixels: uint8 HxW or HxWx3, [0, 255], the decoded scan.
    crop: its :class:`core.imaging.crop.Crop` (box in `pixels` coordinates).
    grey: uint8 (size, size), [0, 255], the resized grey crop (what the trainer caches).
    meta: what the reader recorded (format, DICOM display settings ...).
    model_input: float32 (size, size, 3), ResNet50 caffe-normalised `grey`; computed on first use.
    """

    pixels: np.ndarray
    crop: Crop
    grey: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.grey.shape[0])

    @functools.cached_property
    def model_input(self) -> np.ndarray:
        return caffe_normalise(self.grey)


class OfScan:
    """Mixin for results about one PreparedScan (held as `scan`): its `pixels` and `crop` at hand."""

    scan: PreparedScan

    @property
    def pixels(self) -> np.ndarray:
        return self.scan.pixels

    @property
    def crop(self) -> Crop:
        return self.scan.crop


def prepare_pixels(pixels: np.ndarray, size: int = INPUT_SIZE, meta: dict[str, Any] | None = None) -> PreparedScan:
    """uint8 HxW or HxWx3 scan -> :class:`PreparedScan` at `size` x `size`."""
    crop = crop_brain(pixels)
    return PreparedScan(pixels=pixels, crop=crop, grey=prepare_crop(crop.image, size), meta=dict(meta or {}))


def prepare_scan(source: bytes | str | os.PathLike | BinaryIO, size: int = INPUT_SIZE, *,
                 name: str | None = None) -> PreparedScan:
    """Read (by content), crop and preprocess one scan. Raises `core.io.ScanError` for a bad file."""
    scan = read_scan(source, name=name)
    return prepare_pixels(scan.pixels, size, scan.meta)


def as_prepared(scan: PreparedScan | np.ndarray, size: int) -> PreparedScan:
    """A PreparedScan at `size`: given pixels are prepared; a PreparedScan of another size is re-prepared."""
    if isinstance(scan, PreparedScan):
        return scan if scan.size == size else prepare_pixels(scan.pixels, size, scan.meta)
    return prepare_pixels(scan, size)
