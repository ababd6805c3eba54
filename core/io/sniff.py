"""Bytes in, format out: read the source's bytes and decide the format from the content.

The format is decided by magic bytes, never by the file name (the public data
sets hold PNGs named ``.jpg``); files that are not scans are named in the error.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from core.io.common import ACCEPTED, MAX_BYTES, ScanError

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

def read_bytes(source: bytes | str | os.PathLike | BinaryIO, label: str) -> bytes:
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


def sniff(data: bytes, label: str) -> str:
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
