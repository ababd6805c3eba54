"""train.data.discover: labels from class folders, discovery, and the checks on data folders (no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train.data.discover import (
    NEGATIVE_CLASSES,
    DataError,
    Sample,
    check_disjoint,
    check_two_classes,
    discover,
    discover_all,
    label_of,
    read_slice_facts,
)


@pytest.mark.parametrize("name, label", [
    ("no", 0), ("No", 0), ("NO", 0), ("notumor", 0), ("NoTumor", 0), ("no_tumor", 0), ("No_Tumor", 0),
    ("normal", 0), ("Normal", 0), ("NORMAL", 0), ("healthy", 0), ("Healthy", 0),
    ("yes", 1), ("Yes", 1), ("glioma", 1), ("meningioma", 1), ("pituitary", 1), ("tumor", 1), ("tumour", 1),
    ("no tumour", 1),  # not one of the negative names: anything else is a tumour class
])
def test_label_rules(name, label):
    assert label_of(name) == label


def test_negative_classes_override():
    assert label_of("benign", ("benign", "clear")) == 0
    assert label_of("BENIGN", ("benign",)) == 0
    assert label_of("no", ("benign",)) == 1  # the default negatives no longer apply
    assert label_of("normal", ("Benign", "NORMAL")) == 0


def touch(path: Path, data: bytes = b"\xff\xd8\xff") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # discovery looks at names only; content is checked when read
    return path


def test_discover_nested_folders_and_skips_root_files(tmp_path):
    root = tmp_path / "data"
    touch(root / "README.jpg")  # directly in the root: no class, skipped
    touch(root / "notes.txt")
    touch(root / "site_a" / "yes" / "a1.jpg")
    touch(root / "site_a" / "no" / "a2.PNG")
    touch(root / "site_b" / "deep" / "glioma" / "b1.jpeg")
    touch(root / "site_b" / "deep" / "NoTumor" / "b2.dcm")
    touch(root / "site_b" / "deep" / "NoTumor" / ".hidden.jpg")  # hidden file: skipped
    touch(root / "site_b" / "deep" / "NoTumor" / "readme.md")  # not a scan suffix: skipped
    samples = discover(root)
    by_name = {s.path.name: s for s in samples}
    assert set(by_name) == {"a1.jpg", "a2.PNG", "b1.jpeg", "b2.dcm"}
    assert [(by_name[n].class_name, by_name[n].label) for n in ("a1.jpg", "a2.PNG", "b1.jpeg", "b2.dcm")] == [
        ("yes", 1), ("no", 0), ("glioma", 1), ("NoTumor", 0)]
    assert {s.source for s in samples} == {f"{tmp_path.name}/data"}
    assert [s.path for s in samples] == sorted(s.path for s in samples)


def test_discover_with_negative_classes(tmp_path):
    touch(tmp_path / "d" / "benign" / "1.jpg")
    touch(tmp_path / "d" / "no" / "2.jpg")
    labels = {s.class_name: s.label for s in discover(tmp_path / "d", ("benign",))}
    assert labels == {"benign": 0, "no": 1}


def test_discover_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nowhere")


def test_discover_file_instead_of_folder(tmp_path):
    path = touch(tmp_path / "scan.jpg")
    with pytest.raises(DataError, match="is a file, not a folder"):
        discover(path)


def test_discover_folder_without_scans(tmp_path):
    touch(tmp_path / "d" / "scan_in_root.jpg")  # no class folder
    touch(tmp_path / "d" / "yes" / "notes.txt")
    (tmp_path / "d" / "no").mkdir()
    with pytest.raises(DataError, match="No scans found in class folders") as info:
        discover(tmp_path / "d")
    assert "yes/*.jpg" in str(info.value)  # says what layout is expected


def test_discover_all_keeps_folder_order(tmp_path):
    touch(tmp_path / "b" / "yes" / "1.jpg")
    touch(tmp_path / "a" / "no" / "1.jpg")
    samples = discover_all([tmp_path / "b", tmp_path / "a"])
    assert [s.source.split("/")[-1] for s in samples] == ["b", "a"]


def sample(label: int) -> Sample:
    return Sample(Path(f"/x/{label}.jpg"), label, "yes" if label else "no", "x")


def test_check_two_classes():
    check_two_classes([sample(0), sample(1), sample(1)], "training")  # both classes: fine
    with pytest.raises(DataError, match="training data holds only tumour scans") as info:
        check_two_classes([sample(1), sample(1)], "training")
    assert "--negative-classes" in str(info.value)
    with pytest.raises(DataError, match="validation data holds only no-tumour scans"):
        check_two_classes([sample(0)], "validation")
    with pytest.raises(DataError):
        check_two_classes([], "test")


def test_check_disjoint(tmp_path):
    train, test, other = tmp_path / "train", tmp_path / "test", tmp_path / "other"
    for folder in (train / "inner", test, other):
        folder.mkdir(parents=True)
    check_disjoint([train], [test, other], "training", "test")  # separate: fine
    with pytest.raises(DataError, match="overlaps the test folder"):
        check_disjoint([train], [train], "training", "test")
    with pytest.raises(DataError, match="overlaps"):  # the same folder spelled differently
        check_disjoint([train], [tmp_path / "other" / ".." / "train"], "training", "test")
    with pytest.raises(DataError, match="overlaps"):  # test folder nested in the training folder
        check_disjoint([train], [train / "inner"], "training", "test")
    with pytest.raises(DataError, match="overlaps the validation folder"):  # and the other way round
        check_disjoint([train / "inner"], [other, train], "training", "validation")


def test_default_negative_classes_are_the_documented_ones():
    assert {name.lower() for name in NEGATIVE_CLASSES} == {"no", "notumor", "no_tumor", "normal", "healthy"}


def test_slice_facts_place_each_lgg_slice_in_its_series_with_its_outline(shared_data):
    facts = read_slice_facts(shared_data / "lgg")
    positions = np.array([position for position, _ in facts.values()])
    assert positions.min() == 0.0 and positions.max() == 1.0
    series = sorted(int(name.rsplit("_", 1)[1].split(".")[0]) for name in facts if "TCGA_CS_4941_19960909_" in name)
    assert series == list(range(1, len(series) + 1))  # one patient's whole series, numbered from 1
    assert facts["no/TCGA_CS_4941_19960909_2.png"][0] == pytest.approx(1 / (len(series) - 1))
    assert all((area > 0) == name.startswith("yes/") for name, (_, area) in facts.items())
    assert read_slice_facts(shared_data / "br35h") is None  # no manifest: no facts
