"""`brain-mri COMMAND [ARGS...]`: the project's commands under one name.

    brain-mri app [STREAMLIT FLAGS]     serve the app (http://localhost:8501)
    brain-mri predict PATH...           = python -m core predict
    brain-mri explain-eval ...          = python -m core explain-eval
    brain-mri train ...                 = python -m train
    brain-mri evaluate ...              = python -m train evaluate
    brain-mri prepare ...               = python -m train prepare
    brain-mri shards pack|unpack ...    = python -m train shards
    brain-mri crossval ...              = python -m train crossval (leave-one-source-out)
    brain-mri calibrate ...             = python -m train calibrate
    brain-mri refit ...                 = python -m train refit (head refit on a frozen backbone)
    brain-mri recard ...                = python -m train recard (a refit card's numbers from its scores)
    brain-mri finetune ...              = python -m train finetune (resumable backbone fine-tuning)
    brain-mri finetune-card ...         = python -m train finetune-card (a finished run as a model directory)
    brain-mri finetune-compare ...      = python -m train finetune-compare (a run against another model)
    brain-mri finetune-strata ...       = python -m train finetune-strata (a run's AUC by slice position, lesion size)
    brain-mri type-head ...             = python -m train type-head (glioma / meningioma / pituitary head)

`python -m train COMMAND` is the same tree for the trainer's commands (without a command it trains:
`brain-mri train`). Each command's own `--help` lists its options. Modules are imported only when
their command runs, so `brain-mri app` never loads the trainer.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

#: command -> (module, function taking argv); "app" is handled apart.
COMMANDS = {
    "predict": ("core.cli", "main"),
    "explain-eval": ("core.cli", "main"),
    "train": ("train.cli", "main"),
    "evaluate": ("train.evaluate", "main"),
    "prepare": ("train.prepare", "main"),
    "shards": ("train.shards", "main"),
    "crossval": ("train.studies.crossval", "main"),
    "calibrate": ("train.studies.calibrate", "main"),
    "refit": ("train.studies.refit", "main"),
    "finetune": ("train.studies.finetune", "main"),
    "recard": ("train.studies.recard", "main"),
    "finetune-card": ("train.studies.finetune_card", "main"),
    "finetune-compare": ("train.studies.finetune_compare", "main"),
    "finetune-strata": ("train.studies.finetune_strata", "main"),
    "type-head": ("train.studies.type_head", "main"),
}


def _usage() -> str:
    return __doc__.split("\n\n")[1]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: brain-mri COMMAND [ARGS...]\n\n{_usage()}")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "app":
        from brain_mri.server import streamlit_command

        full = streamlit_command(*rest)
        os.execv(full[0], full)  # replaces this process; never returns
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}. Choose one of: app, {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    module, function = COMMANDS[command]
    if command in ("predict", "explain-eval"):
        rest = [command, *rest]
    return getattr(importlib.import_module(module), function)(rest)
