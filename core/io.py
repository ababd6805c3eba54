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

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

#: Largest frame accepted, in pixels (checked from the header, before decoding).
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in pixels: anything smaller cannot show a brain.
MIN_SIDE = 32
#: Largest accepted file, in bytes.
MAX_BYTES = 256 * 1024 * 1024

ACCEPTED = "Upload a JPEG, PNG, BMP, TIFF or DICOM scan."

# Magic bytes of the formats we read, in the order they are tried.
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),  # confirmed by _is_bmp, as two letters are a weak sign
)

# Magic bytes of common files that are not scans, to name them in the message.
_OTHER_MAGIC = (
    (b"%PDF", "a PDF document, not an image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document), not an image"),
    (b"PK\x05\x06", "an empty ZIP archive, not an image"),
    (b"\x7fELF", "a program (ELF executable), not an image"),
    (b"MZ", "a Windows program (EXE or DLL), not an image"),
    (b"\x1f\x8b", "a gzip-compressed file, not an image"),
    (b"Rar!", "a RAR archive, not an image"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive, not an image"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document, not an image"),
    (b"GIF8", "a GIF image, a format this app does not read"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image, a format this app does not read"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image, a format this app does not read"),
)

# Compressed DICOM transfer syntaxes and the pip command for their decoder.
_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
_DICOM_PLUGINS = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _LIBJPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": "pip install pylibjpeg pylibjpeg-rle",  # RLE Lossless
}

# The only DICOM elements ever parsed: what is needed to decode and display the
# image. Everything else (patient, study, institution...) is skipped unread.
_DICOM_TAGS = [
    "Modality",
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
    "NumberOfFrames", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "RescaleIntercept", "RescaleSlope", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "FloatPixelData", "DoubleFloatPixelData", "PixelData",
]


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


def read_scan(source: bytes | str | os.PathLike | BinaryIO, *, name: str | None = None) -> Scan:
    """Read one scan.

    source: the file's bytes, a path, or a binary file object (read to its end).
    name: the file name shown in error messages (default: the path's file name).
    Returns a :class:`Scan`; raises :class:`ScanError` for anything it cannot show.
    """
    if name is None and isinstance(source, (str, os.PathLike)):
        name = os.path.basename(os.fspath(source))
    label = f"'{name}'" if name else "This file"
    data = _read_bytes(source, label)
    kind = _sniff(data, label)
    if kind == "DICOM":
        pixels, meta = _read_dicom(data, label)
    else:
        pixels, meta = _read_image(data, kind, label)
    meta["bytes"] = len(data)
    return Scan(pixels=pixels, meta=meta)


# --- bytes and format detection ---------------------------------------------------------------


def _read_bytes(source: bytes | str | os.PathLike | BinaryIO, label: str) -> bytes:
    """The raw bytes of `source`, at most MAX_BYTES, never empty."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            size = os.path.getsize(source)
            if size > MAX_BYTES:
                raise _too_large_file(label)
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ScanError(f"{label} could not be opened ({exc.strerror or 'read error'}). "
                            "Check that the file exists and can be read.") from exc
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"Expected a binary file object. Received: {type(source).__name__} "
                            f"whose read() returns {type(data).__name__}")
        data = bytes(data)
    else:
        raise TypeError("Expected bytes, a path or a binary file object. "
                        f"Received: {type(source).__name__}")
    if not data:
        raise ScanError(f"{label} is empty (0 bytes). Upload the scan again, or export it again "
                        "from the viewer if it keeps failing.")
    if len(data) > MAX_BYTES:
        raise _too_large_file(label)
    return data


def _too_large_file(label: str) -> ScanError:
    return ScanError(f"{label} is larger than the {MAX_BYTES // 2**20} MB limit. "
                    "Export a single slice as PNG, JPEG or DICOM and upload that.")


def _sniff(data: bytes, label: str) -> str:
    """The format name ('JPEG', 'PNG', 'TIFF', 'BMP', 'DICOM') read from the content."""
    if data[128:132] == b"DICM" or _looks_like_bare_dicom(data):
        return "DICOM"
    for magic, kind in _IMAGE_MAGIC:
        if data.startswith(magic) and (kind != "BMP" or _is_bmp(data)):
            return kind
    raise ScanError(f"{label} is {_describe_other(data)}. {ACCEPTED}")


def _is_bmp(data: bytes) -> bool:
    """True when the bytes after 'BM' hold one of the BMP info-header sizes."""
    return int.from_bytes(data[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124)


def _looks_like_bare_dicom(data: bytes) -> bool:
    """True for a DICOM data set written without its 128-byte preamble.

    Accepted only when it starts with a (0002,0000) or (0008,xxxx) element with
    an explicit VR of the right kind, or a (0008,0005)/(0008,0016) implicit one.
    """
    if len(data) < 12 or data[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    element = int.from_bytes(data[2:4], "little")
    explicit = data[4:6] in (b"UL", b"CS", b"UI", b"OB", b"DA", b"TM", b"SH")
    implicit = data[:2] == b"\x08\x00" and element in (0x0005, 0x0008, 0x0016)
    return explicit or implicit


def _describe_other(data: bytes) -> str:
    """A short description of a file that is not a supported image ('a PDF document')."""
    for magic, what in _OTHER_MAGIC:
        if data.startswith(magic):
            return what
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image, a format this app does not read"
    if data[4:8] == b"ftyp":
        return "a HEIC photo or a video, a format this app does not read"
    if data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "a NIfTI volume, not a single slice; export one slice as PNG or DICOM"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "a web page (HTML), not an image"
    if head.startswith((b"<?xml", b"<svg")):
        return "an XML or SVG file, not a scan"
    if _is_text(data[:4096]):
        return "a text file, not an image"
    return "not an image this app can read"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


# --- JPEG, PNG, BMP, TIFF ---------------------------------------------------------------------


def _read_image(data: bytes, kind: str, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a JPEG, PNG, BMP or TIFF -> (uint8 HxW or HxWx3, meta)."""
    img = _open_image(data, kind, label)
    frame, frames = _seek_middle_frame(img, kind, label)
    _check_size(img.size, label)
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
        raise _damaged(label, kind) from exc


def _seek_middle_frame(img: Image.Image, kind: str, label: str) -> tuple[int, int]:
    """Move a multi-page image to its middle page -> (frame index, number of frames)."""
    try:
        frames = getattr(img, "n_frames", 1)
        frame = frames // 2
        if frame:
            img.seek(frame)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _damaged(label, kind) from exc
    return frame, frames


def _decode(img: Image.Image, kind: str, label: str) -> None:
    """Decode every pixel now, so that truncated or corrupt files fail here."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise _damaged(label, kind) from exc


def _damaged(label: str, kind: str) -> ScanError:
    return ScanError(f"{label} looks like a {kind} image but is damaged or incomplete, so it "
                     "cannot be read. Download or export it again and upload the new copy.")


def _check_size(size: tuple[int, int], label: str) -> None:
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
    pixels, window = _scale_min_max(values)
    return pixels, {"window": window, "scaling": "min-max"}


def _composite_on_black(img: Image.Image) -> np.ndarray:
    """Image with alpha -> uint8 HxW (from LA) or HxWx3 (from RGBA), colour * alpha / 255."""
    grey = img.mode in ("LA", "La")
    rgba = np.asarray(img.convert("LA" if grey else "RGBA"), dtype=np.uint16)
    colour, alpha = rgba[..., :-1], rgba[..., -1:]
    out = ((colour * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if grey else out


def _scale_min_max(values: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Map an array's finite min..max linearly to uint8 [0, 255] -> (pixels, (min, max))."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8), (0.0, 0.0)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    return _scale(np.where(finite, values, lo), lo, hi), (lo, hi)


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map lo..hi linearly to uint8 [0, 255], clipping outside; all 0 when hi <= lo."""
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --- DICOM ------------------------------------------------------------------------------------


def _read_dicom(data: bytes, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a DICOM image -> (uint8 HxW or HxWx3, meta)."""
    ds = _parse_dicom(data, label)
    if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ScanError(f"{label} is a DICOM file without an image (for example a report or a "
                        "directory listing). Upload a DICOM file that holds an image slice.")
    meta = _dicom_header(ds, label)
    _check_size(meta["size"], label)
    _check_decoder(ds, meta["transfer_syntax"], label)
    frame = _decode_dicom_frame(ds, meta["frame"], label)
    try:
        if meta["photometric"] in ("MONOCHROME1", "MONOCHROME2"):
            pixels, display = _dicom_grey(frame, ds, meta["photometric"])
        else:
            pixels, display = _dicom_colour(frame, ds, meta["photometric"], label)
    except ScanError:
        raise
    except Exception:  # noqa: BLE001 - e.g. a non-numeric slope; messages may quote tag values
        raise _damaged(label, "DICOM") from None
    meta.update(display)
    return pixels, meta


def _parse_dicom(data: bytes, label: str):
    """Parse only the display tags (_DICOM_TAGS) and the file meta; the pixels stay encoded."""
    import pydicom  # imported here: most uploads are not DICOM
    from pydicom import uid

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM",
                             specific_tags=_DICOM_TAGS)
        if "TransferSyntaxUID" not in ds.file_meta:  # bare data set: encoding was guessed
            implicit, little = ds.original_encoding
            ds.file_meta.TransferSyntaxUID = (
                uid.ImplicitVRLittleEndian if implicit
                else uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian)
    except Exception:  # noqa: BLE001 - pydicom raises many types; details may hold tag values
        raise _damaged(label, "DICOM") from None
    return ds


def _dicom_header(ds, label: str) -> dict[str, Any]:
    """Non-identifying facts from the image pixel module: size, depth, frames, syntax."""
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        meta = {
            "format": "DICOM",
            "size": (int(ds.Columns), int(ds.Rows)),
            "bits": int(ds.get("BitsStored") or ds.BitsAllocated),
            "photometric": str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
            "transfer_syntax": ds.file_meta.TransferSyntaxUID.name,
            "modality": str(ds.get("Modality", "")) or None,
            "frames": max(frames, 1),
            "frame": max(frames, 1) // 2,
        }
    except Exception:  # noqa: BLE001
        raise _damaged(label, "DICOM") from None
    return meta


def _check_decoder(ds, syntax_name: str, label: str) -> None:
    """Fail with the pip command to run when no installed plugin decodes the transfer syntax."""
    from pydicom.pixels import get_decoder

    tsyntax = ds.file_meta.TransferSyntaxUID
    try:
        available = get_decoder(tsyntax).is_available
    except NotImplementedError:
        available = False
    if available:
        return
    install = _DICOM_PLUGINS.get(str(tsyntax))
    advice = (f"To read it, install a decoder: {install}" if install else
              "Export it again uncompressed (Explicit VR Little Endian) or as PNG.")
    raise ScanError(f"{label} is a DICOM file compressed with '{syntax_name}', which this "
                    f"installation cannot decode. {advice}")


def _decode_dicom_frame(ds, index: int, label: str) -> np.ndarray:
    """Decode one frame -> HxW or HxWx3 array (YBR converted to RGB), dtype as stored."""
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, index=index)
    except Exception:  # noqa: BLE001 - messages may quote tag values
        raise ScanError(f"{label} is a DICOM file whose image data cannot be decoded (it may "
                        "be damaged or incomplete). Export it again and upload the new copy."
                        ) from None


def _dicom_grey(frame: np.ndarray, ds, photometric: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Monochrome frame -> (uint8 HxW, facts).

    Modality LUT or rescale, then VOI LUT or window, then MONOCHROME1 inverted.
    """
    from pydicom.pixels import apply_modality_lut

    facts: dict[str, Any] = {}
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        facts["rescale"] = (float(ds.RescaleSlope), float(ds.RescaleIntercept))
    values = apply_modality_lut(frame, ds)
    pixels, facts["window"] = _apply_voi(values, ds)
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
        facts["inverted"] = True
    return pixels, facts


def _apply_voi(values: np.ndarray, ds) -> tuple[np.ndarray, dict[str, Any]]:
    """Modality values -> (uint8 HxW, the window used).

    The VOI LUT's or window's output range maps to [0, 255]. Without either, or
    when the file's are invalid (e.g. a width of 0), the frame's min..max does.
    """
    ignored = []
    for step in (_voi_lut, _window):
        try:
            result = step(values, ds)
        except (ValueError, TypeError, ArithmeticError, LookupError, NotImplementedError):
            ignored.append(step.__name__.strip("_"))
            continue
        if result is not None:
            return result
    pixels, (lo, hi) = _scale_min_max(values)
    window: dict[str, Any] = {"kind": "min-max", "min": lo, "max": hi}
    if ignored:
        window["ignored_invalid"] = ignored
    return pixels, window


def _voi_lut(values: np.ndarray, ds) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Apply the first VOI LUT, its output range -> [0, 255]; None when the file has none.

    Tried before the window, as pydicom's apply_voi_lut does by default.
    """
    from pydicom.pixels import apply_voi

    lut = ds.get("VOILUTSequence")
    if not lut or "LUTDescriptor" not in lut[0] or "LUTData" not in lut[0]:
        return None
    count, first = (lut[0].LUTDescriptor[0] or 2**16), lut[0].LUTDescriptor[1]
    out = apply_voi(np.rint(values).astype(np.int64), ds)
    ends = apply_voi(np.arange(first, first + count), ds)
    return _scale(out, float(ends.min()), float(ends.max())), {"kind": "VOI LUT"}


def _window(values: np.ndarray, ds) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Apply the first window (LINEAR, LINEAR_EXACT or SIGMOID) -> [0, 255]; None when absent."""
    from pydicom.pixels import apply_windowing

    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    out = apply_windowing(values, ds)
    with np.errstate(over="ignore"):  # the probe lies far outside any window: its output ends
        ends = apply_windowing(np.array([-1e30, 1e30]), ds)
    return _scale(out, float(ends.min()), float(ends.max())), {"kind": "window", "center": center,
                                                                "width": width}


def _first(value: Any) -> float:
    """First value of a possibly multi-valued DICOM number."""
    many = isinstance(value, Sequence) and not isinstance(value, str)
    return float(value[0] if many else value)


def _dicom_colour(frame: np.ndarray, ds, photometric: str,
                  label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Colour frame (RGB, YBR_*, PALETTE COLOR) -> (uint8 HxWx3, facts)."""
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ScanError(f"{label} is a DICOM image with the unsupported colour model "
                        f"'{photometric}'. Export it as a greyscale or RGB image.")
    if frame.dtype == np.uint8:
        return frame, {}
    bits = 8 * frame.dtype.itemsize if photometric == "PALETTE COLOR" else int(ds.BitsStored)
    return _scale(frame, 0, 2**bits - 1), {"window": {"kind": "full range", "bits": bits}}
