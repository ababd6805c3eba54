"""Prepared-data bundles (train.data.splits / `brain-mri prepare`) and weight shards (`train.shards`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.train.conftest import make_br35h_subset, make_mos_subset, run_module
from train.data.discover import DataError
from train.data.splits import load_bundle, prepare, save_bundle


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory, crop_cache):
    root = tmp_path_factory.mktemp("bundle")
    train = make_br35h_subset(shared_data, root / "train", per_class=20)
    test = make_mos_subset(shared_data, root / "test", tumour=2, normal=2)
    return prepare([train], val_split=0.5, test_dirs=[test], size=64, cache_dir=crop_cache, workers=1,
                   log=lambda *_: None)


def assert_same_except_crops(a, b):
    for name in ("labels", "split", "source", "path"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.test_sources() == b.test_sources() and a.size == b.size


def test_raw_bundle_round_trip_is_exact(prepared, tmp_path):
    path = save_bundle(prepared, tmp_path / "data.npz")
    loaded = load_bundle(path)
    assert loaded.crops.dtype == np.uint8 and loaded.crops.shape == prepared.crops.shape == (46, 64, 64)
    np.testing.assert_array_equal(loaded.crops, prepared.crops)
    assert_same_except_crops(loaded, prepared)
    assert loaded.report == {**prepared.report, "bundle_encoding": "raw"}
    assert "bundle_encoding" not in prepared.report  # saving does not change the prepared data
    assert [p.name for p in tmp_path.iterdir()] == ["data.npz"]  # no temporary file left behind


def test_jpeg_bundle_is_close_and_says_so(prepared, tmp_path):
    raw = save_bundle(prepared, tmp_path / "raw.npz")
    jpeg = save_bundle(prepared, tmp_path / "jpeg.npz", jpeg_quality=90)
    loaded = load_bundle(jpeg)
    assert loaded.report["bundle_encoding"] == "jpeg:90"
    assert loaded.crops.dtype == np.uint8 and loaded.crops.shape == prepared.crops.shape
    diff = np.abs(loaded.crops.astype(int) - prepared.crops)
    assert diff.mean() < 4.0 and diff.max() < 48, (diff.mean(), diff.max())  # q90 on 64 px crops: ~2.6 and ~17
    assert diff.any()  # lossy: really JPEG, not the raw crops
    assert_same_except_crops(loaded, prepared)
    assert jpeg.stat().st_size < raw.stat().st_size


def test_load_bundle_missing_file(tmp_path):
    with pytest.raises(DataError, match="brain-mri prepare"):
        load_bundle(tmp_path / "none.npz")


def test_prepare_cli_writes_a_bundle(shared_data, tmp_path, cli_env):
    train = make_br35h_subset(shared_data, tmp_path / "train", per_class=20)
    test = make_mos_subset(shared_data, tmp_path / "test", tumour=1, normal=2)
    out = tmp_path / "bundle.npz"
    result = run_module("train.prepare", ["--train", train, "--val-split", "0.5", "--test", test, "--image-size",
                                          "32", "--workers", "1", "--jpeg-quality", "80", "--out", out], cli_env,
                        timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"Wrote 44 crops to {out}" in result.stdout
    bundle = load_bundle(out)
    assert bundle.size == 32 and bundle.report["bundle_encoding"] == "jpeg:80"
    assert sorted(set(bundle.split)) == ["test", "train", "val"]
    assert int(np.sum(bundle.split == "test")) == 4


def test_shards_round_trip(tmp_path):
    from core.model.classifier import build_model, load_classifier, save_classifier, sha256_of
    from train import shards

    model = build_model(weights=None, input_size=32)
    original_dir = save_classifier(model, {"name": "tiny", "threshold": 0.4}, tmp_path / "original")
    original = load_classifier(original_dir)
    assert shards.main(["pack", str(original_dir), str(tmp_path / "shards"), "--max-mb", "15"]) == 0
    files = sorted((tmp_path / "shards").iterdir())
    weight_files = [p for p in files if p.suffix == ".npz"]
    assert len(weight_files) >= 3  # ResNet50 in float16 is ~47 MB: several shards of at most ~15 MB
    assert all(p.stat().st_size < 16e6 for p in weight_files)
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["input_size"] == 32 and manifest["card"]["weights_sha256"] == original.card.weights_sha256

    assert shards.main(["unpack", str(tmp_path / "shards"), str(tmp_path / "restored")]) == 0
    restored = load_classifier(tmp_path / "restored")  # the hash check passes: the card carries the new hash
    card = restored.card.to_dict()
    assert "float16" in card["transport"]
    assert card["weights_sha256"] == sha256_of(tmp_path / "restored" / "model.keras")
    assert card["weights_sha256"] != original.card.weights_sha256
    assert card["name"] == "tiny" and restored.threshold == 0.4
    inputs = np.random.default_rng(0).normal(0, 60, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(restored.predict_inputs(inputs), original.predict_inputs(inputs), atol=1e-2)
