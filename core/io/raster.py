"""JPEG, PNG, BMP and TIFF through Pillow -> uint8 grey or RGB pixels."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from core.io.common import MAX_PIXELS, ScanError, check_size, damaged, scale_min_max


def read_image(data: bytes, kind: str, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a JPEG, PNG, BMP or TIFF -> (uint8 HxW or HxWx3, meta)."""
    img = _open_image(data, kind, label)
    frame, frames = _seek_middle_frame(img, kind, label)
    check_size(img.size, label)
    meta: dict[str, Any] = {"format": kind, "size": img.size, "mode": img.mode,
                            "bits": _bits(img.mode), "frames": frames, "frame": frame}
    _decode(img, kind, label)
    img, meta["orientation"] = _upright(img)
    pixels, conversion = _to_uint8(img)
    meta.update(conversion)
    return pixels, meta


def _open_image(data: bytes, kind: str, label: str) -> Image.Image:
    """Parse the header only (Pillow decodes lazily)."""
    try:
        return Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError as exc:
        raise ScanError(f"{label} declares an enormous image, larger than the "
                        f"{MAX_PIXELS // 1_000_000} megapixel limit. Upload a single, "
                        "normally sized slice.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise damaged(label, kind) from exc


def _seek_middle_frame(img: Image.Image, kind: str, label: str) -> tuple[int, int]:
    """Move a multi-page image to its middle page -> (frame index, number of frames)."""
    try:
        frames = getattr(img, "n_frames", 1)
        frame = frames // 2
        if frame:
            img.seek(frame)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise damaged(label, kind) from exc
    return frame, frames


def _decode(img: Image.Image, kind: str, label: str) -> None:
    """Decode every pixel now, so that truncated or corrupt files fail here."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise damaged(label, kind) from exc


def _bits(mode: str) -> int:
    """Bits per sample of a Pillow mode."""
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def _upright(img: Image.Image) -> tuple[Image.Image, int]:
    """Apply the EXIF orientation tag -> (image, the tag's value, 1 when absent)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not reject the pixels
        orientation = 1
    if orientation not in range(2, 9):
        return img, 1
    return ImageOps.exif_transpose(img), int(orientation)


def _to_uint8(img: Image.Image) -> tuple[np.ndarray, dict[str, Any]]:
    """Any Pillow mode -> (uint8 HxW or HxWx3, facts about the conversion)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return np.asarray(img), {}
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        return _composite_on_black(img), {"alpha": "composited on black"}
    if mode in ("1", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(img.convert("L" if mode == "1" else "RGB")), {}
    values = np.asarray(img)  # 16-bit, 32-bit integer or float grey
    if values.ndim != 2:
        return np.asarray(img.convert("RGB")), {}
    pixels, window = scale_min_max(values)
    return pixels, {"window": window, "scaling": "min-max"}


def _composite_on_black(img: Image.Image) -> np.ndarray:
    """Image with alpha -> uint8 HxW (from LA) or HxWx3 (from RGBA), colour * alpha / 255."""
    grey = img.mode in ("LA", "La")
    rgba = np.asarray(img.convert("LA" if grey else "RGBA"), dtype=np.uint16)
    colour, alpha = rgba[..., :-1], rgba[..., -1:]
    out = ((colour * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if grey else out
