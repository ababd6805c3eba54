"""`python -m core predict --series` and `--pdf`: whole DICOM series from the command line, and a PDF to keep."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import pytest

from tests.core.predict.test_series import (
    EDGES_PATIENT,
    NORMAL,
    OTHER_PATIENT,
    PATIENT,
    PLANTED,
    lgg_slices,
    lgg_stack,
    make_dicom,
)
from tests.core.test_cli import model_dir, read_rows, run_cli  # noqa: F401 - model_dir is a fixture


@pytest.fixture(scope="module")
def series_folder(shared_data, tmp_path_factory):
    """Two series (5 slices by position, shuffled names; 3 by instance number) in one folder, plus a zip."""
    root = tmp_path_factory.mktemp("series")
    numbers = [10, 11, 12, 13, 14]
    for k, (number, pixels) in enumerate(zip(numbers, lgg_slices(shared_data, PATIENT, numbers))):
        position = NORMAL * 4.0 * k
        (root / f"a_{(k * 3) % 5}.dcm").write_bytes(make_dicom(pixels, "1.2.3.4.1", position=position))
    members = {f"b/{k}.dcm": make_dicom(pixels, "1.2.3.4.2", instance=k + 1)
               for k, pixels in enumerate(lgg_slices(shared_data, OTHER_PATIENT, [10, 11, 12]))}
    with zipfile.ZipFile(root / "other.zip", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return root


def test_series_rows_in_slice_order_with_a_summary_each(model_dir, series_folder, tmp_path):  # noqa: F811
    out = tmp_path / "series.csv"
    result = run_cli("predict", series_folder, "--model", model_dir, "--series", "--csv", out, "--no-tta")
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    summaries = [i for i, row in enumerate(rows) if row["path"].startswith("series:")]
    assert len(summaries) == 2 and summaries[1] == len(rows) - 1
    first = rows[: summaries[0]]
    assert [row["path"].rsplit("/", 1)[-1] for row in first] == [f"a_{(k * 3) % 5}.dcm" for k in range(5)]
    assert "(5 slices;" in rows[summaries[0]]["path"] and "(3 slices;" in rows[summaries[1]]["path"]
    assert rows[summaries[0]]["probability"] == max((row["probability"] for row in first), key=float)
    assert all(row["status"] in ("ok", "not_brain_mri", "volume_edge") for row in rows)
    assert "2 series, " in result.stderr
    assert not any(secret in out.read_text() for secret in PLANTED)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not found: install poppler-utils")
def test_pdf_has_a_page_per_scan_and_no_patient_data(model_dir, series_folder, tmp_path):  # noqa: F811
    pdf = tmp_path / "report.pdf"
    result = run_cli("predict", series_folder, "--model", model_dir, "--series", "--pdf", pdf, "--no-tta",
                     "--csv", tmp_path / "rows.csv")
    assert result.returncode == 0, result.stderr
    assessed = sum(row["status"] == "ok" and not row["path"].startswith("series:")
                   for row in read_rows(tmp_path / "rows.csv"))
    assert assessed >= 1
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    assert pages == assessed + (1 if assessed > 1 else 0)  # a summary page first when there are several
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Research" in text and not any(secret in text for secret in PLANTED)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext not found: install poppler-utils")
def test_end_slices_are_volume_edges_in_the_csv_and_the_pdf(model_dir, shared_data, tmp_path):  # noqa: F811
    """Three slices from each end of a real stack and two from its middle: the ends' refusals are volume edges."""
    stack = lgg_stack(shared_data, EDGES_PATIENT, "1.2.3.4.3")
    for name, data in stack[:3] + stack[10:12] + stack[-3:]:
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(data)
    result = run_cli("predict", tmp_path / "in", "--model", model_dir, "--series", "--csv", tmp_path / "rows.csv",
                     "--pdf", tmp_path / "report.pdf", "--no-tta")
    assert result.returncode == 0, result.stderr
    *slices, summary = read_rows(tmp_path / "rows.csv")
    edges = [row for row in slices if row["status"] == "volume_edge"]
    assert edges and all(row["status"] in ("ok", "volume_edge") for row in slices)
    assert {row["error"] for row in edges} == {"edge of the volume: too little brain to assess"}
    line = f"{len(edges)} slices at the ends of the volume not assessed: 1"
    assert summary["path"].startswith("series:") and summary["error"].startswith(line)
    assert f"{len(edges)} at the ends of a volume not assessed, 0 not brain MRI slices" in result.stderr
    text = subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert summary["error"] in " ".join(text.split("\f")[0].split())


def test_pdf_to_a_folder_is_a_usage_error(model_dir, series_folder, tmp_path):  # noqa: F811
    result = run_cli("predict", series_folder, "--model", model_dir, "--pdf", tmp_path)
    assert result.returncode == 2 and "--pdf must be a file" in result.stderr
