"""train.data.folds and patient grouping: the leave-one-source-out data, on small real subsets (no model)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.train.conftest import make_lgg_subset, make_loso_sources
from train.data import dedup, folds
from train.data.discover import DataError, discover, read_patients
from train.data.splits import load_bundle, prepare, save_bundle

SIZE = 32


@pytest.fixture(scope="module")
def sources(shared_data, tmp_path_factory):
    return make_loso_sources(shared_data, tmp_path_factory.mktemp("loso"))


@pytest.fixture(scope="module")
def pool(sources, crop_cache):
    named = folds.resolve_sources(None, {name: [str(path)] for name, path in sources.items()})
    return folds.build_pool(named, SIZE, cache_dir=crop_cache, log=lambda *_: None)


def test_pool_keeps_each_scan_once_and_attributes_copies_to_the_first_source(pool):
    assert pool.source_names() == ["br35h", "mos", "lgg"]
    report = pool.report["sources"]
    assert report["mos"]["found"] == 20 and report["mos"]["copies_by_source"] == {"br35h": 2}
    assert report["mos"]["copies_of_earlier_sources"]["exact"] == 2
    names = [s.path.name for s in pool.samples if s.source == "mos"]
    assert "copy_of_br35h.jpg" not in names and len(names) == 18
    assert report["mos"]["kept"] == {"tumour": 10, "no_tumour": 8}
    assert report["br35h"]["kept"] == {"tumour": 10, "no_tumour": 10}
    assert report["lgg"]["kept"] == {"tumour": 12, "no_tumour": 12} and report["lgg"]["patients"] == 4
    assert len({e.pixel_sha for e in pool.entries}) == len(pool.entries)  # no exact copy left anywhere


def test_lgg_slices_share_a_group_per_patient(pool):
    lgg = [i for i, s in enumerate(pool.samples) if s.source == "lgg"]
    by_patient = {}
    for i in lgg:
        by_patient.setdefault(pool.samples[i].patient, set()).add(int(pool.groups[i]))
    assert len(by_patient) == 4 and all(len(groups) == 1 for groups in by_patient.values())
    assert len({next(iter(g)) for g in by_patient.values()}) == 4  # four patients, four groups


def assert_fold_is_clean(pool, fold, held_out):
    """No patient on two sides; no test scan copies a train or val scan; the test is the held-out source."""
    split, patient = fold.split, fold.patient
    assert set(fold.source[split == "test"].tolist()) == {held_out}
    assert held_out not in set(fold.source[split != "test"].tolist())
    sides = {}
    for side, who in zip(split, patient):
        if who:
            sides.setdefault(who, set()).add(side)
    assert all(len(s) == 1 for s in sides.values()), sides
    entry = {str(s.path): e for s, e in zip(pool.samples, pool.entries)}
    test = [entry[p] for p in fold.path[split == "test"]]
    seen = [entry[p] for p in fold.path[split != "test"]]
    assert dedup.copies_of(test, seen) == []


@pytest.mark.parametrize("held_out", ["br35h", "mos", "lgg"])
def test_every_fold_is_leak_free(pool, held_out):
    fold = folds.make_fold(pool, held_out, cap=None, test_cap=None, val_split=0.3, seed=0)
    assert_fold_is_clean(pool, fold, held_out)
    assert set(fold.split.tolist()) == {"train", "val", "test"}
    assert fold.crops.shape[1:] == (SIZE, SIZE) and fold.crops.dtype == np.uint8
    counts = fold.report["counts"]
    n_test = sum(c["tumour"] + c["no_tumour"] for c in counts["test"].values())
    assert n_test == int(np.sum(fold.split == "test")) == sum(fold.report["test_after_removal"].values())
    if held_out != "lgg":  # lgg trains: whole patients in validation
        lgg_val = {p for p, s in zip(fold.patient, fold.split) if p and s == "val"}
        lgg_train = {p for p, s in zip(fold.patient, fold.split) if p and s == "train"}
        assert lgg_val and lgg_train and not lgg_val & lgg_train


def test_caps_are_seeded_per_cell(pool):
    fold = folds.make_fold(pool, "lgg", cap=4, test_cap=5, val_split=0.3, seed=0)
    training = fold.split != "test"
    for source in ("br35h", "mos"):
        for label in (0, 1):
            assert np.sum(training & (fold.source == source) & (fold.labels == label)) == 4
    assert sorted(np.bincount(fold.labels[fold.split == "test"]).tolist()) == [5, 5]
    again = folds.make_fold(pool, "lgg", cap=4, test_cap=5, val_split=0.3, seed=0)
    np.testing.assert_array_equal(again.path, fold.path)
    np.testing.assert_array_equal(again.split, fold.split)
    other = folds.make_fold(pool, "lgg", cap=4, test_cap=5, val_split=0.3, seed=1)
    assert set(other.path.tolist()) != set(fold.path.tolist())


def test_fold_bundle_keeps_patients(pool, tmp_path):
    fold = folds.make_fold(pool, "mos", cap=None, test_cap=None, val_split=0.3, seed=0)
    loaded = load_bundle(save_bundle(fold, tmp_path / "mos.npz"))
    np.testing.assert_array_equal(loaded.patient, fold.patient)
    np.testing.assert_array_equal(loaded.crops, fold.crops)
    assert loaded.report["held_out"] == "mos"


def test_fold_errors(pool):
    with pytest.raises(DataError, match="Unknown source 'nav'"):
        folds.make_fold(pool, "nav", cap=None, test_cap=None, val_split=0.3, seed=0)
    with pytest.raises(DataError, match="at least two sources"):
        folds.resolve_sources(None, {"only": ["x"]})
    with pytest.raises(DataError, match="The folder '/no/such' of source 'b'"):
        folds.resolve_sources(None, {"a": ["/"], "b": ["/no/such"]})


def test_prepare_val_split_keeps_lgg_patients_on_one_side(shared_data, tmp_path, crop_cache):
    lgg = make_lgg_subset(shared_data, tmp_path / "lgg", patients=8, per_class=3)
    prepared = prepare([lgg], val_split=0.5, size=SIZE, cache_dir=crop_cache, log=lambda *_: None)
    samples = {str(s.path): s.patient for s in discover(lgg)}
    train = {samples[p] for p, s in zip(prepared.path, prepared.split) if s == "train"}
    val = {samples[p] for p, s in zip(prepared.path, prepared.split) if s == "val"}
    assert train and val and not train & val
    assert len(train) == len(val) == 4  # half of each class: four whole patients
    assert "each of 8 patients on one side" in prepared.report["validation"]


def test_read_patients(tmp_path):
    assert read_patients(tmp_path) is None
    (tmp_path / "manifest.csv").write_text("file,patient\nyes/a.png,P1\nno/b.png,P2\n")
    assert read_patients(tmp_path) == {"yes/a.png": "P1", "no/b.png": "P2"}
    (tmp_path / "manifest.csv").write_text("file,subject\nyes/a.png,P1\n")
    with pytest.raises(DataError, match="needs 'file' and 'patient' columns"):
        read_patients(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,patient\nyes/a.png, \n")
    with pytest.raises(DataError, match="gives no patient for 1 files"):
        read_patients(tmp_path)


def test_near_copies_of_different_patients_do_not_link():
    hashes = np.zeros((4, dedup.HASH_BYTES), np.uint8)  # four identical hashes: all near copies
    sha = ["a", "b", "c", "d"]
    assert len(set(dedup.duplicate_groups(sha, hashes).tolist())) == 1
    groups = dedup.duplicate_groups(sha[:3], hashes[:3], patients=["P1", "P1", "P2"])
    assert groups[0] == groups[1] != groups[2]
    bridged = dedup.duplicate_groups(sha, hashes, patients=["P1", "P1", "P2", ""])
    assert len(set(bridged.tolist())) == 1  # an item without a patient links by its hash, to both
    exact = dedup.duplicate_groups(["x", "y", "x"], hashes[:3], threshold=-1, patients=["P1", "P2", "P3"])
    assert exact[0] == exact[2] != exact[1]  # exact copies always link


def test_merge_groups_joins_items_of_one_patient():
    merged = dedup.merge_groups(np.array([0, 1, 2, 3, 4]), ["", "P1", "", "P1", "P2"])
    assert merged[1] == merged[3] and len(set(merged.tolist())) == 4
    merged = dedup.merge_groups(np.array([0, 0, 2, 3]), ["P1", "", "P2", "P1"])
    assert merged[0] == merged[1] == merged[3] != merged[2]
    with pytest.raises(ValueError, match="one value per item"):
        dedup.merge_groups(np.array([0, 1]), ["P1"])


def test_lgg_manifest_covers_every_shared_slice(shared_data):
    """The shared LGG folder: every slice has a patient, 53 patients (SOURCES.md)."""
    samples = discover(shared_data / "lgg")
    assert len(samples) == 1783 and all(s.patient for s in samples)
    assert len({s.patient for s in samples}) == 53
    with open(shared_data / "lgg" / "manifest.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 1783


def test_export_folds_writes_every_fold_in_one_bundle(sources, crop_cache, tmp_path, capsys):
    """One file for every fold, each scan's crop once; each fold read back equals the fold built from the data."""
    from train.studies import crossval

    out = tmp_path / "bundles"
    common = ["--image-size", str(SIZE), "--cap", "0", "--test-cap", "0", "--val-split", "0.3",
              "--cache-dir", str(crop_cache), *[f"--source={name}={path}" for name, path in sources.items()]]
    assert crossval.main(["--out", str(out), "--export-folds", *common]) == 0, capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [crossval.FOLDS_BUNDLE]
    assert "Wrote 3 folds (br35h, mos, lgg; 62 scans) to" in capsys.readouterr().out
    bundle = out / crossval.FOLDS_BUNDLE
    assert crossval.bundled_folds(bundle) == ["br35h", "mos", "lgg"]
    args = crossval.parser().parse_args(["--out", str(tmp_path / "x"), *common])
    plan = crossval.plan_of(args)
    _, make = crossval._folds(crossval.CrossvalJob.from_args(args), plan, crossval.settings_of(args, plan),
                              log=lambda text: None)
    for name in ("br35h", "mos", "lgg"):
        fold, built = crossval.load_fold(bundle, name), make(name)
        assert fold.report["held_out"] == name and set(fold.source[fold.split == "test"].tolist()) == {name}
        for field in ("crops", "labels", "split", "source", "path", "patient"):
            assert np.array_equal(getattr(fold, field), getattr(built, field)), (name, field)
        assert fold.report["counts"] == built.report["counts"] and fold.report["bundle_encoding"] == "raw"
    with pytest.raises(DataError, match="holds no fold 'nav'"):
        crossval.load_fold(bundle, "nav")
    bundled = crossval.parser().parse_args(["--out", str(tmp_path / "y"), "--bundles", str(out), "--held-out", "mos"])
    names, load = crossval._folds(crossval.CrossvalJob.from_args(bundled), plan, crossval.settings_of(bundled, plan),
                                  log=lambda text: None)
    assert names == ["mos"] and np.array_equal(load("mos").path, make("mos").path)
    empty = crossval.parser().parse_args(["--out", str(tmp_path / "z"), "--bundles", str(tmp_path)])
    with pytest.raises(DataError, match="No folds.npz in"):
        crossval._folds(crossval.CrossvalJob.from_args(empty), plan, crossval.settings_of(empty, plan),
                        log=lambda text: None)
