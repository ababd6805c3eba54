"""`python -m core explain-eval` (`brain-mri explain-eval`): the options and the run of the explanation evaluation
(:mod:`core.explain.metrics.evaluation`), writing :mod:`core.explain.metrics.report`'s outputs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from core.explain.metrics.evaluation import (
    SLOW_METHODS,
    Settings,
    UsageError,
    evaluate,
    load_cases,
    pick_examples,
    randomisation_check,
    stratified_order,
)
from core.explain.metrics.faithfulness import (
    RANDOM_DRAWS,
)
from core.explain.metrics.report import (
    CSV_FILE,
    FIGURE_FILE,
    JSON_FILE,
    build_report,
    markdown_table,
    write_card_entry,
    write_outputs,
)
from core.explain.registry import method_names

REPO = Path(__file__).resolve().parents[3]


DEFAULT_DATA = REPO.parent / "shared" / "data" / "lgg"


DEFAULT_MASKS = REPO.parent / "shared" / "data" / "lgg-masks"


def _at_least(minimum: int):
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}. Received: {text}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1). Received: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The explain-eval options, added to `parser` (a subcommand parser); returns it."""
    parser.add_argument("--data", default=str(DEFAULT_DATA), metavar="DIR", help="LGG folder with manifest.csv")
    parser.add_argument("--masks", default=str(DEFAULT_MASKS), metavar="DIR", help="folder of outline PNGs")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    parser.add_argument("--methods", nargs="+", choices=method_names(), default=list(method_names()),
                        metavar="M", help=f"methods to score (default: all: {' '.join(method_names())})")
    parser.add_argument("--limit", type=_at_least(1), metavar="N", help="score only N slices (patient-stratified)")
    parser.add_argument("--slow-limit", type=_at_least(1), default=53, metavar="N",
                        help=f"slices for {', '.join(SLOW_METHODS)} (default 53: one per patient)")
    parser.add_argument("--fraction", type=_share, default=0.1, help="share of the brain hidden (default 0.1)")
    parser.add_argument("--draws", type=_at_least(1), default=RANDOM_DRAWS, help="random maps per slice")
    parser.add_argument("--curve-scans", type=_at_least(0), default=8, metavar="N", help="slices with deletion curves")
    parser.add_argument("--sanity-scans", type=_at_least(0), default=4, metavar="N",
                        help="slices for the randomisation check")
    parser.add_argument("--bootstrap", type=_at_least(1), default=2000, metavar="N", help="bootstrap draws")
    parser.add_argument("--examples", type=_at_least(0), default=4, metavar="N", help="example slices in the figure")
    parser.add_argument("--layer", help="layer to explain (default: the model card's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/explain-eval", metavar="DIR", help="output folder")
    parser.add_argument("--write-card", action="store_true",
                        help="also store the per-method table in the model's card (`explanations`)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by parsed `args`; returns the exit status (0, 1 or 2)."""
    try:
        cases = load_cases(Path(args.data), Path(args.masks))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    classifier = _classifier_or_none(args.model)
    if classifier is None:
        return 1
    settings = Settings(methods=tuple(dict.fromkeys(args.methods)), fraction=args.fraction, draws=args.draws,
                        curve_scans=args.curve_scans, sanity_scans=args.sanity_scans, bootstrap=args.bootstrap,
                        seed=args.seed, examples=args.examples, layer=args.layer)
    order = stratified_order(cases, args.seed)[: args.limit]
    plan = {m: set(order[: args.slow_limit] if m in SLOW_METHODS else order) for m in settings.methods}
    order = [index for index in order if any(index in planned for planned in plan.values())]
    keep = set(order[: settings.sanity_scans]) | set(pick_examples(cases, order[: args.slow_limit], settings.examples))
    started = time.perf_counter()
    results = evaluate(classifier, cases, order, plan, settings, keep)
    sanity = randomisation_check(classifier, results, order[: settings.sanity_scans], settings)
    arguments = {key: value for key, value in vars(args).items() if key != "func"}
    report = build_report(classifier, arguments, settings, results, sanity, time.perf_counter() - started)
    write_outputs(Path(args.out), report, results, cases, settings)
    if getattr(args, "write_card", False):
        write_card_entry(classifier.directory, report)
    print(markdown_table(report))
    print(f"wrote {JSON_FILE}, {CSV_FILE}, {FIGURE_FILE} in {args.out}", file=sys.stderr)
    return 0


def _classifier_or_none(model_dir: str | None):
    """The classifier in `model_dir` (None: the shipped one), or None once the reason is printed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.model.classifier import load_classifier

    try:
        return load_classifier(model_dir)
    except (OSError, ValueError) as error:
        print(f"error: cannot load the model {model_dir or '(shipped)'}: {error}", file=sys.stderr)
    return None
