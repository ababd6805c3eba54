"""Tests for `python -m core predict` on a tiny saved model, good scans and broken files."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.predict import batch
from core.predict.batch import COLUMNS, find_sources

keras = pytest.importorskip("keras")

REPO = Path(__file__).resolve().parents[2]
BROKEN = {"report.pdf", "truncated.jpg", "empty.png"}


def tiny_model(size=32):
    """Random tiny CNN with the real model's head layer names."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 128.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    x = keras.layers.Dense(1, name="logit")(x)
    outputs = keras.layers.Activation("sigmoid", name="tumour_probability")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from core.model.classifier import save_classifier

    card = {"name": "tiny-cli", "threshold": 0.5, "explain_layer": "last_conv"}
    return save_classifier(tiny_model(), card, tmp_path_factory.mktemp("model"))


def synthetic_scan(rng, shape=(90, 120)):
    scan = np.zeros(shape, dtype=np.uint8)
    scan[10:-10, 15:-15] = rng.integers(60, 200, size=(shape[0] - 20, shape[1] - 30))
    return scan


@pytest.fixture(scope="module")
def scans_dir(tmp_path_factory):
    """scans/: real scans (when the shared data is there) and synthetic ones in nested folders,
    three broken files, and a hidden file that must be skipped."""
    root = tmp_path_factory.mktemp("data") / "scans"
    (root / "a" / "deeper").mkdir(parents=True)
    (root / "b").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(synthetic_scan(rng)).save(root / "a" / "synthetic_grey.png")
    Image.fromarray(np.stack([synthetic_scan(rng, (80, 64))] * 3, axis=2)).save(root / "b" / "synthetic_rgb.jpg")
    shared = REPO.parent / "shared" / "data"
    real = sorted((shared / "br35h" / "yes").glob("*.jpg"))[:2] + sorted((shared / "nav" / "no").glob("*"))[:1]
    for index, path in enumerate(real):
        shutil.copy(path, root / "a" / "deeper" / f"real_{index}{path.suffix}")
    jpeg = io.BytesIO()
    Image.fromarray(synthetic_scan(rng)).save(jpeg, format="JPEG")
    (root / "b" / "truncated.jpg").write_bytes(jpeg.getvalue()[:150])
    (root / "b" / "report.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


def expected_files(root):
    return sorted((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")),
                  key=lambda p: p.relative_to(root).parts)


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def read_rows(path_or_text):
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_folder_writes_every_row_and_exits_0(model_dir, scans_dir, tmp_path):
    from core.imaging.pipeline import prepare_scan
    from core.model.classifier import load_classifier
    from core.quality.input_check import check_input

    out, heatmaps = tmp_path / "out" / "predictions.csv", tmp_path / "heatmaps"
    result = run_cli("predict", scans_dir, "--model", model_dir, "--csv", out, "--heatmaps", heatmaps,
                     "--batch-size", 2)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    rows = read_rows(out)
    files = expected_files(scans_dir)
    assert list(rows[0]) == list(COLUMNS)
    assert [row["path"] for row in rows] == [str(p) for p in files]  # every file, sorted, hidden skipped
    broken = [row for row in rows if Path(row["path"]).name in BROKEN]
    assert len(broken) == 3
    for row in broken:
        assert row["status"] == "unreadable" and row["error"]
        assert not row["probability"] and not row["label"] and not row["heatmap"]
    classifier = load_classifier(model_dir)
    for row in (row for row in rows if Path(row["path"]).name not in BROKEN):
        scan = prepare_scan(row["path"], classifier.input_size)
        check = check_input(scan.pixels, scan.crop, scan.meta)
        x0, y0, x1, y1 = (int(row[k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1"))
        assert (x0, y0, x1, y1) == scan.crop.box and row["crop_fell_back"] in ("true", "false")
        if not check.ok:  # refused before any prediction, with the check's own reason
            assert row["status"] == "not_brain_mri" and row["error"] == check.reason
            assert not row["probability"] and not row["label"] and not row["heatmap"]
            continue
        assert row["status"] == "ok" and row["error"] == ""
        probability = float(row["probability"])  # the tiny model's card has no calibration: raw, as given
        assert probability == pytest.approx(float(classifier.predict([scan.pixels])[0]), abs=1e-5)
        assert float(row["probability_low"]) <= probability <= float(row["probability_high"])
        assert row["label"] in ("tumour", "no_tumour", "uncertain") and float(row["threshold"]) == 0.5
        overlay = np.asarray(Image.open(row["heatmap"]))
        assert Path(row["heatmap"]).is_relative_to(heatmaps)
        assert overlay.shape == (*scan.pixels.shape[:2], 3)
    real = [row for row in rows if Path(row["path"]).name.startswith("real_")]
    if real:  # real brain slices are never refused
        assert all(row["status"] == "ok" for row in real)
    synthetic_rgb = next(row for row in rows if row["path"].endswith("synthetic_rgb.jpg"))
    assert synthetic_rgb["status"] == "not_brain_mri"  # a noise rectangle is not a brain slice
    ok = sum(row["status"] == "ok" for row in rows)
    refused = sum(row["status"] == "not_brain_mri" for row in rows)
    assert f"{ok} scans assessed" in result.stderr and f"{refused} not brain MRI slices, 3 unreadable" in result.stderr


def test_missing_path_exits_2_with_a_clear_message(model_dir, scans_dir):
    result = run_cli("predict", scans_dir, "no/such/scan.jpg", "--model", model_dir)
    assert result.returncode == 2
    assert "no such file or folder: no/such/scan.jpg" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_model_exits_1_with_a_clear_message(scans_dir, tmp_path):
    result = run_cli("predict", scans_dir, "--model", tmp_path / "nothing-here")
    assert result.returncode == 1
    assert "cannot load the model" in result.stderr and "No trained model found" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_csv_goes_to_stdout_without_csv_option(model_dir, scans_dir, capsys):
    file = scans_dir / "a" / "synthetic_grey.png"
    assert main(["predict", str(file), str(scans_dir / "b" / "empty.png"), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    rows = read_rows(captured.out)
    assert [row["path"] for row in rows] == [str(file), str(scans_dir / "b" / "empty.png")]
    assert rows[0]["status"] in ("ok", "not_brain_mri") and not rows[0]["heatmap"]
    assert rows[1]["status"] == "unreadable" and rows[1]["error"]
    assert "1 unreadable" in captured.err


def test_empty_folder_exits_2(tmp_path, capsys):
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden" / "x.jpg").write_bytes(b"")
    assert main(["predict", str(tmp_path / "empty")]) == 2
    assert "no files found" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["predict"], ["predict", ".", "--method", "lime"], ["frobnicate", "."]])
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2


def test_bad_batch_size_exits_2(scans_dir, capsys):
    assert main(["predict", str(scans_dir), "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_find_sources_order_and_names(scans_dir):
    single = scans_dir / "a" / "synthetic_grey.png"
    sources = find_sources([str(scans_dir / "b"), str(single)])
    assert [s.relative for s in sources] == [
        "b/empty.png", "b/report.pdf", "b/synthetic_rgb.jpg", "b/truncated.jpg", "synthetic_grey.png",
    ]


def test_heatmap_names_never_collide(tmp_path):
    names = batch._HeatmapNames(tmp_path)
    paths = [names.next(name) for name in ("x/1.jpg", "x/1.jpg", "X/1.JPG", "x/2.jpg")]
    assert len({str(p).lower() for p in paths}) == 4
    assert paths[0] == tmp_path / "x/1.jpg.png" and paths[1] == tmp_path / "x/1.jpg-2.png"
