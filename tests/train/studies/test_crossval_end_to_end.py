"""`brain-mri crossval` end to end on three small real sources (32 px, TensorFlow, two CPU replicas).

One run trains the three folds; the checks read only what it wrote: the table reproduces from its JSON,
every fold is leak-free (no test scan copies a training or validation scan, no LGG patient on two sides),
and a rerun with --resume keeps the finished folds.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.train.conftest import make_loso_sources, run_module
from train.data import cache, dedup
from train.studies.crossval_table import recompute

pytestmark = pytest.mark.slow

SOURCES = ("br35h", "mos", "lgg")
TINY = ["--image-size", "32", "--backbone", "small", "--epochs", "1", "--batch-size", "8", "--val-split", "0.3",
        "--cap", "0", "--test-cap", "0", "--workers", "1", "--cpu-replicas", "2"]
#: A guard against hangs only (seconds), not a timing assertion: a loaded 2-core machine is slow.
TIMEOUT = 3600


@pytest.fixture(scope="module")
def crossval(shared_data, tmp_path_factory, cli_env):
    root = tmp_path_factory.mktemp("crossval")
    sources = make_loso_sources(shared_data, root / "data")
    args = ["--out", root / "run", *TINY, *[f"--source={name}={path}" for name, path in sources.items()]]
    eager = {**cli_env, "BRAIN_MRI_EAGER": "1"}  # 3 steps per fold: tracing the step would cost more
    first = run_module("train.studies.crossval", args, eager, timeout=TIMEOUT)
    again = run_module("train.studies.crossval", [*args, "--resume"], eager, timeout=TIMEOUT)
    return {"root": root, "run": root / "run", "sources": sources, "first": first, "again": again}


def read_split(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_writes_the_table_and_every_fold(crossval):
    result = crossval["first"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "MirroredStrategy over 2 logical CPU devices; 2 replica(s)" in result.stdout
    assert "Running eagerly (BRAIN_MRI_EAGER=1)" in result.stdout
    assert "| **mean** |" in result.stdout and "Finished in" in result.stdout
    run = crossval["run"]
    for name in ("crossval.json", "crossval.csv", "crossval.md", "crossval.png", "crossval_roc.png",
                 "crossval_settings.json"):
        assert (run / name).is_file(), name
    for source in SOURCES:
        fold = run / "folds" / source
        for name in ("fold.json", "split.csv", "metrics.json", "history.csv", "report.json", "run_settings.json"):
            assert (fold / name).is_file(), (source, name)
        assert not (fold / "checkpoint").exists() and not (fold / "model").exists()  # cleaned up, not kept
    payload = json.loads((run / "crossval.json").read_text())
    assert [row["held_out"] for row in payload["rows"]] == list(SOURCES)
    assert payload["settings"]["image_size"] == 32 and payload["plan"]["cap"] is None


def test_table_reproduces_from_its_json(crossval):
    payload = json.loads((crossval["run"] / "crossval.json").read_text())
    assert recompute(crossval["run"] / "crossval.json") == {"rows": payload["rows"], "summary": payload["summary"]}
    for fold, row in zip(payload["folds"], payload["rows"]):
        labels, probs = np.array(fold["test"]["labels"]), np.array(fold["test"]["probs"])
        assert row["auc"] == pytest.approx(roc_auc_score(labels, probs))
        assert (row["tumour"], row["no_tumour"]) == (int(labels.sum()), int((labels == 0).sum()))
        # the same scores as the fold's own run (train.run writes metrics.json from one prediction pass)
        metrics = json.loads((crossval["run"] / "folds" / fold["held_out"] / "metrics.json").read_text())
        assert metrics["results"][f"test:{fold['held_out']}"]["auc"] == pytest.approx(row["auc"])
        assert metrics["thresholds"]["validation"] == pytest.approx(row["threshold"])
    aucs = [row["auc"] for row in payload["rows"]]
    assert payload["summary"]["mean_auc"] == pytest.approx(np.mean(aucs))
    assert payload["summary"]["worst_auc"] == min(aucs)


def test_counts_and_copies_removed(crossval):
    rows = {row["held_out"]: row for row in json.loads((crossval["run"] / "crossval.json").read_text())["rows"]}
    assert (rows["br35h"]["tumour"], rows["br35h"]["no_tumour"]) == (10, 10)
    assert (rows["mos"]["tumour"], rows["mos"]["no_tumour"]) == (10, 8)  # the two planted copies are gone
    assert rows["mos"]["copies_removed"] == 2
    assert (rows["lgg"]["tumour"], rows["lgg"]["no_tumour"]) == (12, 12)


def test_every_fold_is_leak_free(crossval, crop_cache):
    for source in SOURCES:
        rows = read_split(crossval["run"] / "folds" / source / "split.csv")
        assert {r["source"] for r in rows if r["split"] == "test"} == {source}
        assert source not in {r["source"] for r in rows if r["split"] != "test"}
        sides: dict[str, set] = {}
        for r in rows:
            if r["patient"]:
                sides.setdefault(r["patient"], set()).add(r["split"])
        assert all(len(s) == 1 for s in sides.values()), sides  # no LGG patient on two sides
        if source != "lgg":
            assert {"train", "val"} <= {next(iter(s)) for s in sides.values()}
        test = cache.crop_all([r["path"] for r in rows if r["split"] == "test"], 32, crop_cache)
        seen = cache.crop_all([r["path"] for r in rows if r["split"] != "test"], 32, crop_cache)
        assert dedup.copies_of(test, seen) == [], source
        assert not any(r["path"].endswith("copy_of_br35h.jpg") for r in rows)  # attributed to br35h, never used


def test_resume_keeps_finished_folds(crossval):
    result = crossval["again"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for source in SOURCES:
        assert f"[{source}] already finished; kept." in result.stdout
    assert "Epoch 1/" not in result.stdout
