"""train.data.dedup and the de-duplication in train.data.splits.prepare, on real scans (no model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core import read_scan
from tests.train.conftest import first_files, link_files, make_br35h_subset, make_mos_subset
from train.data import dedup
from train.data.discover import DataError
from train.data.splits import prepare


def brute_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)), dtype=np.int64)
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a[i], b[j]))
    return out


def test_hamming_matrix_matches_brute_force():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (5, 32), dtype=np.uint8)
    b[0] = a[3]  # distance 0
    b[1] = ~a[0]  # distance 256
    b[2] = a[1] ^ np.array([1] + [0] * 31, np.uint8)  # one bit off
    expected = brute_hamming(a, b)
    got = dedup.hamming_matrix(a, b)
    assert got.shape == (7, 5) and got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert got[3, 0] == 0 and got[0, 1] == 256 and got[1, 2] == 1


def test_find_duplicates_kinds_and_closest():
    ref = np.zeros((3, 32), np.uint8)
    ref[1, :2] = 0xFF  # 16 bits from ref[0]
    ref[2, :4] = 0xFF  # 32 bits from ref[0]
    query = np.stack([ref[2].copy(), ref[1].copy(), ref[0].copy(), ~ref[0]])
    query[1, 2] = 0x01  # 1 bit from ref[1], 17 from ref[0]
    matches = dedup.find_duplicates(["x", "q1", "q2", "q3"], query, ["r0", "r1", "x"], ref, threshold=16)
    by_query = {m.query: m for m in matches}
    assert set(by_query) == {0, 1, 2}  # query 3 is 224+ bits from everything
    assert (by_query[0].kind, by_query[0].reference, by_query[0].distance) == ("exact", 2, 0)  # same pixels
    assert (by_query[1].kind, by_query[1].reference, by_query[1].distance) == ("near", 1, 1)  # the closest
    assert (by_query[2].kind, by_query[2].reference, by_query[2].distance) == ("near", 0, 0)  # same hash, other pixels
    # The threshold is inclusive, and exact pixels win whatever the hashes say.
    assert len(dedup.find_duplicates(["a"], ref[1:2], ["b"], ref[:1], threshold=16)) == 1
    assert dedup.find_duplicates(["a"], ref[1:2], ["b"], ref[:1], threshold=15) == []
    assert dedup.find_duplicates(["s"], ~ref[:1], ["s"], ref[:1], threshold=0)[0].kind == "exact"


def test_duplicate_groups_link_exact_and_near_transitively():
    hashes = np.zeros((5, 32), np.uint8)
    hashes[1, 0] = 0b111  # 3 bits from item 0
    hashes[2, 0] = 0b111
    hashes[2, 1] = 0b111  # 3 bits from item 1, 6 from item 0: joined through item 1
    hashes[3] = 0xFF  # far from everything, but the same pixels as item 4
    hashes[4] = 0x0F
    groups = dedup.duplicate_groups(["a", "b", "c", "d", "d"], hashes, threshold=3)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4] != groups[0]


def test_grouped_split_keeps_groups_whole_and_holds_out_the_fraction_per_class():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 4, 120)  # groups of 1-3 scans
    groups = np.repeat(np.arange(120), sizes)
    labels = np.repeat((np.arange(120) % 3 == 0).astype(int), sizes)  # a third of the groups are tumour
    for seed in (0, 1, 2):
        held = dedup.grouped_split(groups, labels, 0.2, seed)
        for group in np.unique(groups):
            assert len(set(held[groups == group].tolist())) == 1, "a duplicate group was split"
        for label in (0, 1):
            total = np.sum(labels == label)
            taken = np.sum(held & (labels == label))
            assert 0.2 * total <= taken < 0.2 * total + 3  # at least the fraction, at most one group over
    a, b = dedup.grouped_split(groups, labels, 0.2, 0), dedup.grouped_split(groups, labels, 0.2, 1)
    np.testing.assert_array_equal(a, dedup.grouped_split(groups, labels, 0.2, 0))  # seeded
    assert not np.array_equal(a, b)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dedup.grouped_split(groups, labels, bad, 0)


# --- planted duplicates in prepare(), on real scans ---------------------------------------------------------

def write_png_copy(source: Path, target: Path) -> None:
    """The same decoded pixels, re-encoded losslessly as PNG (different bytes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(read_scan(source).pixels).save(target, format="PNG")


def write_rescaled_jpeg(source: Path, target: Path) -> None:
    """A 0.6x rescaled copy re-encoded as JPEG quality 70: other pixels, the same slice."""
    pixels = read_scan(source).pixels
    small = cv2.resize(pixels, (int(pixels.shape[1] * 0.6), int(pixels.shape[0] * 0.6)), interpolation=cv2.INTER_AREA)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).save(target, format="JPEG", quality=70)


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory, crop_cache):
    root = tmp_path_factory.mktemp("dedup")
    train = make_br35h_subset(shared_data, root / "train", per_class=12)
    val = root / "val"
    for name in ("yes", "no"):
        link_files(first_files(shared_data / "br35h" / name, 11, start=900), val / name)
    source = sorted((train / "yes").iterdir())[3].resolve()  # a real training scan
    shutil.copyfile(source, val / "yes" / "copy_in_val.jpg")  # a leak into validation
    test = make_mos_subset(shared_data, root / "test", tumour=2, normal=3)  # (d) genuinely different scans
    shutil.copyfile(source, test / "glioma" / "a_byte_copy.jpg")  # (a)
    write_png_copy(source, test / "glioma" / "b_png_copy.png")  # (b)
    write_rescaled_jpeg(source, test / "glioma" / "c_rescaled.jpg")  # (c)
    prepared = prepare([train], val_dirs=[val], test_dirs=[test], size=32, cache_dir=crop_cache, workers=1,
                       log=lambda *_: None)
    return prepared, source, root


def test_planted_duplicates_removed_from_test(planted):
    prepared, source, root = planted
    (source_name,) = prepared.test_sources()
    info = prepared.report["duplicates"][f"test:{source_name}"]
    assert (info["checked"], info["exact"], info["near"], info["kept"]) == (10, 2, 1, 7)
    kinds = {Path(p["removed"]).name: p["kind"] for p in info["pairs"]}
    assert kinds == {"a_byte_copy.jpg": "exact", "b_png_copy.png": "exact", "c_rescaled.jpg": "near"}
    for pair in info["pairs"]:
        assert Path(pair["training_copy"]).resolve() == source, pair  # traced back to the scan it copies
        assert (pair["hamming"] == 0) if pair["kind"] == "exact" else (0 <= pair["hamming"] <= dedup.NEAR_THRESHOLD)
    kept = sorted(Path(p).name for p in prepared.path[prepared.split == "test"])
    assert kept == sorted(p.name for p in (root / "test").rglob("*") if p.is_symlink())  # every MOS scan (d) kept
    assert prepared.report["counts"]["test"][source_name] == {"tumour": 4, "no_tumour": 3}


def test_planted_duplicate_removed_from_validation(planted):
    prepared, _, _ = planted
    info = prepared.report["duplicates"]["validation"]
    assert (info["checked"], info["exact"], info["near"], info["kept"]) == (23, 1, 0, 22), info["pairs"]
    assert Path(info["pairs"][0]["removed"]).name == "copy_in_val.jpg"
    assert int(np.sum(prepared.split == "val")) == 22
    assert int(np.sum(prepared.split == "train")) == 24
    crops = prepared.crops
    assert crops.dtype == np.uint8 and crops.shape == (24 + 22 + 7, 32, 32)


def test_validation_of_duplicates_only_suggests_val_split(shared_data, tmp_path, crop_cache):
    train = make_br35h_subset(shared_data, tmp_path / "train", per_class=12)
    val = tmp_path / "val"
    for name in ("yes", "no"):  # another folder holding the very same scans
        link_files([p.resolve() for p in sorted((train / name).iterdir())], val / name)
    with pytest.raises(DataError, match="--val-split") as info:
        prepare([train], val_dirs=[val], size=32, cache_dir=crop_cache, workers=1, log=lambda *_: None)
    assert "validation set has 0 scans" in str(info.value)


def test_val_split_keeps_duplicate_groups_on_one_side(shared_data, tmp_path, crop_cache):
    train = make_br35h_subset(shared_data, tmp_path / "train", per_class=20)
    for i, source in enumerate(sorted((train / "no").iterdir())[:4]):  # planted copies in the training folder
        shutil.copyfile(source.resolve(), train / "no" / f"zz_copy_{i}.jpg")
        write_rescaled_jpeg(source.resolve(), train / "no" / f"zz_rescaled_{i}.jpg")
    prepared = prepare([train], val_split=0.5, size=32, cache_dir=crop_cache, workers=1, log=lambda *_: None)
    side = {Path(p).name: s for p, s in zip(prepared.path, prepared.split)}
    for i, source in enumerate(sorted((train / "no").iterdir())[:4]):
        assert side[source.name] == side[f"zz_copy_{i}.jpg"] == side[f"zz_rescaled_{i}.jpg"], source.name
    val_labels = prepared.labels[prepared.split == "val"]
    assert np.sum(val_labels == 1) >= 10 and np.sum(val_labels == 0) >= 14  # at least half of each class
    assert "split by duplicate group" in prepared.report["validation"]
    assert "test" not in prepared.report["counts"]["test"]  # no test folders given: no test scans
    assert len(prepared.split) == 48 and set(prepared.split) == {"train", "val"}


def test_real_rewindowed_copy_in_br35h_is_a_near_duplicate(shared_data):
    """Br35H no1.jpg and no194.jpg are the same slice, windowed differently (mean pixel difference ~30)."""
    from train.data.cache import compute_entry

    a, b = (compute_entry((shared_data / "br35h" / "no" / name).read_bytes(), name, 32)
            for name in ("no1.jpg", "no194.jpg"))
    assert a.pixel_sha != b.pixel_sha
    (match,) = dedup.find_duplicates([b.pixel_sha], b.dhash[None], [a.pixel_sha], a.dhash[None])
    assert match.kind == "near" and 0 < match.distance <= dedup.NEAR_THRESHOLD


def test_too_small_val_split_says_what_to_change(shared_data, tmp_path, crop_cache):
    train = make_br35h_subset(shared_data, tmp_path / "train", per_class=12)
    with pytest.raises(DataError) as info:
        prepare([train], val_split=0.2, size=32, cache_dir=crop_cache, workers=1, log=lambda *_: None)
    message = str(info.value)
    assert "Holding out 20% of the training folders gives a validation set of" in message
    assert "Raise --val-split or add training scans" in message
    assert "After removing copies" not in message  # nothing was removed: a --val-split set has no copies
