"""`python -m train` refuses unusable input before any training, with exit code 2 and a clear message.

Every case runs the real CLI in a subprocess. The cases are started together (a few at a time)
because each pays for importing Keras, then checked one by one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.train.conftest import REPO, first_files, link_files, make_br35h_subset, run_module

#: name -> (extra arguments, expected message on stderr (regex))
CASES = {
    "missing_folder": (["--train", "{tmp}/does_not_exist", "--val-split", "0.2"],
                       r"The data folder '.*does_not_exist' does not exist"),
    "no_images": (["--train", "{tmp}/empty", "--val-split", "0.2"],
                  r"No scans found in class folders under '.*empty'\. Expected e\.g\. .*/yes/\*\.jpg"),
    "single_class": (["--train", "{tmp}/only_yes", "--val-split", "0.2"],
                     r"The training data holds only tumour scans\. It needs both classes"),
    "train_test_overlap": (["--train", "{tmp}/data", "--val-split", "0.2", "--test", "{tmp}/data/yes"],
                           r"The training folder '.*data' overlaps the test folder '.*data/yes'"),
    "batch_not_divisible": (["--train", "{tmp}/data", "--val-split", "0.2", "--cpu-replicas", "2",
                             "--batch-size", "7"],
                            r"The batch size 7 does not divide evenly over 2 replicas\. Use a multiple of 2, "
                            r"e\.g\. --batch-size 6"),
    "resume_nothing": (["--train", "{tmp}/data", "--val-split", "0.2", "--resume"],
                       r"Nothing to resume in .*: it holds no run_settings\.json\. Start without --resume"),
    "resume_changed_settings": (["--train", "{tmp}/data", "--val-split", "0.2", "--resume", "--lr", "0.001"],
                                r"--resume needs the interrupted run's settings; these differ: lr\."),
    "small_backbone_pretrained": (["--train", "{tmp}/data", "--val-split", "0.2", "--backbone", "small",
                                   "--weights", "imagenet"],
                                  r"the small backbone has no pretrained weights: add --weights none"),
    "out_holds_a_run": (["--train", "{tmp}/data", "--val-split", "0.2"],
                        r".*out_out_holds_a_run already holds a run\. Choose another --out, or add --resume"),
}
TINY = ["--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "1"]


@pytest.fixture(scope="module")
def outcomes(shared_data, tmp_path_factory, cli_env):
    tmp = tmp_path_factory.mktemp("cli_errors")
    make_br35h_subset(shared_data, tmp / "data", per_class=3)
    (tmp / "empty" / "yes").mkdir(parents=True)
    (tmp / "empty" / "yes" / "notes.txt").write_text("not a scan")
    (tmp / "empty" / "loose.jpg").write_bytes(next((tmp / "data" / "yes").iterdir()).read_bytes())  # no class
    link_files(first_files(shared_data / "br35h" / "yes", 3), tmp / "only_yes" / "yes")
    # A finished-looking run, and an interrupted run whose settings differ from the command's.
    (tmp / "out_out_holds_a_run" / "model").mkdir(parents=True)
    (tmp / "out_out_holds_a_run" / "model" / "model_card.json").write_text("{}")
    from train.cli import parser, settings_of

    saved = settings_of(parser().parse_args(["--out", "x", *TINY, "--train", f"{tmp}/data", "--val-split", "0.2"]))
    resume_dir = tmp / "out_resume_changed_settings"
    (resume_dir / "checkpoint").mkdir(parents=True)
    (resume_dir / "run_settings.json").write_text(json.dumps(saved.to_dict()))

    def call(name):
        args, _ = CASES[name]
        args = TINY + [a.format(tmp=tmp) for a in args] + ["--out", tmp / f"out_{name}"]  # the case's options win
        return name, run_module("train", args, cli_env, timeout=300)

    with ThreadPoolExecutor(3) as pool:
        return tmp, dict(pool.map(call, CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_error_before_training(outcomes, name):
    tmp, results = outcomes
    result = results[name]
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert re.search(r"^error: " + CASES[name][1], result.stderr, re.MULTILINE), result.stderr
    assert "Traceback" not in result.stderr
    assert "Epoch 1" not in result.stdout  # refused before training
    out = tmp / f"out_{name}"
    if name == "out_holds_a_run":  # the existing run is left as it was
        assert sorted(p.name for p in out.rglob("*")) == ["model", "model_card.json"]
    elif name == "resume_changed_settings":
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "run_settings.json"]
    else:
        assert not (out / "model").exists() and not (out / "checkpoint").exists()


@pytest.mark.parametrize("args, message", [
    (["--val-split", "0.2"], "Give --train DIR"),
    (["--train", "."], "Give --val DIR [DIR...] or --val-split FRACTION."),
    (["--train", ".", "--val-split", "1.5"], "--val-split must be between 0 and 1. Received: 1.5"),
    (["--train", ".", "--val-split", "0.2", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--train", ".", "--val-split", "0.2", "--lr", "2"], "--lr must be between 0 and 1"),
    (["--train", ".", "--val-split", "0.2", "--weights", "/no/such/file.h5"], "No file at '/no/such/file.h5'"),
    (["--prepared", "b.npz", "--train", "."], "--prepared already holds the data"),
])
def test_check_arguments(args, message):
    """The argument checks that need no data (in process: no Keras import needed)."""
    from train.cli import check_arguments, parser
    from train.data.discover import DataError

    with pytest.raises(DataError) as info:
        check_arguments(parser().parse_args([*args, "--out", "run"]))
    assert message in str(info.value)


def help_blocks(text: str) -> dict[str, str]:
    """Help text of each --option: from its line to the next option's line."""
    blocks, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^  (--[a-z-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = ""
        if current:
            blocks[current] += " " + line.strip()
    return blocks


def test_help_documents_every_recipe_default():
    result = subprocess.run([sys.executable, "-m", "train", "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    blocks = help_blocks(result.stdout)
    expected = {
        "--weights": ["imagenet"], "--epochs": ["15"], "--batch-size": ["100"], "--lr": ["2e-4", "0.0002"],
        "--label-smoothing": ["0.01"], "--patience": ["5"], "--lr-factor": ["0.2"], "--lr-patience": ["2"],
        "--hist-match-p": ["0.3"], "--rotation": ["30"], "--shift": ["0.1"], "--zoom": ["0.3"],
        "--shear": ["15"], "--brightness": ["0.7, 1.3"], "--hflip": ["0.5"], "--vflip": ["0.5"],
        "--image-size": ["224"], "--trainable-from": ["conv4"], "--near-threshold": ["26"],
    }
    for option, values in expected.items():
        assert option in blocks, f"{option} missing from --help"
        defaults = re.findall(r"\(default:? ([^)]*)\)", blocks[option])
        assert any(value in default for default in defaults for value in values), (option, blocks[option])


def test_resume_refuses_other_data(tmp_path):
    from train.cli import _check_resume, parser, settings_of
    from train.data.discover import DataError

    base = ["--out", str(tmp_path), *TINY, "--val-split", "0.2"]
    settings = settings_of(parser().parse_args(base + ["--train", "a"]))
    (tmp_path / "run_settings.json").write_text(json.dumps(settings.to_dict()))
    _check_resume(tmp_path, settings_of(parser().parse_args(base + ["--train", "a"])))  # same data: accepted
    with pytest.raises(DataError, match="these differ: data"):
        _check_resume(tmp_path, settings_of(parser().parse_args(base + ["--train", "b"])))
