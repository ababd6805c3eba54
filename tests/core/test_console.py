"""The `brain-mri` console command dispatches to each tool (installed by `pip install -e .`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brain_mri import console
from brain_mri.server import SETTINGS, streamlit_command


def test_help_lists_every_command(capsys):
    assert console.main([]) == 2
    text = capsys.readouterr().out
    for command in ("app", "predict", "explain-eval", "train", "evaluate", "prepare", "shards", "crossval",
                    "calibrate", "refit", "recard", "finetune", "finetune-card", "finetune-compare", "type-head"):
        assert f"brain-mri {command}" in text


def test_unknown_command_is_a_usage_error(capsys):
    assert console.main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


@pytest.mark.parametrize("command, prog", [("predict", "python -m core"), ("train", "python -m train"),
                                           ("evaluate", "brain-mri evaluate"),
                                           ("prepare", "brain-mri prepare"),
                                           ("shards", "brain-mri shards"),
                                           ("explain-eval", "python -m core explain-eval"),
                                           ("calibrate", "brain-mri calibrate"),
                                           ("crossval", "brain-mri crossval"),
                                           ("refit", "brain-mri refit"),
                                           ("recard", "brain-mri recard"),
                                           ("finetune", "brain-mri finetune"),
                                           ("finetune-card", "brain-mri finetune-card"),
                                           ("finetune-compare", "brain-mri finetune-compare"),
                                           ("type-head", "brain-mri type-head")])
def test_each_command_reaches_its_tool(command, prog, capsys):
    with pytest.raises(SystemExit) as stopped:
        console.main([command, "--help"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {prog}")


def test_app_command_serves_streamlit_app_with_the_project_settings():
    command = streamlit_command("--server.port", "9999")
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("streamlit_app.py")
    assert command[-2:] == ["--server.port", "9999"]
    assert "--browser.gatherUsageStats" in SETTINGS and "--server.maxUploadSize" in SETTINGS


def test_module_entry_points_still_work():
    for module in ("core", "train", "brain_mri"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert "usage" in result.stdout.lower()
