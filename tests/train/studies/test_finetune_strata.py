"""brain-mri finetune-strata: a run's AUC on the central slices of each series and by lesion size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from train.studies import finetune_strata
from train.studies.finetune_card import SHIPPED_VARIANT


def test_a_model_that_only_tells_the_ends_of_a_series_is_at_chance_on_the_central_slices():
    # Normal slices at both ends score 0; in the centre both classes score alike, whatever the lesion's size.
    positions = np.array([0.0, 0.1, 0.95, 1.0, 0.4, 0.5, 0.6, 0.45, 0.55, 0.65, 0.5, 0.3])
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    probs = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    areas = np.array([0, 0, 0, 0, 0, 0, 0, 100, 200, 300, 400, 500])
    table = finetune_strata.strata(labels, probs, positions, areas)
    assert table["all"]["auc"] > 0.75
    assert table["central"]["n"] == 8 and table["central"]["tumour"] == 5
    assert table["central"]["auc"] == 0.5
    assert table["position_alone"]["auc"] > 0.75  # the tumour slices lie nearer the centre of the series


def test_the_thirds_by_lesion_area_split_the_tumour_slices_and_keep_every_normal():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    areas = np.array([0, 0, 0, 10, 20, 30, 40, 50, 60])
    probs = np.array([0.5, 0.5, 0.5, 0.1, 0.2, 0.5, 0.5, 0.9, 0.9])  # larger lesions score higher
    table = finetune_strata.strata(labels, probs, np.full(9, 0.5), areas)
    assert [block["area_px"] for block in table["by_area"]] == [[10, 20], [30, 40], [50, 60]]
    assert [block["n"] for block in table["by_area"]] == [5, 5, 5]
    assert [block["auc"] for block in table["by_area"]] == [0.0, 0.5, 1.0]


def test_the_fifths_average_each_class_and_leave_an_empty_cell_empty():
    labels = np.array([0, 0, 1, 1])
    table = finetune_strata.strata(labels, np.array([0.2, 0.4, 0.8, 0.6]), np.array([0.0, 0.1, 0.5, 1.0]),
                                   np.array([0, 0, 5, 9]))
    fifths = table["by_fifth"]
    assert fifths[0]["normal"] == {"n": 2, "mean_prob": pytest.approx(0.3)} and fifths[0]["tumour"]["mean_prob"] is None
    assert fifths[2]["tumour"] == {"n": 1, "mean_prob": pytest.approx(0.8)}
    assert fifths[4]["tumour"] == {"n": 1, "mean_prob": pytest.approx(0.6)}  # the last slice counts in the last fifth


def _payload(shared_data) -> dict:
    """A scores.json over six lgg slices of one patient and two br35h scans."""
    from train.data.discover import read_patients

    patients = read_patients(shared_data / "lgg")
    patient = sorted(set(patients.values()))[0]
    files = sorted(f for f, p in patients.items() if p == patient)
    chosen = [f for f in files if f.startswith("yes/")][:3] + [f for f in files if f.startswith("no/")][:3]
    paths = [f"lgg/{f}" for f in chosen] + ["br35h/yes/y0.jpg", "br35h/no/no0.jpg"]
    labels = [1, 1, 1, 0, 0, 0, 1, 0]
    probs = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1, 0.6, 0.4]
    return {"scans": {"val": [], "test": paths}, "labels": {"val": [], "test": labels},
            "sources": {"val": [], "test": ["lgg"] * 6 + ["br35h"] * 2},
            "variants": {"raw weights, BatchNorm as trained": {"val": [], "test": [0.5] * 8},
                         SHIPPED_VARIANT: {"val": [], "test": probs}}}


def test_a_run_is_stratified_on_its_folders_with_slice_facts(shared_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scores.json").write_text(json.dumps(_payload(shared_data)))
    assert finetune_strata.main(["--run", str(run), "--data-root", str(shared_data)]) == 0
    result = json.loads((run / finetune_strata.STRATA_FILE).read_text())
    assert result["variant"] == SHIPPED_VARIANT and list(result["folders"]) == ["lgg"]
    assert result["folders"]["lgg"]["all"]["auc"] == 1.0 and result["folders"]["lgg"]["all"]["n"] == 6
    assert (run / "strata.md").read_text() == finetune_strata.to_markdown(result) == capsys.readouterr().out
    assert "| lgg | 6 (3), 1.000" in finetune_strata.to_markdown(result)


@pytest.mark.parametrize("extra, message", [
    (["--variant", "median weights"], "has no variant 'median weights'"),
    (["--band", "0.8", "0.2"], "give LOW < HIGH"),
])
def test_bad_options_are_refused_with_what_to_do(shared_data, tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scores.json").write_text(json.dumps(_payload(shared_data)))
    assert finetune_strata.main(["--run", str(run), "--data-root", str(shared_data), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (run / finetune_strata.STRATA_FILE).exists()


def test_a_run_without_scores_or_slice_facts_is_refused(tmp_path, capsys):
    assert finetune_strata.main(["--run", str(tmp_path)]) == 2
    assert "scores.json does not exist" in capsys.readouterr().err
    (tmp_path / "scores.json").write_text(json.dumps({
        "scans": {"test": ["br35h/yes/y0.jpg", "br35h/no/no0.jpg"]}, "labels": {"test": [1, 0]},
        "variants": {SHIPPED_VARIANT: {"test": [0.9, 0.1]}}}))
    assert finetune_strata.main(["--run", str(tmp_path), "--data-root", str(tmp_path)]) == 2
    assert "no test folder of the run has a manifest.csv" in capsys.readouterr().err


def test_the_central_summary_names_each_folder_and_those_at_chance():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    positions = np.array([0.3, 0.4, 0.5, 0.6, 0.35, 0.45, 0.55, 0.65])
    seen = finetune_strata.strata(labels, np.array([0.1, 0.2, 0.1, 0.2, 0.8, 0.9, 0.8, 0.9]), positions,
                                  np.array([0, 0, 0, 0, 100, 200, 300, 400]))
    blind = finetune_strata.strata(labels, np.array([0.5, 0.2, 0.8, 0.4, 0.6, 0.3, 0.7, 0.4]), positions,
                                   np.array([0, 0, 0, 0, 100, 200, 300, 400]))
    text = finetune_strata.central_summary({"band": [0.25, 0.75], "folders": {"lgg": seen, "lgg-t1pre": blind}})
    assert "test AUC lgg 1.000, lgg-t1pre 0.531" in text
    assert text.endswith("no better than chance (the 95% interval holds 0.5) on lgg-t1pre (brain-mri finetune-strata).")
    assert finetune_strata.central_summary({"band": [0.25, 0.75], "folders": {}}) is None
