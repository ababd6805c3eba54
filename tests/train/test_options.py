"""train.options.command_line: the command a run records, however it was invoked."""

from __future__ import annotations

import sys

import pytest

from train.options import command_line


@pytest.mark.parametrize("argv", [["brain-mri", "finetune", "--out", "r", "--resume"],  # brain-mri COMMAND
                                  ["train/__main__.py", "finetune", "--out", "r", "--resume"],  # python -m train
                                  ["train/studies/finetune.py", "--out", "r", "--resume"]])  # the module itself
def test_the_recorded_command_names_the_command_once(monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", argv)
    assert command_line("finetune") == "brain-mri finetune --out r --resume"
    assert command_line("finetune", prog="python -m train finetune") == "python -m train finetune --out r --resume"
