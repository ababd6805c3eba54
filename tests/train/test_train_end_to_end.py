"""Three real training runs through `python -m train` on a small real subset (32 px, random init).

Run 1: TensorFlow, two replicas (MirroredStrategy over two logical CPU devices), then
       `brain-mri evaluate` on the same test folder.
Run 2: JAX, two devices (DataParallel), interrupted after epoch 1 through the testing seam.
Run 3: run 2's command plus --resume: continues at epoch 2 and finishes.
Runs 1 and 2(+3) go side by side to save wall time. The validation (25 scans) and test (23 scans
after de-duplication) sets have odd sizes on purpose: real sets do, and two devices must cope.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.model.classifier import CARD_FILE, MODEL_FILE, load_classifier, sha256_of
from tests.train.conftest import REPO, first_files, link_files, make_mos_subset
from train.report import safe_name

pytestmark = pytest.mark.slow

TINY = ["--weights", "none", "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--workers", "1"]
JAX_ENV = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
TIMEOUT = 900


def start(args, env, log: Path, module="train") -> subprocess.Popen:
    """Start `python -m module args` with stdout+stderr going to `log`."""
    handle = open(log, "w")
    process = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                               stdout=handle, stderr=subprocess.STDOUT, text=True)
    process.log = log
    handle.close()
    return process


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        code = process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return code, process.log.read_text()


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    train = root / "br35h_subset"
    link_files(first_files(shared_data / "br35h" / "yes", 41), train / "yes")
    link_files(first_files(shared_data / "br35h" / "no", 40), train / "no")
    test = make_mos_subset(shared_data, root / "mos_subset", tumour=8, normal=8)
    (test / "pituitary" / sorted((test / "pituitary").iterdir())[-1].name).unlink()  # 7 pituitary: 23 scans
    leaked = [sorted((train / "yes").iterdir())[5].resolve(), sorted((train / "no").iterdir())[9].resolve()]
    shutil.copyfile(leaked[0], test / "glioma" / "leaked_training_scan.jpg")  # copies of training scans:
    shutil.copyfile(leaked[1], test / "notumor" / "leaked_training_scan.jpg")  # removed before testing
    return {"root": root, "train": train, "test": test, "leaked": leaked}


@pytest.fixture(scope="module")
def runs(data, cli_env):
    root = data["root"]
    common = ["--train", data["train"], "--val-split", "0.3", "--test", data["test"], *TINY]
    out = {name: root / name for name in ("run_tf", "run_jax")}
    tf = start([*common, "--cpu-replicas", "2", "--out", out["run_tf"]], cli_env, root / "run_tf.log")
    jax_env = {**cli_env, **JAX_ENV}
    jax_command = [*common, "--backbone", "small", "--out", out["run_jax"]]  # the TF run keeps ResNet50
    jax = start(jax_command, {**jax_env, "BRAIN_MRI_INTERRUPT_AFTER_EPOCH": "1"}, root / "run_jax_1.log")

    results = {"dirs": out}
    results["jax_interrupted"] = finish(jax)
    run_jax = out["run_jax"]
    results["after_interrupt"] = {  # what the interrupted run left, before the resumed run changes it
        "files": sorted(str(p.relative_to(run_jax)) for p in run_jax.rglob("*") if p.is_file()),
        "state": json.loads((run_jax / "checkpoint" / "state.json").read_text())
        if (run_jax / "checkpoint" / "state.json").is_file() else None,
    }
    resumed = start([*jax_command, "--resume"], jax_env, root / "run_jax_2.log")
    results["tf"] = finish(tf)
    evaluate = start(["--model", out["run_tf"] / "model", "--data", data["test"], "--exclude-duplicates-of",
                      data["train"], "--json", root / "evaluate.json"], cli_env, root / "evaluate.log",
                     module="train.evaluate")
    results["jax_resumed"] = finish(resumed)
    results["evaluate"] = finish(evaluate)
    results["evaluate_json"] = root / "evaluate.json"
    return results


def read_history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_tf_run_uses_two_replicas_and_writes_every_artefact(runs):
    code, log = runs["tf"]
    assert code == 0, log[-4000:]
    assert "Backend tensorflow: MirroredStrategy over 2 logical CPU devices; 2 replica(s), global batch 8 " \
           "(4 per replica)" in log
    assert "Training on 56 scans, validating on 25, testing on 23 (after de-duplication)." in log
    run = runs["dirs"]["run_tf"]
    for name in ("model/model.keras", "model/model_card.json", "history.csv", "metrics.json", "report.json",
                 "run_settings.json", "checkpoint/state.json", "checkpoint/last.keras"):
        assert (run / name).is_file(), name
    history = read_history(run)
    assert [row["epoch"] for row in history] == ["1", "2"]
    for row in history:
        for key in ("loss", "accuracy", "auc", "val_loss", "val_auc", "learning_rate", "epoch_seconds"):
            assert np.isfinite(float(row[key])), (key, row)
        assert 0 <= float(row["val_auc"]) <= 1


def test_tf_run_plots_decode(runs, data):
    plots = runs["dirs"]["run_tf"] / "plots"
    source = f"{data['test'].parent.name}/{data['test'].name}"
    expected = {"learning_curves.png", "roc.png", "reliability.png", "confusion_validation.png",
                f"confusion_{safe_name('test:' + source)}.png"}
    assert {p.name for p in plots.iterdir()} == expected
    for name in expected:
        image = cv2.imread(str(plots / name))
        assert image is not None, name
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0, name


def test_tf_run_metrics(runs, data):
    run = runs["dirs"]["run_tf"]
    metrics = json.loads((run / "metrics.json").read_text())
    source = f"{data['test'].parent.name}/{data['test'].name}"
    assert set(metrics["results"]) == {"validation", f"test:{source}"}
    threshold = metrics["thresholds"]["validation"]
    assert metrics["thresholds"]["0.5"] == 0.5 and 0 <= threshold <= 1
    counts = {"validation": (25, 13, 12), f"test:{source}": (23, 15, 8)}
    for name, result in metrics["results"].items():
        assert (result["scans"], result["tumour"], result["no_tumour"]) == counts[name]
        assert 0 <= result["auc"] <= 1
        low, high = result["auc_ci95"]
        assert 0 <= low <= result["auc"] <= high <= 1
        assert 0 <= result["brier"] <= 1
        assert sum(result["reliability"]["count"]) == result["scans"]
        for key, value in (("at_0.5", 0.5), ("at_validation", threshold)):
            block = result[key]
            assert block["threshold"] == value
            c = block["confusion"]
            assert c["tp"] + c["fn"] == result["tumour"] and c["tn"] + c["fp"] == result["no_tumour"]
            assert block["accuracy"] == pytest.approx((c["tp"] + c["tn"]) / result["scans"])
    report = json.loads((run / "report.json").read_text())
    dup = report["duplicates"][f"test:{source}"]
    assert (dup["checked"], dup["exact"], dup["near"], dup["kept"]) == (25, 2, 0, 23)
    assert sorted(Path(p["training_copy"]).resolve() for p in dup["pairs"]) == sorted(data["leaked"])


def test_tf_model_loads_and_predicts_real_scans(runs, shared_data):
    from core import read_scan

    classifier = load_classifier(runs["dirs"]["run_tf"] / "model")
    assert classifier.input_size == 32
    scans = [read_scan(shared_data / "br35h" / "yes" / "y0.jpg").pixels,
             read_scan(shared_data / "mos" / "Testing" / "notumor" / "Te-noTr_0000.jpg").pixels]
    probs = classifier.predict(scans)
    assert probs.shape == (2,) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1)) and np.all(np.isfinite(probs))


def test_tf_model_card(runs, data):
    run = runs["dirs"]["run_tf"]
    card = json.loads((run / "model" / CARD_FILE).read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["command"].startswith("python -m train ") and "--cpu-replicas 2" in card["command"]
    assert f"--out {run}" in card["command"]
    assert card["seed"] == 0
    assert card["versions"]["keras_backend"] == "tensorflow"
    assert card["versions"]["keras"] and card["versions"]["python"] and card["versions"]["numpy"]
    assert card["initialisation"].startswith("random")
    assert card["input"]["normalise"] == "none"  # the recipe's: no per-scan normalisation
    assert "2 logical CPU devices" in card["training_placement"]
    source = f"{data['test'].parent.name}/{data['test'].name}"
    assert card["data"]["counts_after_deduplication"] == {
        "train": {f"{data['train'].parent.name}/br35h_subset": {"tumour": 28, "no_tumour": 28}},
        "val": {f"{data['train'].parent.name}/br35h_subset": {"tumour": 13, "no_tumour": 12}},
        "test": {source: {"tumour": 15, "no_tumour": 8}},
    }
    assert card["data"]["duplicates_removed"][f"test:{source}"]["exact"] == 2
    assert card["threshold"] == metrics["thresholds"]["validation"]
    assert card["weights_file"] == MODEL_FILE
    assert card["weights_sha256"] == sha256_of(run / "model" / MODEL_FILE)
    assert card["recipe"]["image_size"] == 32 and card["recipe"]["batch_size"] == 8
    assert card["recipe"]["backbone"] == "resnet50" and card["architecture"].startswith("ResNet50 +")


def test_evaluate_reproduces_the_run_test_auc(runs, data):
    code, log = runs["evaluate"]
    assert code == 0, log[-4000:]
    outcome = json.loads(runs["evaluate_json"].read_text())
    metrics = json.loads((runs["dirs"]["run_tf"] / "metrics.json").read_text())
    source = f"{data['test'].parent.name}/{data['test'].name}"
    assert set(outcome["results"]) == {source}
    dup = outcome["report"]["duplicates"][source]
    assert (dup["checked"], dup["exact"], dup["near"], dup["kept"]) == (25, 2, 0, 23)
    mine, theirs = outcome["results"][source], metrics["results"][f"test:{source}"]
    counts = ("scans", "tumour", "no_tumour")
    assert [mine[key] for key in counts] == [theirs[key] for key in counts]
    # Same crops, same weights: the model's ranking of the test scans must be the same.
    assert mine["auc"] == pytest.approx(theirs["auc"], abs=1e-12)
    assert mine["brier"] == pytest.approx(theirs["brier"], abs=1e-4)  # float32 sums differ in the last digits
    assert mine["at_card"]["threshold"] == metrics["thresholds"]["validation"]


def test_jax_run_interrupted_after_epoch_one(runs):
    code, log = runs["jax_interrupted"]
    assert code == 130, log[-4000:]
    assert "Backend jax: DataParallel over 2 cpu devices; 2 replica(s)" in log
    assert "Continue with the same command plus --resume" in log
    after = runs["after_interrupt"]
    assert after["state"] is not None and after["state"]["epochs_done"] == 1
    assert [row["epoch"] for row in after["state"]["history"]] == [1]
    assert not any(name.startswith("model/") for name in after["files"])
    assert "checkpoint/last.keras" in after["files"] and "metrics.json" not in after["files"]


def test_jax_run_resumes_and_finishes(runs):
    code, log = runs["jax_resumed"]
    assert code == 0, log[-4000:]
    assert "Backend jax: DataParallel over 2 cpu devices; 2 replica(s)" in log
    assert "Resuming after epoch 1 from" in log
    assert "Epoch 2/2" in log and "Epoch 1/2" not in log  # continued, not restarted
    run = runs["dirs"]["run_jax"]
    history = read_history(run)
    assert [row["epoch"] for row in history] == ["1", "2"]
    first = runs["after_interrupt"]["state"]["history"][0]
    assert float(history[0]["val_auc"]) == pytest.approx(first["val_auc"])  # epoch 1 kept from the first process
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2
    classifier = load_classifier(run / "model")
    card = classifier.card.to_dict()
    assert card["versions"]["keras_backend"] == "jax"
    assert "DataParallel over 2" in card["training_placement"]
    assert card["recipe"]["backbone"] == "small" and card["architecture"].startswith("small CNN")
    assert "conv5_block3_out" in {layer.name for layer in classifier.model.layers}  # the explained layer exists
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(r["auc"] is not None for r in metrics["results"].values())
    probs = classifier.predict_inputs(np.zeros((3, 32, 32, 3), np.float32))
    assert probs.shape == (3,) and np.all((probs >= 0) & (probs <= 1))
