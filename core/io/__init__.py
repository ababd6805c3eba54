"""Read a scan from bytes, a path or a binary file object.

The only place that knows file formats. The format is decided by the content
(magic bytes), never by the file name: the public data sets hold PNGs named
``.jpg``.

Supported: JPEG, PNG, BMP, TIFF (through Pillow) and DICOM (through pydicom).
Output pixels are always ``uint8``, HxW (grey) or HxWx3 (RGB):

* 16-bit and float grey images are scaled by their own min..max to [0, 255].
* Alpha (RGBA, LA, transparent palettes) is composited on black, so a
  transparent background reads as the black background of an MRI slice.
* Palette, CMYK and YCbCr images become RGB; 1-bit images become grey 0/255.
* The EXIF orientation tag is applied, so the pixels are upright.
* A stack (multi-page TIFF, multi-frame DICOM) gives its middle frame.

DICOM: rescale slope/intercept (or modality LUT), then the VOI LUT or the
window stored in the file (else the frame's min..max), then MONOCHROME1 is
inverted. Only the tags needed to show the image are parsed, so patient tags
are never read into memory, let alone into ``meta``, messages or logs.

Every rejection raises :class:`ScanError` with a message for the person who
uploaded the file: what is wrong with it and what to do.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from core.io.common import ACCEPTED, MAX_BYTES, MAX_PIXELS, MIN_SIDE, Scan, ScanError
from core.io.dicom import read_dicom
from core.io.raster import read_image
from core.io.sniff import read_bytes, sniff

__all__ = ["ACCEPTED", "MAX_BYTES", "MAX_PIXELS", "MIN_SIDE", "Scan", "ScanError", "read_scan"]


def read_scan(source: bytes | str | os.PathLike | BinaryIO, *, name: str | None = None) -> Scan:
    """Read one scan.

    source: the file's bytes, a path, or a binary file object (read to its end).
    name: the file name shown in error messages (default: the path's file name).
    Returns a :class:`Scan`; raises :class:`ScanError` for anything it cannot show.
    """
    if name is None and isinstance(source, (str, os.PathLike)):
        name = os.path.basename(os.fspath(source))
    label = f"'{name}'" if name else "This file"
    data = read_bytes(source, label)
    kind = sniff(data, label)
    if kind == "DICOM":
        pixels, meta = read_dicom(data, label)
    else:
        pixels, meta = read_image(data, kind, label)
    meta["bytes"] = len(data)
    return Scan(pixels=pixels, meta=meta)
