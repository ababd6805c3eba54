"""`brain-mri recard`: recompute a head-refit card's numbers from its run's stored scores, without refitting.

    brain-mri recard --run RUN_DIR --model MODEL_DIR

The threshold, every metric block and the calibration (with its checks) are computed again by
`train.studies.refit_final.card_numbers` from RUN_DIR/scores.json (the validation and test scans' raw
probabilities, as `brain-mri refit` wrote them) and written into MODEL_DIR's card, atomically, with
the reliability plot drawn again. For when the way those numbers are computed changes: the weights and
every other card entry are left as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.model.calibration import Calibration
from core.model.card import CARD_FILE, read_card, write_card
from train.studies import refit_final
from train.studies.calibrate import RELIABILITY_PLOT, plot_calibration_check


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="brain-mri recard", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help=f"the refit's output folder ({refit_final.SCORES_FILE})")
    p.add_argument("--model", type=Path, required=True, help="the model folder whose card is rewritten")
    return p


def recard(run: Path, model: Path) -> dict:
    """Write the numbers computed from run/scores.json into model's card; returns them.

    Raises FileNotFoundError (no scores.json or card), ValueError (unreadable scores or card).
    """
    scores_path = run / refit_final.SCORES_FILE
    try:
        scores = json.loads(scores_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{scores_path} is not valid JSON ({error}).") from None
    card = read_card(model)
    expected = f"{scores_path} must hold the 'val' and 'test' scores that brain-mri refit writes"
    if not isinstance(scores, dict) or not {"val", "test"} <= set(scores):
        raise ValueError(f"{expected}.")
    try:
        numbers = refit_final.card_numbers(scores, seed=card.extra.get("seed", 0))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{expected} (sources, labels and probs for each); {error!r} is missing or "
                         "malformed.") from None
    plot_calibration_check(model / RELIABILITY_PLOT, Calibration.from_dict(numbers["calibration"]),
                           refit_final.check_sets(scores))
    write_card(model, card.with_entries(**numbers))
    return numbers


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        numbers = recard(args.run, args.model)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, after in numbers["calibration"]["after"].items():
        low, high = after["ece_ci95"]
        print(f"{name}: calibrated ECE {after['ece']:.3f} (95% CI {low:.3f}-{high:.3f}; a perfectly calibrated "
              f"model would show {after['ece_if_calibrated'][0]:.3f} on these {after['scans']} scans)")
    print(f"Wrote {args.model / CARD_FILE}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
