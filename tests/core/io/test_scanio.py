"""Reading scans (core/io.py): every format and mode, every source type, DICOM, and bad input."""

from __future__ import annotations

import io
import logging
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder

from core.io import MAX_PIXELS, MIN_SIDE, Scan, ScanError, read_scan

# A non-square test pattern (W=64, H=48) whose every pixel differs from its mirror
# images, so a wrong orientation or a swapped axis cannot pass.
H, W = 48, 64
_y, _x = np.mgrid[0:H, 0:W]
GREY = ((_x * 3 + _y * 2) % 256).astype(np.uint8)
RGB = np.dstack([GREY, 255 - GREY, ((_x * 4) % 256).astype(np.uint8)])
# Large flat blocks survive JPEG almost unchanged, so JPEG pixels can be compared too.
BLOCKS = np.kron(np.array([[30, 200, 90, 160], [250, 10, 120, 60], [80, 140, 220, 40]], np.uint8),
                 np.ones((16, 16), np.uint8))  # 48x64
SECRET = "SECRET"


def encode(array: np.ndarray, fmt: str, mode: str | None = None, **params) -> bytes:
    """Pillow-encode an array (optionally converted to `mode`) -> bytes."""
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_with_header(width: int, height: int, idat: bytes = b"\x00" * 64) -> bytes:
    """A tiny PNG whose IHDR claims width x height (grey, 8 bits); the IDAT is `idat`."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- formats and modes ------------------------------------------------------------------------

I16 = (GREY.astype(np.uint16) * 16 + 1000)  # 1000..5080, 16-bit
I16_EXPECTED = np.rint((I16 - 1000.0) * 255 / (I16.max() - 1000.0)).astype(np.uint8)
ALPHA = ((_x * 4) % 256).astype(np.uint8)  # 0 (transparent) .. 252
RGBA = np.dstack([RGB, ALPHA])
RGBA_EXPECTED = ((RGB.astype(np.uint16) * ALPHA[..., None] + 127) // 255).astype(np.uint8)
LA_EXPECTED = ((GREY.astype(np.uint16) * ALPHA + 127) // 255).astype(np.uint8)
PALETTE = Image.fromarray(RGB).quantize(16)
PALETTE_EXPECTED = np.asarray(PALETTE.convert("RGB"))


def _palette_png(transparent: int | None = None) -> bytes:
    buf = io.BytesIO()
    params = {} if transparent is None else {"transparency": transparent}
    PALETTE.save(buf, "PNG", **params)
    return buf.getvalue()


def _la_png() -> bytes:
    buf = io.BytesIO()
    Image.merge("LA", [Image.fromarray(GREY), Image.fromarray(ALPHA)]).save(buf, "PNG")
    return buf.getvalue()


def _multipage_tiff() -> bytes:
    pages = [Image.fromarray(GREY // (k + 1)) for k in range(5)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _palette_transparent_expected() -> np.ndarray:
    rgba = np.asarray(PALETTE.convert("RGBA")).copy()
    rgba[np.asarray(PALETTE) == 3, 3] = 0
    return ((rgba[..., :3].astype(np.uint16) * rgba[..., 3:] + 127) // 255).astype(np.uint8)


# (id, file bytes, expected pixels, max mean abs error, expected meta subset)
FORMAT_CASES = [
    ("jpeg-grey", encode(BLOCKS, "JPEG", quality=95), BLOCKS, 2.0, {"format": "JPEG", "mode": "L"}),
    ("jpeg-rgb", encode(np.dstack([BLOCKS] * 3), "JPEG", quality=95), np.dstack([BLOCKS] * 3), 3.0,
     {"format": "JPEG", "mode": "RGB"}),
    ("jpeg-cmyk", encode(np.dstack([BLOCKS] * 3), "JPEG", mode="CMYK", quality=95),
     np.dstack([BLOCKS] * 3), 3.0, {"format": "JPEG", "mode": "CMYK"}),
    ("png-grey8", encode(GREY, "PNG"), GREY, 0, {"format": "PNG", "mode": "L", "bits": 8}),
    ("png-grey16", encode(I16, "PNG"), I16_EXPECTED, 0,
     {"format": "PNG", "bits": 16, "window": (1000.0, float(I16.max())), "scaling": "min-max"}),
    ("png-rgb", encode(RGB, "PNG"), RGB, 0, {"format": "PNG", "mode": "RGB"}),
    ("png-rgba", encode(RGBA, "PNG"), RGBA_EXPECTED, 0,
     {"format": "PNG", "mode": "RGBA", "alpha": "composited on black"}),
    ("png-la", _la_png(), LA_EXPECTED, 0, {"format": "PNG", "mode": "LA", "alpha": "composited on black"}),
    ("png-palette", _palette_png(), PALETTE_EXPECTED, 0, {"format": "PNG", "mode": "P"}),
    ("png-palette-transparent", _palette_png(transparent=3), _palette_transparent_expected(), 0,
     {"format": "PNG", "mode": "P", "alpha": "composited on black"}),
    ("png-1bit", encode(GREY > 127, "PNG"), np.where(GREY > 127, 255, 0).astype(np.uint8), 0,
     {"format": "PNG", "mode": "1", "bits": 1}),
    ("bmp-grey", encode(GREY, "BMP"), GREY, 0, {"format": "BMP"}),
    ("bmp-rgb", encode(RGB, "BMP"), RGB, 0, {"format": "BMP", "mode": "RGB"}),
    ("tiff-grey8", encode(GREY, "TIFF"), GREY, 0, {"format": "TIFF", "mode": "L"}),
    ("tiff-grey16", encode(I16, "TIFF"), I16_EXPECTED, 0, {"format": "TIFF", "bits": 16}),
    ("tiff-rgb-lzw", encode(RGB, "TIFF", compression="tiff_lzw"), RGB, 0, {"format": "TIFF"}),
    ("tiff-float", encode(I16.astype(np.float32), "TIFF"), I16_EXPECTED, 0,
     {"format": "TIFF", "mode": "F", "bits": 32}),
    ("tiff-5-pages", _multipage_tiff(), GREY // 3, 0, {"format": "TIFF", "frames": 5, "frame": 2}),
]


@pytest.mark.parametrize(("data", "expected", "tolerance", "meta"),
                         [case[1:] for case in FORMAT_CASES], ids=[case[0] for case in FORMAT_CASES])
def test_formats_and_modes_give_uint8_grey_or_rgb(data, expected, tolerance, meta):
    scan = read_scan(data, name="scan")
    assert isinstance(scan, Scan)
    assert scan.pixels.dtype == np.uint8
    assert scan.pixels.shape == expected.shape
    error = np.abs(scan.pixels.astype(float) - expected).mean()
    assert error <= tolerance, f"mean abs error {error:.2f}"
    assert scan.meta["size"] == (W, H)
    assert scan.meta["bytes"] == len(data)
    assert {key: scan.meta.get(key) for key in meta} == meta


@pytest.mark.parametrize(("orientation", "upright"), [
    (1, lambda a: a),
    (2, np.fliplr),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # stored rotated: display needs 90 deg clockwise
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied(orientation, upright):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(BLOCKS, "JPEG", quality=95, exif=exif.tobytes())
    scan = read_scan(data)
    expected = upright(BLOCKS)
    assert scan.pixels.shape == expected.shape
    assert np.abs(scan.pixels.astype(float) - expected).mean() < 2.0
    assert scan.meta["orientation"] == orientation
    assert scan.meta["size"] == (W, H)  # the stored size, before turning


def test_content_decides_the_format_not_the_extension(tmp_path):
    png = encode(GREY, "PNG")
    path = tmp_path / "scan.jpg"
    path.write_bytes(png)
    for source in (path, png):
        scan = read_scan(source, name="scan.jpg")
        assert scan.meta["format"] == "PNG"
        np.testing.assert_array_equal(scan.pixels, GREY)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "str-path", "pathlib",
                                  "open-file", "bytesio"])
def test_every_source_type_gives_the_same_scan(kind, tmp_path):
    data = encode(RGB, "PNG")
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    if kind == "open-file":
        with open(path, "rb") as f:
            scan = read_scan(f)
    else:
        source = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data),
                  "str-path": str(path), "pathlib": path, "bytesio": io.BytesIO(data)}[kind]
        scan = read_scan(source)
    np.testing.assert_array_equal(scan.pixels, RGB)
    assert scan.meta["format"] == "PNG"


def test_path_errors_name_the_file_not_its_folders(tmp_path):
    folder = tmp_path / "Patient Doe"
    folder.mkdir()
    path = folder / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ScanError) as caught:
        read_scan(path)
    assert "'notes.txt'" in str(caught.value)
    assert "Patient Doe" not in str(caught.value)
    with pytest.raises(ScanError, match="'missing.png' could not be opened"):
        read_scan(tmp_path / "missing.png")


def test_unnamed_errors_say_this_file():
    with pytest.raises(ScanError, match="^This file is a text file"):
        read_scan(b"just some words\n")


def test_smallest_accepted_side_is_min_side():
    assert read_scan(encode(np.zeros((MIN_SIDE, MIN_SIDE), np.uint8), "PNG")).pixels.shape == (MIN_SIDE,) * 2
    with pytest.raises(ScanError, match="too small"):
        read_scan(encode(np.zeros((MIN_SIDE, MIN_SIDE - 1), np.uint8), "PNG"))


def test_not_a_python_source_is_a_type_error():
    with pytest.raises(TypeError, match="Received: int"):
        read_scan(42)


# --- bad input --------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("scan.png", b"not really")
    return buf.getvalue()


def _corrupt_png_idat() -> bytes:
    data = bytearray(encode(RGB, "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 40:start + 80] = bytes(range(40))  # IDAT body damaged, CRC now wrong
    return bytes(data)


def _corrupt_jpeg_tables() -> bytes:
    data = bytearray(encode(BLOCKS, "JPEG"))
    data[20:200] = b"\x00" * 180  # quantisation/Huffman tables wiped
    return bytes(data)


JPEG_BYTES = encode(RGB, "JPEG")
PNG_BYTES = encode(RGB, "PNG")

# (id, file bytes, name given, fragment the message must hold)
BAD_INPUTS = [
    ("empty", b"", "scan.png", "is empty"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "report.pdf",
     "is a PDF document, not an image. Upload a JPEG, PNG, BMP, TIFF or DICOM scan."),
    ("text", b"Patient has a headache.\nMRI tomorrow.\n", "notes.png", "is a text file"),
    ("zip", _zip(), "scans.zip", "ZIP archive"),
    ("elf-renamed-png", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120, "scan.png", "program (ELF"),
    ("exe-renamed-jpg", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 120, "scan.jpg", "Windows program"),
    ("text-starting-bm", b"BMI report: 24.5\nweight 70 kg\n", "bmi.bmp", "is a text file"),
    ("html", b"<!DOCTYPE html>\n<html><body>404</body></html>", "scan.jpg", "web page"),
    ("gif", encode(GREY, "GIF"), "scan.gif", "GIF image, a format this app does not read"),
    ("random-binary", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)),
     "scan.bmp", "not an image this app can read"),
    ("truncated-jpeg", JPEG_BYTES[: len(JPEG_BYTES) // 2], "cut.jpg", "JPEG image but is damaged"),
    ("truncated-png", PNG_BYTES[: len(PNG_BYTES) // 2], "cut.png", "PNG image but is damaged"),
    ("png-header-only", PNG_BYTES[:40], "cut.png", "PNG image but is damaged"),
    ("corrupt-png-middle", _corrupt_png_idat(), "bad.png", "PNG image but is damaged"),
    ("corrupt-jpeg-tables", _corrupt_jpeg_tables(), "bad.jpg", "JPEG image but is damaged"),
    ("truncated-bmp", encode(RGB, "BMP")[:1000], "cut.bmp", "BMP image but is damaged"),
    ("truncated-tiff", encode(RGB, "TIFF")[:1000], "cut.tiff", "TIFF image but is damaged"),
    ("too-small", encode(np.zeros((20, 20), np.uint8), "PNG"), "tiny.png", "too small to show a brain"),
    ("too-small-strip", encode(np.zeros((10, 500), np.uint8), "PNG"), "strip.png", "only 500 x 10 pixels"),
    ("bomb-50000-square", png_with_header(50_000, 50_000), "bomb.png", "megapixel"),
    # Between our limit and Pillow's: only the header check can reject it, and the
    # garbage IDAT proves no decoding happened (decoding would say "damaged").
    ("over-limit-header", png_with_header(8_000, 6_000), "big.png", "8000 x 6000 pixels"),
]


@pytest.mark.parametrize(("data", "name", "fragment"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_scan_error_naming_the_file(data, name, fragment):
    with pytest.raises(ScanError) as caught:
        read_scan(data, name=name)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert f"'{name}'" in message
    assert fragment in message
    assert "Traceback" not in message and "Error" not in message  # written for people, not programmers


def test_declared_huge_image_is_rejected_from_its_header_without_decoding(monkeypatch):
    assert 8_000 * 6_000 > MAX_PIXELS

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for width, height in [(50_000, 50_000), (8_000, 6_000), (MAX_PIXELS // 1000 + 1, 1000)]:
        with pytest.raises(ScanError, match="megapixel"):
            read_scan(png_with_header(width, height), name="big.png")


def test_huge_bmp_header_is_rejected():
    header = bytearray(encode(np.zeros((40, 40), np.uint8), "BMP"))
    struct.pack_into("<ii", header, 18, 30_000, 30_000)
    with pytest.raises(ScanError, match="megapixel"):
        read_scan(bytes(header), name="big.bmp")


# --- DICOM ------------------------------------------------------------------------------------


def dicom(pixels: np.ndarray | None, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
          syntax: str = uid.ExplicitVRLittleEndian, preamble: bool = True, **tags) -> bytes:
    """A DICOM MR slice with planted patient tags -> file bytes.

    pixels: HxW, FxHxW (multi-frame) or HxWx3 (RGB); None for a data set without pixel data.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = uid.MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = uid.MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = f"{SECRET}^NAME"
    ds.PatientID = f"{SECRET}-ID-42"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = f"{SECRET} HOSPITAL"
    ds.ReferringPhysicianName = f"{SECRET}^DOCTOR"
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric, bits_stored or 8 * pixels.dtype.itemsize)
    for key, value in tags.items():
        setattr(ds, key, value)
    if syntax == uid.RLELossless:
        ds.compress(uid.RLELossless)
    elif syntax != uid.ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
    else:
        del ds.file_meta
        ds.save_as(buf, implicit_vr=True, little_endian=True)
    return buf.getvalue()


STORED = (np.arange(H * W).reshape(H, W) % 4096).astype(np.uint16)  # 12-bit values, 0..3071


def test_dicom_rescale_then_window():
    # Modality values 2*v - 1000; window 3000 +- 1000 -> 2000 maps to 0, 4000 to 255.
    data = dicom(STORED, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000,
                 WindowCenter=3000, WindowWidth=2000)
    scan = read_scan(data, name="slice.dcm")
    modality = STORED * 2.0 - 1000
    expected = np.clip(np.rint(((modality - 2999.5) / 1999 + 0.5) * 255), 0, 255)
    assert scan.pixels.dtype == np.uint8 and scan.pixels.shape == (H, W)
    assert np.abs(scan.pixels.astype(float) - expected).max() <= 1
    assert scan.pixels[modality <= 1999].max() == 0 and scan.pixels[modality >= 4001].min() == 255
    assert scan.meta["rescale"] == (2.0, -1000.0)
    assert scan.meta["window"] == {"kind": "window", "center": 3000.0, "width": 2000.0}
    assert scan.meta["format"] == "DICOM" and scan.meta["size"] == (W, H)
    assert scan.meta["photometric"] == "MONOCHROME2"
    assert scan.meta["transfer_syntax"] == "Explicit VR Little Endian"
    assert scan.meta["bits"] == 12 and scan.meta["modality"] == "MR"


def test_dicom_without_window_uses_min_max():
    scan = read_scan(dicom(STORED + 100, bits_stored=12))
    expected = np.rint((STORED.astype(float)) * 255 / STORED.max())
    assert np.abs(scan.pixels.astype(float) - expected).max() <= 1
    assert scan.meta["window"] == {"kind": "min-max", "min": 100.0, "max": float(STORED.max() + 100)}
    assert "rescale" not in scan.meta


def test_dicom_sigmoid_window_spans_0_to_255():
    scan = read_scan(dicom(STORED, bits_stored=12, WindowCenter=1536, WindowWidth=300,
                           VOILUTFunction="SIGMOID"))
    assert scan.pixels[STORED < 1000].max() <= 1 and scan.pixels[STORED > 2100].min() >= 254
    assert 120 <= scan.pixels[STORED == 1536].mean() <= 135


def _window_not_a_number() -> bytes:
    data = dicom(STORED, bits_stored=12, WindowCenter=98765, WindowWidth=10)
    assert data.count(b"98765") == 1
    return data.replace(b"98765", b"abcde")  # pydicom refuses to write it, so patch the bytes


@pytest.mark.parametrize("data", [dicom(STORED, bits_stored=12, WindowCenter=100, WindowWidth=0),
                                  _window_not_a_number()], ids=["width-0", "not-a-number"])
def test_dicom_invalid_window_falls_back_to_min_max(data):
    scan = read_scan(data)
    assert scan.meta["window"]["kind"] == "min-max"
    assert scan.meta["window"]["ignored_invalid"] == ["window"]
    assert scan.pixels.min() == 0 and scan.pixels.max() == 255


def test_dicom_voi_lut_sequence_is_applied():
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = np.arange(4095, -1, -1, dtype="<u2").tobytes()  # an inverting LUT
    data = dicom(STORED, bits_stored=12, VOILUTSequence=[item])
    scan = read_scan(data)
    expected = np.rint((4095 - STORED.astype(float)) * 255 / 4095)
    assert np.abs(scan.pixels.astype(float) - expected).max() <= 1
    assert scan.meta["window"] == {"kind": "VOI LUT"}


def test_dicom_monochrome1_is_inverted():
    mono2 = read_scan(dicom(STORED, bits_stored=12, WindowCenter=1500, WindowWidth=3000))
    mono1 = read_scan(dicom(STORED, bits_stored=12, photometric="MONOCHROME1",
                            WindowCenter=1500, WindowWidth=3000))
    np.testing.assert_array_equal(mono1.pixels, 255 - mono2.pixels)
    assert mono1.meta["inverted"] is True and "inverted" not in mono2.meta


def test_dicom_multi_frame_gives_the_middle_frame():
    frames = np.zeros((5, H, W), np.uint16)
    for k in range(5):
        frames[k, 10:20, 10 * k:10 * k + 10] = 1000  # a bright block whose place names the frame
    scan = read_scan(dicom(frames, bits_stored=12))
    assert scan.meta["frames"] == 5 and scan.meta["frame"] == 2
    assert scan.pixels.shape == (H, W)
    assert scan.pixels[10:20, 20:30].min() == 255 and scan.pixels.sum() == 255 * 100


def test_dicom_rgb_is_rgb_uint8():
    scan = read_scan(dicom(RGB, photometric="RGB"))
    np.testing.assert_array_equal(scan.pixels, RGB)
    assert scan.meta["photometric"] == "RGB"


def test_dicom_rle_lossless_decodes_like_uncompressed():
    plain = read_scan(dicom(STORED, bits_stored=12))
    rle = read_scan(dicom(STORED, bits_stored=12, syntax=uid.RLELossless))
    np.testing.assert_array_equal(rle.pixels, plain.pixels)
    assert rle.meta["transfer_syntax"] == "RLE Lossless"


def test_dicom_jpeg_baseline_decodes_with_pillow():
    ds_bytes = dicom(BLOCKS)  # 8-bit grey, then replace the pixel data by a JPEG
    ds = _load(ds_bytes)
    ds.PixelData = encapsulate([encode(BLOCKS, "JPEG", quality=95)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
    scan = read_scan(_save(ds))
    assert scan.meta["transfer_syntax"] == "JPEG Baseline (Process 1)"
    stretched = (BLOCKS - 10.0) * 255 / 240  # no window in the file: min..max (10..250)
    assert np.abs(scan.pixels.astype(float) - stretched).mean() < 2.0


def test_dicom_preamble_less_is_read():
    scan = read_scan(dicom(STORED, bits_stored=12, preamble=False))
    assert scan.meta["format"] == "DICOM"
    assert scan.meta["transfer_syntax"] == "Implicit VR Little Endian"
    assert scan.pixels.shape == (H, W)


def _load(data: bytes) -> Dataset:
    import pydicom
    return pydicom.dcmread(io.BytesIO(data))


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _compressed_without_plugin(syntax: str) -> bytes:
    """Encapsulated bytes under a syntax no installed plugin decodes (nothing here encodes it)."""
    ds = _load(dicom(STORED, bits_stored=12))
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return _save(ds)


def _truncated_pixels() -> bytes:
    data = dicom(STORED, bits_stored=12)
    return data[: len(data) - 1000]


def _corrupt_file_meta() -> bytes:
    data = dicom(STORED, bits_stored=12)
    return data[:136] + b"ML" + data[138:]  # (0002,0000) VR 'UL' -> unknown 'ML': pydicom raises


def _huge_header() -> bytes:
    ds = _load(dicom(STORED, bits_stored=12))
    ds.Rows = ds.Columns = 10_000  # the pixel data stays tiny: nothing may be decoded
    return _save(ds)


def _no_plugin(syntax: uid.UID) -> pytest.MarkDecorator:
    """Skip a 'missing plugin' case where a decoder for `syntax` happens to be installed."""
    return pytest.mark.skipif(get_decoder(syntax).is_available,
                              reason=f"a decoder for {syntax.name} is installed")


# (id, file bytes, fragments the message must hold[, marks])
BAD_DICOM = [
    ("no-pixel-data", dicom(None), ["DICOM file without an image"]),
    ("jpeg-lossless-no-plugin", _compressed_without_plugin(uid.JPEGLosslessSV1),
     ["JPEG Lossless, Non-Hierarchical, First-Order Prediction", "pip install pylibjpeg pylibjpeg-libjpeg"],
     _no_plugin(uid.JPEGLosslessSV1)),
    ("htj2k-no-plugin", _compressed_without_plugin(uid.HTJ2KLossless),
     ["High-Throughput JPEG 2000", "pip install pylibjpeg pylibjpeg-openjpeg"],
     _no_plugin(uid.HTJ2KLossless)),
    ("truncated-pixel-data", _truncated_pixels(), ["cannot be decoded"]),
    ("cut-before-pixel-data", dicom(STORED)[:300], ["DICOM file without an image"]),
    ("garbage-after-preamble", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"\x07" * 200,
     ["DICOM file without an image"]),  # pydicom skips what it cannot parse
    ("corrupt-file-meta", _corrupt_file_meta(), ["DICOM image but is damaged"]),
    ("huge-rows-columns", _huge_header(), ["10000 x 10000 pixels", "megapixel"]),
    ("too-small", dicom(np.zeros((16, 16), np.uint16)), ["too small"]),
]


@pytest.mark.parametrize(("data", "fragments"),
                         [pytest.param(*case[1:3], id=case[0], marks=case[3:]) for case in BAD_DICOM])
def test_bad_dicom_is_a_scan_error_without_patient_data(data, fragments, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught_warnings, pytest.raises(ScanError) as caught:
        warnings.simplefilter("always")
        read_scan(data, name="slice.dcm")
    message = str(caught.value)
    assert "'slice.dcm'" in message
    for fragment in fragments:
        assert fragment in message
    # Nothing from pydicom is chained, logged or warned that could quote a tag value.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert SECRET not in message and SECRET not in caplog.text
    assert not any(SECRET in str(w.message) for w in caught_warnings)


def test_dicom_patient_tags_never_reach_meta_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # An invalid date makes pydicom warn with the value if the element is ever parsed.
        data = dicom(STORED, bits_stored=12, WindowCenter=1500, WindowWidth=3000,
                     PatientBirthDate=f"{SECRET}DATE")
    caplog.clear()  # writing the file above logged the invalid date; reading must not
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        scan = read_scan(data, name="s.dcm")
    assert not any(SECRET in str(w.message) for w in caught_warnings)
    text = repr(scan.meta)
    for leaked in (SECRET, "NAME", "19700101", "HOSPITAL", "DOCTOR"):
        assert leaked not in text
    assert SECRET not in caplog.text
    assert set(scan.meta) <= {"format", "size", "bits", "photometric", "transfer_syntax", "modality",
                              "frames", "frame", "rescale", "window", "inverted", "bytes", "body_part",
                              "described_anatomy"}


def test_dicom_descriptions_give_only_their_anatomy_words():
    data = dicom(STORED, bits_stored=12, StudyDescription=f"{SECRET} MRI L-SPINE", SeriesDescription="T2_SAG",
                 ProtocolName=f"KNEE {SECRET}")
    meta = read_scan(data, name="s.dcm").meta
    assert meta["described_anatomy"] == ("KNEE", "SPINE")
    assert SECRET not in repr(meta)
    assert read_scan(dicom(STORED, bits_stored=12), name="t.dcm").meta["described_anatomy"] == ()
