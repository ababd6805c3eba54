"""Read a scan from bytes, a path or a binary file object (placeholder: being extended)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image


class ScanError(ValueError):
    """A scan could not be read; the message says why and what to do."""


@dataclass(frozen=True)
class Scan:
    """pixels: uint8 HxW (grey) or HxWx3 (RGB). meta: non-identifying facts about the file."""

    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def read_scan(source: bytes | str | os.PathLike | BinaryIO, *, name: str | None = None) -> Scan:
    if isinstance(source, (str, os.PathLike)):
        data = open(source, "rb").read()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    image = Image.open(io.BytesIO(data))
    image = image.convert("L") if image.mode in ("L", "I;16", "I") else image.convert("RGB")
    return Scan(pixels=np.asarray(image), meta={"format": image.format})
