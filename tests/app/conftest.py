"""Fixtures for the app tests: a tiny model (built once per session) and scans made in memory.

Every scan is real MRI data from ../shared/data, or made from it in memory; nothing is
written into the repository.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from streamlit.runtime.scriptrunner import script_runner  # noqa: E402

#: Streamlit's own post-run clean-up, saved before any app run replaces it.
STREAMLIT_CLEAN_UP = script_runner._clean_problem_modules


@pytest.fixture()
def streamlit_clean_up(monkeypatch):
    """Streamlit's original post-run clean-up back in place (the app must replace it again)."""
    monkeypatch.setattr(script_runner, "_clean_problem_modules", STREAMLIT_CLEAN_UP)
    return STREAMLIT_CLEAN_UP

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "streamlit_app.py"
DATA = REPO.parent / "shared" / "data"
TUMOUR_JPEG = DATA / "br35h" / "yes" / "y0.jpg"
NORMAL_JPEG = DATA / "nav" / "no" / "10 no.jpg"
PATIENT_NAME = "Doe^Jane"  # planted in the DICOM fixture; must never reach the page
PATIENT_ID = "PID-0042-SECRET"
BIRTH_DATE = "19700101"


@pytest.fixture(scope="session")
def app_path() -> Path:
    return APP


@pytest.fixture(scope="session")
def patient_tags() -> tuple[str, ...]:
    """Identifying values planted in the DICOM fixture."""
    return (PATIENT_NAME, "Doe", PATIENT_ID, BIRTH_DATE)


def _need_data() -> None:
    if not TUMOUR_JPEG.is_file() or not NORMAL_JPEG.is_file():
        pytest.skip(f"Real scans not found under {DATA} (shared data missing)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 64-px ResNet50 classifier saved with a model card, as the app loads it.

    64 px, not 32: conv5's map is then 2x2 instead of 1x1, so explanations are not blank.
    """
    import keras

    from core.model.classifier import build_model, save_classifier

    directory = tmp_path_factory.mktemp("tiny-model")
    keras.utils.set_random_seed(20261127)  # the same tiny model every run
    model = build_model(weights=None, input_size=64)
    card = {
        "name": "test-model",
        "threshold": 0.5,
        "data": {"train": "Br35H (test fixture)", "validation": "NAV", "test": "MOS"},
        "metrics": {"MOS test": {"auc": 0.5, "auc_ci": [0.45, 0.55], "accuracy": 0.5}},
        "weights": "random initialisation (test fixture)",
    }
    return save_classifier(model, card, directory)


@pytest.fixture()
def model_env(tiny_model_dir, monkeypatch) -> Path:
    """Point the app at the tiny model."""
    monkeypatch.setenv("BRAIN_MRI_MODEL_DIR", str(tiny_model_dir))
    return tiny_model_dir


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    _need_data()
    return TUMOUR_JPEG.read_bytes()


@pytest.fixture(scope="session")
def normal_jpeg_bytes() -> bytes:
    _need_data()
    return NORMAL_JPEG.read_bytes()


@pytest.fixture(scope="session")
def png_bytes(normal_jpeg_bytes) -> bytes:
    """A real scan re-encoded as PNG (in memory)."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(normal_jpeg_bytes)).convert("L").save(buffer, format="PNG")
    return buffer.getvalue()


def _dicom(pixels: np.ndarray | None, transfer_syntax: str, pixel_data: bytes | None = None) -> bytes:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    rows, cols = (pixels.shape if pixels is not None else (64, 64))
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixel_data is None:
        ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
    else:
        ds.PixelData = pixel_data
        ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def dicom_bytes(jpeg_bytes) -> bytes:
    """An uncompressed 12-bit MR DICOM made from a real scan, with planted patient tags."""
    from pydicom.uid import ExplicitVRLittleEndian

    pixels = np.asarray(Image.open(io.BytesIO(jpeg_bytes)).convert("L"))
    return _dicom(pixels, ExplicitVRLittleEndian)


@pytest.fixture(scope="session")
def compressed_dicom_bytes() -> bytes:
    """A JPEG-LS DICOM: no decoder for it is installed."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    fragment = b"\xff\xd8\xff\xf7" + bytes(200) + b"\xff\xd9"  # JPEG-LS start of frame, no real data
    return _dicom(None, JPEGLSLossless, encapsulate([fragment]))


@pytest.fixture(scope="session")
def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


@pytest.fixture(scope="session")
def truncated_jpeg_bytes(jpeg_bytes) -> bytes:
    return jpeg_bytes[: len(jpeg_bytes) * 2 // 5]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.fixture(scope="session")
def bomb_png_bytes() -> bytes:
    """A 60000 x 60000 grey PNG header (3.6 gigapixels) in a few hundred bytes: a decompression bomb."""
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 60001 * 4)  # a few rows; the rest is never reached
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b""))
