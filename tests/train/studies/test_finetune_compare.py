"""brain-mri finetune-compare: another model scored on exactly a run's test slices, per data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.model.classifier import save_classifier
from tests.core.test_cli import tiny_model
from train.studies import finetune_compare
from train.studies.finetune_card import SHIPPED_VARIANT


def test_comparison_gives_each_folder_and_all_slices_an_auc_per_model():
    labels = np.array([1, 0, 1, 0, 1, 1])
    folders = np.array(["br35h", "br35h", "lgg", "lgg", "mos/Testing", "mos/Testing"])
    scores = {"a": np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.6]), "b": np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.6])}
    table = finetune_compare.comparison(labels, folders, scores)
    assert list(table) == ["br35h", "lgg", "mos/Testing", finetune_compare.ALL]
    assert table["br35h"]["a"]["auc"] == 1.0 and table["br35h"]["b"]["auc"] == 0.0
    assert table["mos/Testing"]["a"] is None  # one class: no AUC
    assert table[finetune_compare.ALL]["n"] == 6 and table[finetune_compare.ALL]["tumour"] == 4


def _lgg_slices(shared_data, patients: int = 2, per_class: int = 2) -> tuple[list[str], list[int], list[str]]:
    """Run-relative paths, labels and patients of `per_class` slices of each class of the first LGG patients."""
    from train.data.discover import read_patients

    manifest = read_patients(shared_data / "lgg")
    chosen = sorted(set(manifest.values()))[:patients]
    paths, labels, owners = [], [], []
    for patient in chosen:
        for label, folder in ((1, "yes"), (0, "no")):
            files = sorted(f for f, p in manifest.items() if p == patient and f.startswith(f"{folder}/"))[:per_class]
            paths += [f"lgg/{f}" for f in files]
            labels += [label] * len(files)
            owners += [patient] * len(files)
    return paths, labels, owners


def test_a_run_is_compared_with_a_model_on_its_own_test_scans(shared_data, tmp_path, capsys):
    lgg, lgg_labels, owners = _lgg_slices(shared_data)
    paths = [f"br35h/yes/y{i}.jpg" for i in range(4)] + [f"br35h/no/no{i}.jpg" for i in range(4)] + lgg
    labels = [1] * 4 + [0] * 4 + lgg_labels
    run = tmp_path / "run"
    run.mkdir()
    (run / "scores.json").write_text(json.dumps({
        "scans": {"val": [], "test": paths}, "labels": {"val": [], "test": labels},
        "sources": {"val": [], "test": ["br35h"] * 8 + ["lgg"] * len(lgg)},
        "variants": {SHIPPED_VARIANT: {"val": [], "test": [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
                                                          + [0.9, 0.8, 0.1, 0.2, 0.3, 0.7, 0.6, 0.4]}}}))
    (run / "results.json").write_text(json.dumps({"start_model": "tiny@0123"}))
    model = save_classifier(tiny_model(size=32), {"name": "tiny", "threshold": 0.5, "input": {"size": 32}},
                            tmp_path / "model")
    out = tmp_path / "out"
    assert finetune_compare.main(["--run", str(run), "--model", str(model), "--data-root", str(shared_data),
                                  "--out", str(out)]) == 0
    result = json.loads((out / finetune_compare.COMPARE_FILE).read_text())
    fine_tuned, other = result["models"]
    assert result["run"] == "run" and other.startswith("tiny@")
    assert result["table"]["br35h"][fine_tuned]["auc"] == 1.0
    assert 0.0 <= result["table"]["br35h"][other]["auc"] <= 1.0
    assert (out / "compare.md").read_text() == finetune_compare.to_markdown(result)
    assert "| br35h | 8 (4) | 1.000 [" in capsys.readouterr().out
    first, second = sorted(set(owners))
    assert list(result["by_patient"]) == [f"lgg {first}", f"lgg {second}"]  # from the folder's manifest
    assert result["by_patient"][f"lgg {first}"][fine_tuned] == 1.0  # 0.9, 0.8 over 0.1, 0.2
    assert result["by_patient"][f"lgg {second}"][fine_tuned] == 0.5  # 0.3, 0.7 against 0.6, 0.4
    other_probs = np.array(result["probs"][other])
    assert len(other_probs) == len(paths)
    assert result["table"]["br35h"][other]["auc"] == pytest.approx(
        finetune_compare.metrics.auc_with_interval(np.array(labels[:8]), other_probs[:8])["auc"], abs=1e-6)
    assert f"| lgg {first} | 4 (2) | 1.000 |" in (out / "compare.md").read_text()


def test_scans_missing_under_the_data_root_are_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scores.json").write_text(json.dumps({"scans": {"test": ["br35h/yes/absent.jpg"]},
                                                 "labels": {"test": [1]}, "variants": {}}))
    model = save_classifier(tiny_model(size=32), {"name": "tiny", "threshold": 0.5, "input": {"size": 32}},
                            tmp_path / "model")
    assert finetune_compare.main(["--run", str(run), "--model", str(model), "--data-root", str(tmp_path)]) == 2
    assert "could not be read" in capsys.readouterr().err
    assert not (run / finetune_compare.COMPARE_FILE).exists()
    with pytest.raises(SystemExit):
        finetune_compare.main([])
