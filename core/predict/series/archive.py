"""Uploads to (name, bytes) files: a .zip unpacked in memory under limits, files read from disk, safe names."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from typing import Iterable

from core.io import ScanError
from core.io.sniff import read_bytes

#: Limits on a .zip upload: members (directories not counted) and their total uncompressed size.
MAX_ZIP_FILES = 2000


MAX_ZIP_BYTES = 512 * 2**20


File = tuple[str, bytes]


def expand_upload(name: str, data: bytes, max_files: int = MAX_ZIP_FILES,
                  max_bytes: int = MAX_ZIP_BYTES) -> list[File]:
    """One upload -> its files as (name, bytes): a .zip's members in archive order, else [(name, data)].

    Members are named '<zip name>/<path in the archive>'; directories and
    macOS/hidden entries are skipped; nothing is written to disk, so member
    paths ('../x', '/etc/x') are only labels. Raises ScanError for a damaged or
    encrypted archive, an empty one, or one over `max_files` members or
    `max_bytes` uncompressed bytes (checked from the directory before anything
    is decompressed, and again on the bytes actually read).
    """
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return [(name, data)]
    label = f"'{name}'"
    if _declared_entries(data) > 4 * max_files:  # before zipfile builds an object per entry
        raise ScanError(_too_many(label, _declared_entries(data), max_files))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if _wanted(info)]
            _check_zip_limits(members, label, max_files, max_bytes)
            return _read_members(archive, members, name, label, max_bytes)
    except ScanError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError):
        raise ScanError(f"{label} is a damaged or unsupported ZIP archive, so it cannot be unpacked. "
                        "Create the archive again (plain ZIP, no password) and upload it.") from None
    except NotImplementedError:
        raise ScanError(f"{label} uses a ZIP compression method this app cannot read. Create the "
                        "archive again with ordinary (deflate) compression.") from None


def _wanted(info: zipfile.ZipInfo) -> bool:
    """False for directories and the hidden files archivers add (__MACOSX/, .DS_Store, ._name)."""
    parts = info.filename.replace("\\", "/").split("/")
    return not info.is_dir() and parts[0] != "__MACOSX" and not parts[-1].startswith(".")


def _check_zip_limits(members: list[zipfile.ZipInfo], label: str, max_files: int, max_bytes: int) -> None:
    if not members:
        raise ScanError(f"{label} is a ZIP archive with no files in it. Put the DICOM files of the "
                        "series (or the scans) in the archive and upload it again.")
    if len(members) > max_files:
        raise ScanError(_too_many(label, len(members), max_files))
    if any(info.flag_bits & 0x1 for info in members):
        raise ScanError(f"{label} is password-protected. Create the archive again without a password.")
    declared = sum(info.file_size for info in members)
    if declared > max_bytes:
        raise ScanError(_zip_too_large(label, declared, max_bytes))


def _declared_entries(data: bytes) -> int:
    """The entry count in a ZIP's end-of-central-directory record (ZIP64 too); 0 when it has none."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return 0
    count = int.from_bytes(data[end + 10 : end + 12], "little")
    zip64 = data.rfind(b"PK\x06\x06", 0, end)
    if count == 0xFFFF and zip64 >= 0 and len(data) >= zip64 + 40:
        count = int.from_bytes(data[zip64 + 32 : zip64 + 40], "little")
    return count


def _too_many(label: str, count: int, max_files: int) -> str:
    return (f"{label} holds {count} files; the limit is {max_files}. Upload one series at a time, "
            "or fewer slices.")


def _zip_too_large(label: str, size: int, max_bytes: int) -> str:
    return (f"{label} unpacks to {size / 2**20:.0f} MB or more; the limit is {max_bytes / 2**20:.0f} MB. "
            "Upload one series at a time, or fewer slices.")


def _read_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], name: str, label: str,
                  max_bytes: int) -> list[File]:
    """Each member's bytes, never reading more than `max_bytes` in all (a lying directory cannot pass)."""
    files, total = [], 0
    for info in members:
        with archive.open(info) as member:
            content = member.read(max_bytes - total + 1)
        total += len(content)
        if total > max_bytes:
            raise ScanError(_zip_too_large(label, total, max_bytes))
        files.append((f"{name}/{info.filename.lstrip('/')}", content))
    return files


def read_for_series(paths: Iterable[str | os.PathLike]) -> tuple[list[File], list[tuple[str, str]]]:
    """Files on disk -> ((path, bytes) with each .zip expanded in memory, (path, error) for files that failed).

    A file over the scan size limit, unreadable, or a refused .zip (see
    expand_upload) goes to the errors; the others are still returned.
    """
    files: list[File] = []
    failed: list[tuple[str, str]] = []
    for path in paths:
        try:
            files += expand_upload(str(path), read_bytes(path, f"'{path}'"))
        except ScanError as error:
            failed.append((str(path), str(error)))
    return files, failed


def safe_relative(name: str) -> str:
    """A name as a relative POSIX path that stays inside any folder it is joined to.

    '/data/x.dcm' -> 'data/x.dcm', 'up.zip/../../a.dcm' -> 'up.zip/a.dcm', 'C:\\s\\b.dcm' -> 'C/s/b.dcm':
    for heatmap files named after slices and zip members.
    """
    parts = [part.strip().rstrip(":") for part in name.replace("\\", "/").split("/")]
    kept = [part for part in parts if part not in ("", ".", "..")]
    return "/".join(kept) or "scan"
