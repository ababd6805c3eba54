"""core.predict.series: DICOM series from real LGG FLAIR slices (made into DICOM in memory), grouped, ordered, analysed.

Every slice is a real scan from ../shared/data/lgg (one patient's consecutive slices), written as DICOM
in memory with planted patient tags that must never be read; nothing is written into the repository.
"""

from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import core.predict.series.analysis
import core.predict.series.archive
from core.io import ScanError
from core.predict.batch import Row
from core.predict.series import (
    NOT_BRAIN_MRI,
    OK,
    SERIES_TAGS,
    UNREADABLE,
    VOLUME_EDGE,
    VOLUME_EDGE_REASON,
    Series,
    SeriesAnalysis,
    SliceResult,
    analyse_series,
    expand_upload,
    group_series,
    mark_volume_edges,
    read_for_series,
    safe_relative,
    series_pages,
    series_rows,
    slice_ranges,
)

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-0042-SECRET"
PLANTED = (PATIENT_NAME, "Doe", PATIENT_ID, "19700101")
#: One LGG patient; slices 9-14 span normal and tumour slices.
PATIENT = "TCGA_CS_4941_19960909"
OTHER_PATIENT = "TCGA_CS_4943_20000902"
#: An LGG patient whose first and last slices (blank, or almost no brain) the input check refuses.
EDGES_PATIENT = "TCGA_DU_A5TU_19980312"
#: An oblique stack: row and column directions, and their normal (row x column).
OBLIQUE = (1.0, 0.0, 0.0, 0.0, 0.8, -0.6)
NORMAL = np.cross(OBLIQUE[:3], OBLIQUE[3:])


def lgg_slices(shared_data, patient: str, numbers) -> list[np.ndarray]:
    """uint8 256x256 FLAIR slices of one LGG patient, in the given slice numbers' order."""
    found = []
    for number in numbers:
        matches = list((shared_data / "lgg").glob(f"*/{patient}_{number}.png"))
        assert matches, f"lgg slice {patient}_{number}.png not found under {shared_data / 'lgg'}"
        found.append(np.asarray(Image.open(matches[0]).convert("L")))
    return found


def lgg_stack(shared_data, patient: str, series_uid: str) -> list[tuple[str, bytes]]:
    """Every slice of one LGG patient (lgg/manifest.csv) as an MR DICOM series, in slice order (names reversed)."""
    import csv

    with open(shared_data / "lgg" / "manifest.csv", newline="") as handle:
        numbers = sorted(int(row["slice"]) for row in csv.DictReader(handle) if row["patient"] == patient)
    assert numbers, f"{patient} is not in {shared_data / 'lgg' / 'manifest.csv'}"
    return [(f"S/IM{len(numbers) - k:03d}.dcm", make_dicom(pixels, series_uid, position=NORMAL * 3.0 * k))
            for k, pixels in enumerate(lgg_slices(shared_data, patient, numbers))]


def make_dicom(pixels: np.ndarray | None, series_uid: str | None, *, position=None, orientation=OBLIQUE,
               instance: int | None = None, description: str = "AX FLAIR", pixel_data: bytes | None = None) -> bytes:
    """An uncompressed 12-bit MR DICOM slice with planted patient tags (PLANTED)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.Modality = MRImageStorage, "MR"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19700101"
    ds.InstitutionName = "Doe Memorial Hospital"
    if series_uid is not None:
        ds.SeriesInstanceUID, ds.SeriesDescription = series_uid, description
    if position is not None:
        ds.ImagePositionPatient, ds.ImageOrientationPatient = list(position), list(orientation)
    if instance is not None:
        ds.InstanceNumber = instance
    rows, cols = pixels.shape if pixels is not None else (64, 64)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixel_data if pixel_data is not None else (pixels.astype(np.uint16) * 16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def upload(shared_data):
    """A mixed upload: series A (6 slices by position, shuffled, instance numbers reversed), series B
    (3 slices of another patient, instance numbers only), one PNG, one text file.

    Returns (files, expected names of A in true order, expected names of B in order).
    """
    numbers = list(range(9, 15))
    slices_a = lgg_slices(shared_data, PATIENT, numbers)
    files_a = [(f"A/IM{number:04d}.dcm", make_dicom(pixels, "1.2.826.0.1.3680043.8.498.1",
                                                      position=(NORMAL * 5.0 * k + (10, -20, 30)),
                                                      instance=100 - k))
               for k, (number, pixels) in enumerate(zip(numbers, slices_a))]
    slices_b = lgg_slices(shared_data, OTHER_PATIENT, [10, 11, 12])
    files_b = [(f"B/z{3 - k}.dcm", make_dicom(pixels, "1.2.826.0.1.3680043.8.498.2", instance=k + 1))
               for k, pixels in enumerate(slices_b)]
    png = io.BytesIO()
    Image.fromarray(slices_a[0]).save(png, format="PNG")
    extras = [("plain.png", png.getvalue()), ("notes.txt", b"not a scan\n")]
    mixed = files_a + files_b + extras
    random.Random(7).shuffle(mixed)
    return mixed, [name for name, _ in files_a], [name for name, _ in files_b]


def test_groups_orders_and_reports_mixed_series(upload):
    files, order_a, order_b = upload
    groups = group_series(files)
    assert [s.ordered_by for s in groups.series] in (["position", "instance number"],
                                                     ["instance number", "position"])
    by_kind = {s.ordered_by: s for s in groups.series}
    assert [f.name for f in by_kind["position"].files] == order_a  # position wins over reversed instances
    assert [f.name for f in by_kind["instance number"].files] == order_b  # names z3, z2, z1: not by name
    assert by_kind["position"].description == "AX FLAIR"
    assert by_kind["position"].label.startswith("series:") and by_kind["position"].label.endswith("(6 slices)")
    assert sorted(name for name, _ in groups.singles) == ["notes.txt", "plain.png"]
    assert groups.message == "2 series and 2 single slices in this upload: shown separately."
    assert group_series([f for f in files if f[0].startswith(("A/", "B/"))]).message == (
        "2 series in this upload: shown separately.")
    assert group_series([f for f in files if f[0].startswith("A/")]).message is None


def test_file_name_fallback_and_dicom_without_series_uid(shared_data):
    pixels = lgg_slices(shared_data, PATIENT, [12])[0]
    files = [("s/b.dcm", make_dicom(pixels, "1.2.3.4")), ("s/a.dcm", make_dicom(pixels, "1.2.3.4", instance=1)),
             ("loose.dcm", make_dicom(pixels, None, instance=1))]
    groups = group_series(files)
    assert [f.name for f in groups.series[0].files] == ["s/a.dcm", "s/b.dcm"]
    assert groups.series[0].ordered_by == "file name"
    assert [name for name, _ in groups.singles] == ["loose.dcm"]


def test_series_key_hides_the_uid(upload):
    groups = group_series(upload[0])
    for series in groups.series:
        assert len(series.key) == 8 and "1.2.826" not in repr(series) and "1.2.826" not in series.label


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_upload_expands_in_memory(upload, tmp_path):
    files, order_a, _ = upload
    members = {name: data for name, data in files if name.startswith("A/")}
    members.update({"__MACOSX/A/._IM0009.dcm": b"junk", "A/.DS_Store": b"junk", "../../evil.dcm": b"x"})
    expanded = expand_upload("series.zip", _zip(members))
    names = [name for name, _ in expanded]
    assert "series.zip/../../evil.dcm" in names and not any("MACOSX" in n or "DS_Store" in n for n in names)
    groups = group_series(expanded)
    assert [f.name for f in groups.series[0].files] == [f"series.zip/{name}" for name in order_a]
    assert not (tmp_path.parent / "evil.dcm").exists()
    assert expand_upload("one.dcm", members[order_a[0]]) == [("one.dcm", members[order_a[0]])]
    path, broken = tmp_path / "series.zip", tmp_path / "broken.zip"
    path.write_bytes(_zip({order_a[0]: members[order_a[0]]}))
    broken.write_bytes(b"PK\x03\x04" + bytes(100))
    read, failed = read_for_series([path, broken, tmp_path / "missing.dcm"])
    assert [name for name, _ in read] == [f"{path}/{order_a[0]}"]
    assert [name for name, _ in failed] == [str(broken), str(tmp_path / "missing.dcm")]
    assert "damaged or unsupported ZIP" in failed[0][1] and "could not be opened" in failed[1][1]


@pytest.mark.parametrize("name, relative", [
    ("/data/scans/x.dcm", "data/scans/x.dcm"), ("up.zip/../../a.dcm", "up.zip/a.dcm"),
    ("C:\\s\\b.dcm", "C/s/b.dcm"), ("..", "scan"), ("folder/./IM1", "folder/IM1"),
])
def test_safe_relative_names_stay_inside_a_folder(name, relative, tmp_path):
    assert safe_relative(name) == relative
    assert (tmp_path / safe_relative(name)).resolve().is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize("archive, limits, message", [
    (_zip({f"f{i}.dcm": b"x" for i in range(4)}), {"max_files": 3}, "holds 4 files; the limit is 3"),
    (_zip({f"f{i}.dcm": b"" for i in range(5000)}), {}, "holds 5000 files; the limit is 2000"),
    (_zip({"bomb.dcm": bytes(20 * 2**20)}), {"max_bytes": 10 * 2**20}, "the limit is 10 MB"),
    (_zip({}), {}, "no files in it"),
    (b"PK\x03\x04" + bytes(100), {}, "damaged or unsupported ZIP"),
])
def test_zip_upload_refusals(archive, limits, message):
    with pytest.raises(ScanError, match=message):
        expand_upload("upload.zip", archive, **limits)


def test_zip_of_very_many_entries_is_refused_before_it_is_parsed(monkeypatch):
    archive = _zip({f"f{i}.dcm": b"" for i in range(5000)})
    monkeypatch.setattr(core.predict.series.archive.zipfile, "ZipFile",
                        lambda *a, **k: pytest.fail("archive was parsed"))
    with pytest.raises(ScanError, match="holds 5000 files; the limit is 1000"):
        expand_upload("many.zip", archive, max_files=1000)


def test_zip_bomb_is_refused_before_decompressing():
    """20 MB of zeros packs into ~20 KB; the directory's sizes refuse it before anything is inflated."""
    archive = _zip({f"bomb{i}.dcm": bytes(20 * 2**20) for i in range(2)})
    assert len(archive) < 100_000
    with pytest.raises(ScanError, match="unpacks to 40 MB"):
        expand_upload("bomb.zip", archive, max_bytes=30 * 2**20)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A 32-px ResNet50 classifier (random weights) saved with a card and loaded as the app does."""
    import keras

    from core.model.classifier import build_model, load_classifier, save_classifier

    keras.utils.set_random_seed(20261127)
    directory = save_classifier(build_model(weights=None, input_size=32),
                                {"name": "tiny-test-model", "threshold": 0.5},
                                tmp_path_factory.mktemp("tiny-series-model"))
    return load_classifier(directory)


def test_analyse_series_batches_and_summarises(upload, tiny_classifier, monkeypatch):
    files, order_a, _ = upload
    files = [f for f in files if f[0].startswith("A/")]
    files.append(("A/broken.dcm", make_dicom(None, "1.2.826.0.1.3680043.8.498.1", position=NORMAL * 100,
                                             pixel_data=b"\x00" * 10)))
    calls = []
    original = tiny_classifier.predict_prepared
    monkeypatch.setattr(tiny_classifier, "predict_prepared", lambda scans: calls.append(len(scans)) or
                        original(scans))
    analysis = analyse_series(tiny_classifier, group_series(files).series[0])
    assert calls == [6]  # one batched call over every readable slice
    assert [s.name for s in analysis.slices] == order_a + ["A/broken.dcm"]
    assert [s.index for s in analysis.slices] == list(range(1, 8))
    assert analysis.slices[-1].probability is None and "cannot be decoded" in analysis.slices[-1].error
    probabilities = [s.probability for s in analysis.read]
    assert analysis.peak.probability == max(probabilities)
    assert analysis.above_threshold == sum(p >= 0.5 for p in probabilities)
    ranked = analysis.most_suspicious(3)
    assert [s.probability for s in ranked] == sorted(probabilities, reverse=True)[:3]
    assert analysis.slices[-1].status == "unreadable" and analysis.slices[-1].label(0.5) is None
    assert analysis.summary().startswith("7 slices; max ") and analysis.summary().endswith("; 1 not analysed")


def test_series_rows_for_the_command_line(upload, tiny_classifier):
    files = upload[0]
    seen = []
    rows = list(series_rows(tiny_classifier, files, on_scan=lambda row, result: seen.append(result),
                            failed=[("gone.dcm", "could not be opened")], row_type=Row))
    summaries = [row for row in rows if row.path.startswith("series:")]
    assert len(summaries) == 2 and len(rows) == 6 + 3 + 2 + 2 + 1
    assert (rows[-1].path, rows[-1].error, rows[-1].probability) == ("gone.dcm", "could not be opened", None)
    assert rows[6] is summaries[0] and "(6 slices; max at slice " in rows[6].path
    assert rows[6].probability == max(row.probability for row in rows[:6])
    assert rows[6].box is None and rows[6].label in ("tumour", "no_tumour")
    by_path = {row.path: row for row in rows}
    assert by_path["notes.txt"].error and by_path["plain.png"].probability is not None
    assert getattr(by_path["notes.txt"], "status", "unreadable") == "unreadable"
    assert len(seen) == 6 + 3 + 1 and all(len(result.digest) == 64 and result.scan for result in seen)
    assert [result.name for result in seen[:6]] == [row.path for row in rows[:6]]
    text = "\n".join(",".join(row.as_csv()) for row in rows)
    assert not any(value in text for value in PLANTED)


@dataclass
class OldRow:
    """The command line's row before assessments: no status, spread or raw columns."""

    path: str
    probability: float | None = None
    label: str = ""
    threshold: float | None = None
    box: tuple | None = None
    fell_back: bool | None = None
    heatmap: str = ""
    error: str = ""


def test_series_rows_with_assessment_input_check_and_another_row_type(upload, tiny_classifier):
    """Assessed slices report the assessment's numbers and verdict; refused slices get no probability."""
    files = [f for f in upload[0] if f[0].startswith("A/")]
    refused = upload[1][2]

    def assess(classifier, scans):
        return [SimpleNamespace(probability=0.2 + 0.1 * i, low=0.1, high=0.9, raw=0.5, threshold=0.45,
                                verdict="uncertain" if i == 2 else None) for i in range(len(scans))]

    def check(scan):
        return "not a brain MR slice" if scan is checked.get(refused) else ""

    checked = {}
    original = core.predict.series.analysis.prepare_scan
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.predict.series.analysis, "prepare_scan",
                      lambda data, size, name: checked.setdefault(name, original(data, size, name=name)))
        rows = list(series_rows(tiny_classifier, files, row_type=Row, assess=assess, check=check))
        old = list(series_rows(tiny_classifier, files, row_type=OldRow, assess=assess, check=check))
    by_path = {row.path: row for row in rows}
    assert (by_path[refused].status, by_path[refused].probability) == ("not_brain_mri", None)
    assert by_path[refused].error == "not a brain MR slice" and by_path[refused].box is not None
    predicted = [row for row in rows[:6] if row.probability is not None]
    assert [row.probability for row in predicted] == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6])
    assert [row.label for row in predicted] == ["no_tumour", "no_tumour", "uncertain", "tumour", "tumour"]
    assert {(row.low, row.high, row.raw, row.threshold) for row in predicted} == {(0.1, 0.9, 0.5, 0.45)}
    assert rows[6].probability == pytest.approx(0.6) and "2 at or above threshold" in rows[6].path
    assert rows[6].error == "1 slices not analysed"
    assert [(r.path, r.probability, r.label) for r in old] == [(r.path, r.probability, r.label) for r in rows]


def test_patient_tags_are_never_read(upload, tiny_classifier, monkeypatch):
    """Every data set pydicom hands back, while grouping and analysing, lacks the planted patient tags."""
    import pydicom

    datasets = []
    original = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: datasets.append(original(*a, **k)) or datasets[-1])
    groups = group_series(upload[0])
    analyses = [analyse_series(tiny_classifier, series) for series in groups.series]
    assert len(datasets) == 2 * 9  # each DICOM file parsed twice: series tags, then display tags
    for ds in datasets:
        assert "PatientName" not in ds and "PatientID" not in ds and "InstitutionName" not in ds
        assert not any(value in repr(ds) for value in PLANTED)
    produced = repr(groups) + "".join(repr(a) + a.summary() + repr([s.scan.meta for s in a.read])
                                      for a in analyses)
    assert not any(value in produced for value in PLANTED)
    assert "PatientName" not in SERIES_TAGS


def test_series_pdf_from_the_tiny_model(upload, tiny_classifier, tmp_path):
    """A series report end to end: pages in slice order after a summary page, no patient tag in it."""
    from core.report.pdf import write_pdf
    from tests.core.report.test_pdf import assert_not_blank, render, text_of

    files, order_a, _ = upload
    analysis = analyse_series(tiny_classifier, group_series([f for f in files if f[0].startswith("A/")]).series[0])
    pages = series_pages(tiny_classifier, analysis, method="gradcam", target="tumour")
    assert [page.heading.split(" of ")[0] for page in pages] == [f"Slice {i}" for i in range(1, 7)]
    pdf = write_pdf(pages, tiny_classifier.card, heading=analysis.summary())
    rendered = render(pdf, tmp_path)
    assert len(rendered) == 1 + 6
    for page in rendered:
        assert_not_blank(page)
    text = text_of(pdf, tmp_path)
    summary_page, *scan_pages = text.split("\f")[:7]
    assert [f"File: {name}" in page for name, page in zip(order_a, scan_pages)] == [True] * 6
    assert analysis.summary().split(";")[0] in summary_page
    assert not any(value in text for value in PLANTED)


#: A refusal for what the slice shows, as the input check words it.
CROWDED = "not a brain MRI slice: it holds many separate objects"


def _results(codes: str, declared: str = "") -> tuple[SliceResult, ...]:
    """Synthetic slice results, one letter each: o accepted, r refused, u unreadable, c refused with `declared`."""
    kinds = {"o": (OK, ""), "r": (NOT_BRAIN_MRI, CROWDED), "u": (UNREADABLE, "cannot be decoded"),
             "c": (NOT_BRAIN_MRI, declared)}
    return tuple(SliceResult(index=i, name=f"IM{i}", digest="", status=kinds[code][0], error=kinds[code][1],
                             probability=0.5 if code == "o" else None) for i, code in enumerate(codes, start=1))


def _analysis(results) -> SeriesAnalysis:
    series = Series(key="0123abcd", files=(), ordered_by="position")
    return SeriesAnalysis(series=series, slices=mark_volume_edges(results), threshold=0.5)


def test_refusals_at_the_ends_of_a_series_become_volume_edges():
    from core.quality.input_check import metadata_reason

    ct = metadata_reason({"modality": "CT"})
    assert "the file says it is" in ct
    results = _results("rrucorouoorr" + "c", ct)
    marked = mark_volume_edges(results)
    assert "".join({OK: "o", NOT_BRAIN_MRI: "r", UNREADABLE: "u", VOLUME_EDGE: "e"}[s.status]
                   for s in marked) == "eeur" + "orouoo" + "eer"  # ends | between the accepted | ends
    assert [s.error for s in marked if s.status == VOLUME_EDGE] == [VOLUME_EDGE_REASON] * 4
    assert marked[3].error == ct and marked[5].error == CROWDED  # CT kept; a middle refusal kept
    assert marked[2].error == "cannot be decoded" and marked[-1].error == ct
    assert [s.name for s in marked] == [s.name for s in results] and results[0].status == NOT_BRAIN_MRI
    for declared in ({"modality": "US"}, {"body_part": "KNEE"}, {"described_anatomy": ("KNEE",)}):
        reason = metadata_reason(declared)  # what the file's tags say is never re-labelled
        assert reason and mark_volume_edges(_results("co", reason))[0].error == reason
    all_refused = _results("rrurr")
    assert [(s.status, s.error) for s in mark_volume_edges(all_refused)] == [(s.status, s.error)
                                                                              for s in all_refused]


def test_edge_summary_compresses_slice_positions_into_ranges():
    analysis = _analysis(_results("r" * 16 + "o" * 23 + "r" + "o" * 28 + "r" * 20))
    assert analysis.edge_summary == "36 slices at the ends of the volume not assessed: 1-16, 69-88"
    assert [s.index for s in analysis.edges] == [*range(1, 17), *range(69, 89)]
    assert analysis.slices[39].status == NOT_BRAIN_MRI
    assert analysis.summary() == "88 slices; max 0.500 at slice 17 (IM17); 51 at or above the threshold 0.500; " \
                                 "1 not analysed"
    assert _analysis(_results("ooor")).edge_summary == "1 slice at the ends of the volume not assessed: 4"
    assert _analysis(_results("oooo")).edge_summary == "" and _analysis(_results("rrr")).edge_summary == ""


@pytest.mark.parametrize("numbers, text", [
    ([*range(1, 17), *range(69, 89)], "1-16, 69-88"), ([88], "88"), ([1, 3, 5], "1, 3, 5"),
    ([7, 2, 1, 3], "1-3, 7"), ([4, 5], "4-5"), ([], ""),
])
def test_slice_ranges(numbers, text):
    assert slice_ranges(numbers) == text


def _refusing(positions: set[int]):
    """An input check that refuses the slices at these 0-based positions of the call order (slice order)."""
    seen = []

    def check(scan) -> str:
        seen.append(scan)
        return CROWDED if len(seen) - 1 in positions else ""

    return check


@pytest.fixture(scope="module")
def edge_rows(upload, tiny_classifier):
    """Series A's command-line rows with its 1st, 3rd and 6th slices refused, and its SeriesAnalysis."""
    files = [f for f in upload[0] if f[0].startswith("A/")]
    seen = []
    rows = list(series_rows(tiny_classifier, files, row_type=Row, check=_refusing({0, 2, 5}),
                            on_series=seen.append))
    return rows, seen


def test_volume_edges_in_the_command_line_rows(edge_rows):
    rows, (analysis,) = edge_rows
    assert [row.status for row in rows[:6]] == [VOLUME_EDGE, OK, NOT_BRAIN_MRI, OK, OK, VOLUME_EDGE]
    assert rows[0].error == rows[5].error == VOLUME_EDGE_REASON and rows[2].error == CROWDED
    assert rows[0].probability is None and rows[0].box is not None
    edges = "2 slices at the ends of the volume not assessed: 1, 6"
    assert rows[6].path.startswith("series:") and rows[6].error == f"1 slices not analysed; {edges}"
    assert analysis.edge_summary == edges and analysis.summary().endswith("; 1 not analysed")


def test_volume_edges_on_the_series_pdf_summary_page(edge_rows, tiny_classifier, tmp_path):
    """The edge line is on the summary page, which notes bring even to a one-scan report."""
    from core.report.pdf import write_pdf
    from tests.core.report.test_pdf import text_of

    analysis = edge_rows[1][0]
    pages = series_pages(tiny_classifier, analysis, method="gradcam", target="tumour")
    assert [page.heading.split(" of ")[0] for page in pages] == ["Slice 2", "Slice 4", "Slice 5"]
    pdf = write_pdf(pages[:1], tiny_classifier.card, heading=analysis.summary(), notes=[analysis.edge_summary])
    summary_page, scan_page = text_of(pdf, tmp_path).split("\f")[:2]
    assert f"Note: {analysis.edge_summary}" in summary_page and "Slice 2 of 6" in scan_page


def test_real_series_refuses_only_its_end_slices_as_volume_edges(shared_data):
    """One LGG patient's whole stack as an MR DICOM series, through the shipped model and the input check."""
    from core import load_classifier
    from core.predict.assessment import assess
    from core.quality.input_check import check_input

    files = lgg_stack(shared_data, EDGES_PATIENT, "1.2.826.0.1.3680043.8.498.9")
    assert 20 <= len(files) <= 40

    def refusal(scan) -> str:
        check = check_input(scan.pixels, scan.crop, scan.meta)
        return "" if check.ok else check.reason

    (series,) = group_series(files[::-1]).series
    analysis = analyse_series(load_classifier(), series, assess=lambda c, scans: assess(c, scans, tta=False),
                              check=refusal)
    assert [s.name for s in analysis.slices] == [name for name, _ in files]
    assert not any(s.status == NOT_BRAIN_MRI for s in analysis.slices)
    read = [s.index for s in analysis.read]
    refused = [s for s in analysis.slices if s.probability is None]
    assert refused, "the first and last slices (blank or almost no brain) should be refused by the input check"
    assert all(s.status == VOLUME_EDGE and s.error == VOLUME_EDGE_REASON for s in refused)
    assert all(s.index < read[0] or s.index > read[-1] for s in refused)
    assert refused[0].index == 1 and refused[-1].index == len(files)
    assert analysis.edge_summary == (f"{len(refused)} slice{'s' if len(refused) > 1 else ''} at the ends of the "
                                     f"volume not assessed: {slice_ranges(s.index for s in refused)}")
