"""The new options: `brain-mri crossval` checks and profiles, and `python -m train`'s generalisation
and checkpoint options (in process, before any data or model)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from train.cli import check_arguments, parser, settings_of
from train.data.discover import DataError
from train.settings import RunSettings
from train.studies import crossval
from train.transforms.appearance import OFF, STANDARD


def crossval_args(*extra, out="cv_out"):
    """(job, plan, settings) of a crossval command line."""
    args = crossval.parser().parse_args(["--out", str(out), *extra])
    plan = crossval.plan_of(args)
    return crossval.CrossvalJob.from_args(args), plan, crossval.settings_of(args, plan)


def test_profiles_fill_what_is_not_given():
    _, plan, settings = crossval_args()
    assert plan == {"image_size": 64, "cap": 150, "test_cap": 300, "val_split": 0.2, "checkpoint_every": 5}
    assert settings.optimisation.epochs == 5 and settings.optimisation.batch_size == 32
    assert settings.optimisation.lr == 1e-3 and not settings.pretrained and settings.trainable_from == "conv1"
    assert settings.balance == "none" and settings.appearance == OFF and settings.normalise == "none"
    assert settings.bn_momentum == 0.9  # 60 steps from random initialisation: settled statistics
    assert crossval_args("--bn-momentum", "0.95")[2].bn_momentum == 0.95
    _, plan, settings = crossval_args("--profile", "full", "--epochs", "30", "--cap", "0", "--balance",
                                         "source-class", "--appearance", "standard", "--appearance-noise", "3")
    assert plan["image_size"] == 224 and plan["cap"] is None and plan["test_cap"] is None
    assert settings.optimisation.epochs == 30 and settings.optimisation.batch_size == 64
    assert settings.optimisation.patience == 12 and settings.optimisation.lr_patience == 4
    assert settings.balance == "source-class" and settings.appearance == dataclasses.replace(STANDARD, noise=3.0)
    assert settings.data["crossval"]["profile"] == "full" and settings.bn_momentum is None


@pytest.mark.parametrize("extra, message", [
    (["--val-split", "1.2"], "--val-split must be between 0 and 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--cap", "-3"], "--cap must be at least 1"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
    (["--bundles", "b", "--source", "a=x"], "--bundles already holds the folds"),
    (["--resume"], "Nothing to resume in"),
])
def test_crossval_argument_errors(extra, message, tmp_path):
    job, plan, settings = crossval_args(*extra, out=tmp_path / "new")
    with pytest.raises(DataError, match=message):
        crossval.check_arguments(job, plan, settings)


def test_crossval_refuses_an_existing_run_and_bad_sources(tmp_path, capsys):
    (tmp_path / "crossval_settings.json").write_text("{}")
    assert crossval.main(["--out", str(tmp_path)]) == 2
    assert "already holds a cross-validation" in capsys.readouterr().err
    assert crossval.main(["--out", str(tmp_path / "b"), "--source", "nofolders"]) == 2
    assert "--source needs NAME=DIR[,DIR...]" in capsys.readouterr().err
    assert crossval.main(["--out", str(tmp_path / "c"), "--appearance-jpeg", "200"]) == 2
    assert "jpeg must be 0 (off) or a quality in [1, 95]" in capsys.readouterr().err


def test_train_cli_generalisation_options():
    base = ["--out", "run", "--train", "x", "--val-split", "0.2"]
    settings = settings_of(parser().parse_args(base))
    assert (settings.balance, settings.appearance, settings.normalise) == ("none", OFF, "none")  # the recipe
    assert settings.bn_momentum is None
    assert settings_of(parser().parse_args([*base, "--bn-momentum", "0.9"])).bn_momentum == 0.9
    with pytest.raises(DataError, match="bn_momentum must be between 0 and 1"):
        settings_of(parser().parse_args([*base, "--bn-momentum", "1.5"]))
    args = parser().parse_args([*base, "--balance", "source-class", "--appearance", "standard",
                                "--appearance-gamma", "0.8", "1.2", "--appearance-jpeg", "0", "--normalise", "brain",
                                "--checkpoint-every", "3"])
    settings = settings_of(args)
    assert settings.appearance == dataclasses.replace(STANDARD, gamma=(0.8, 1.2), jpeg=0)
    assert settings.balance == "source-class" and settings.normalise == "brain" and args.checkpoint_every == 3
    record = settings.to_dict()
    assert record["appearance_gamma"] == [0.8, 1.2] and record["normalise"] == "brain"
    json.dumps(record)  # JSON-ready
    with pytest.raises(DataError, match="gamma must be a range"):
        settings_of(parser().parse_args([*base, "--appearance-gamma", "2", "1"]))
    with pytest.raises(DataError, match="--checkpoint-every must be at least 1"):
        check_arguments(parser().parse_args(["--out", "run", "--train", ".", "--val-split", "0.2",
                                             "--checkpoint-every", "0"]))


def test_resume_accepts_records_written_before_the_new_options():
    settings = RunSettings()
    old = {k: v for k, v in settings.to_dict().items()
           if k not in ("balance", "normalise", "bn_momentum") and not k.startswith("appearance_")}
    assert settings.differences(old) == []
    changed = dataclasses.replace(settings, balance="source-class")
    assert changed.differences(old) == ["balance"]
    with pytest.raises(ValueError, match="balance must be one of none, source-class"):
        RunSettings(balance="classes")
