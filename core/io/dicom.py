"""DICOM through pydicom -> uint8 grey or RGB pixels, never reading patient tags.

Rescale slope/intercept (or modality LUT), then the VOI LUT or the window stored
in the file (else the frame's min..max), then MONOCHROME1 is inverted. Only the
elements in ``_DICOM_TAGS`` are parsed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.io.anatomy import anatomy_words
from core.io.common import ScanError, check_size, damaged, scale, scale_min_max

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
#: Free-text elements naming what was scanned (core.quality.input_check looks for anatomy words in them).
_DESCRIPTIONS = ("StudyDescription", "SeriesDescription", "ProtocolName")
_DICOM_TAGS = [
    "Modality", "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
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


def read_dicom(data: bytes, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a DICOM image -> (uint8 HxW or HxWx3, meta)."""
    ds = _parse_dicom(data, label)
    if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ScanError(f"{label} is a DICOM file without an image (for example a report or a "
                        "directory listing). Upload a DICOM file that holds an image slice.")
    meta = _dicom_header(ds, label)
    check_size(meta["size"], label)
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
        raise damaged(label, "DICOM") from None
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
        raise damaged(label, "DICOM") from None
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
            "body_part": str(ds.get("BodyPartExamined", "")) or None,
            # only the anatomy words of the free-text descriptions; the text itself is never kept
            "described_anatomy": anatomy_words(" / ".join(str(ds.get(key, "")) for key in _DESCRIPTIONS)),
            "frames": max(frames, 1),
            "frame": max(frames, 1) // 2,
        }
    except Exception:  # noqa: BLE001
        raise damaged(label, "DICOM") from None
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
    pixels, (lo, hi) = scale_min_max(values)
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
    return scale(out, float(ends.min()), float(ends.max())), {"kind": "VOI LUT"}


def _window(values: np.ndarray, ds) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Apply the first window (LINEAR, LINEAR_EXACT or SIGMOID) -> [0, 255]; None when absent."""
    from pydicom.pixels import apply_windowing

    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    out = apply_windowing(values, ds)
    with np.errstate(over="ignore"):  # the probe lies far outside any window: its output ends
        ends = apply_windowing(np.array([-1e30, 1e30]), ds)
    return scale(out, float(ends.min()), float(ends.max())), {"kind": "window", "center": center,
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
    return scale(frame, 0, 2**bits - 1), {"window": {"kind": "full range", "bits": bits}}
