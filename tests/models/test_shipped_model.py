"""The model shipped in models/: it loads, verifies its hash, predicts, and its card's numbers reproduce."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from core import load_classifier, read_scan
from core.model.classifier import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, sha256_of
from tests.support.close import assert_close
from train.studies.crossval_table import recompute
from train.studies.refit_final import SCORES_FILE, card_numbers

REQUIRED_CARD_FIELDS = ("name", "command", "seed", "versions", "initialisation", "recipe", "data", "threshold",
                        "threshold_method", "metrics", "leave_one_source_out", "calibration", "intended_use",
                        "limitations", "weights_sha256")
#: The run that fitted the shipped head: its leave-one-source-out table and scores.json.
RUN_DIR = DEFAULT_MODEL_DIR / "training_runs" / "head_refit"
#: A fine-tuned model's run on every source: its results.json and scores.json.
FINETUNE_RUN_DIR = DEFAULT_MODEL_DIR / "training_runs" / "finetune"  # finetune_card.SCORES_IN_MODEL's folder
REPO = DEFAULT_MODEL_DIR.parents[1]


def page(name: str) -> str:
    """README.md or a page under docs/, as text."""
    return (REPO / name).read_text()


@pytest.fixture(scope="module")
def shipped():
    if not (DEFAULT_MODEL_DIR / MODEL_FILE).is_file():
        pytest.fail(f"The shipped model is missing from {DEFAULT_MODEL_DIR}")
    return load_classifier()


def test_card_describes_the_model(shipped):
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    missing = [field for field in REQUIRED_CARD_FIELDS if field not in card]
    assert not missing, f"model card lacks {missing}"
    assert card["weights_sha256"] == sha256_of(DEFAULT_MODEL_DIR / MODEL_FILE)
    assert 0.0 < shipped.threshold < 1.0
    assert shipped.input_size == card["input"]["size"] == 224
    assert "not" in card["intended_use"].lower() and card["limitations"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def test_card_links_to_the_side_by_side_comparison():
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    comparison = card["comparison"]
    document, anchor = comparison["document"].split("#")
    text = (DEFAULT_MODEL_DIR.parents[1] / document).read_text()
    headings = [line.lstrip("#") for line in text.splitlines() if line.startswith("#")]
    assert anchor in [github_anchor(h) for h in headings], f"{document} has no heading for #{anchor}"
    script = comparison["command"].split()[1]
    assert (DEFAULT_MODEL_DIR.parents[1] / script).is_file()
    assert comparison["command"] in re.sub(r"\\\n\s*", "", text)  # the page gives the same command
    results = json.loads((DEFAULT_MODEL_DIR.parents[1] / comparison["results"]).read_text())
    ours = [row for row in results["rows"] if row["model"].startswith("this project")]
    weights = f"@{card['weights_sha256'][:12]})"
    assert ours and all(row["model"].endswith(weights) for row in ours)  # measured with these weights


def test_loads_by_default_and_predicts_real_scans(shipped, shared_data):
    tumour = read_scan(shared_data / "br35h" / "yes" / "y0.jpg").pixels
    normal = read_scan(shared_data / "br35h" / "no" / "no0.jpg").pixels
    probabilities = shipped.predict([tumour, normal])
    assert probabilities.dtype == np.float32 and probabilities.shape == (2,)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert probabilities[0] > shipped.threshold > probabilities[1]  # training scans, one of each class


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    with open(copy / MODEL_FILE, "r+b") as handle:
        handle.seek(-100, 2)
        handle.write(b"\0" * 10)
    with pytest.raises(ValueError, match="do not match"):
        load_classifier(copy)


def test_card_numbers_recompute_from_the_committed_scores_and_table(shipped):
    """Threshold, every metric block, Brier scores and calibration from the committed scores.json; the
    leave-one-source-out rows from the committed fold results, as the card records them. A head refit's card
    (train.studies.refit_final, Youden's threshold; rows from crossval.json) or a fine-tuned model's
    (train.studies.finetune_card, threshold at a calibrated 0.5; rows from the fold runs' results.json)."""
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    if "fine_tuning" in card:
        from train.studies.finetune_card import fold_row, split_scores
        from train.studies.refit_final import CALIBRATED_HALF

        payload = json.loads((FINETUNE_RUN_DIR / SCORES_FILE).read_text())
        numbers = json.loads(json.dumps(card_numbers(split_scores(payload), threshold_rule=CALIBRATED_HALF)))
        rows = [fold_row(json.loads((REPO / path).read_text())) for path in card["leave_one_source_out"]["results"]]
        assert_close(rows, card["leave_one_source_out"]["rows"], "leave_one_source_out")
    else:
        scores = json.loads((RUN_DIR / SCORES_FILE).read_text())
        numbers = json.loads(json.dumps(card_numbers(scores)))
        table = recompute(RUN_DIR / "crossval.json")
        assert card["leave_one_source_out"]["summary"] == table["summary"]
        assert card["leave_one_source_out"]["rows"] == [{k: row[k] for k in card_row} for row, card_row in
                                                        zip(table["rows"], card["leave_one_source_out"]["rows"])]
    assert_close(numbers["threshold"], card["threshold"], "threshold")
    assert card["threshold"] == shipped.threshold
    assert_close(numbers["metrics"], card["metrics"], "metrics")
    assert_close(numbers["calibration"], card["calibration"], "calibration")
    assert {row["held_out"] for row in card["leave_one_source_out"]["rows"]} >= {"mos", "lgg"}


def test_the_cards_limitation_on_central_slices_recomputes_from_its_scores(shared_data):
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    if "strata_file" not in card.get("fine_tuning", {}):
        pytest.skip("the shipped card records no strata (a head refit, or a run without LGG test slices)")
    from train.studies.finetune_strata import central_summary, run_strata

    strata = json.loads((DEFAULT_MODEL_DIR / card["fine_tuning"]["strata_file"]).read_text())
    payload = json.loads((FINETUNE_RUN_DIR / SCORES_FILE).read_text())
    recomputed = run_strata(payload, strata["variant"], shared_data, tuple(strata["band"]))
    assert strata["folders"] == json.loads(json.dumps(recomputed))
    assert central_summary(strata) in card["limitations"]


@pytest.mark.slow
def test_card_counts_and_scores_reproduce_from_the_data(shipped, shared_data, tmp_path):
    """From the data alone: the kept counts, the three-way split, and the raw probabilities the committed
    scores hold (a seeded sample of test scans, scored again by the shipped model)."""
    from train.data import cache, folds
    from train.scoring import predict_crops
    from train.studies.refit_final import three_way_split

    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    fine_tuned = "fine_tuning" in card
    sources = folds.resolve_sources(shared_data, defaults=folds.ALL_SEQUENCES if fine_tuned else folds.DEFAULT_SOURCES)
    pool = folds.build_pool(sources, shipped.input_size, cache_dir=tmp_path, workers=2, log=lambda text: None)
    split = three_way_split(pool.groups, pool.labels, 0.1, seed=card["seed"])
    in_test = [Path(sample.path).resolve().relative_to(shared_data).as_posix()
               for sample, part in zip(pool.samples, split) if part == "test"]
    if fine_tuned:
        from train.studies.finetune_card import SHIPPED_VARIANT

        payload = json.loads((FINETUNE_RUN_DIR / SCORES_FILE).read_text())
        assert card["data"]["counts"]["train"] == int((split == "train").sum())
        assert card["data"]["counts"]["test"] == int((split == "test").sum())
        paths, probs = payload["scans"]["test"], payload["variants"][SHIPPED_VARIANT]["test"]
    else:
        assert pool.report["sources"] == card["data"]["sources"]
        for part, counts in card["data"]["counts_after_deduplication"].items():
            for source, n in counts.items():
                chosen = (split == part) & (pool.sources == source)
                assert n == {"tumour": int(pool.labels[chosen].sum()),
                             "no_tumour": int((pool.labels[chosen] == 0).sum())}
        test = json.loads((RUN_DIR / SCORES_FILE).read_text())["test"]
        paths, probs = test["paths"], test["probs"]
    assert in_test == paths  # the same scans, in the same order
    pick = np.random.default_rng(0).choice(len(paths), 24, replace=False)
    entries = cache.crop_all([shared_data / paths[i] for i in pick], shipped.input_size, cache_dir=tmp_path)
    again = predict_crops(shipped.predict_inputs, np.stack([entry.crop for entry in entries]))
    assert again == pytest.approx([probs[i] for i in pick], abs=1e-4)


def _f(value) -> str:
    return "" if value is None else f"{value:.3f}"


def readme_rows(card: dict) -> list[str]:
    """The README's table of the shipped model, one Markdown row per set, built from the card."""
    rows = []
    left_out = "left out of the fine-tuning" if "fine_tuning" in card else "left out of the head's training"
    for row in card["leave_one_source_out"]["rows"]:
        name = row["held_out"] + (" (not independent: the backbone trained on it)" if row["held_out"] == "br35h"
                                  else "")
        rows.append(f"| {name}, {left_out} | {row['tumour'] + row['no_tumour']} "
                    f"({row['tumour']} / {row['no_tumour']}) | {_f(row['auc'])} [{_f(row['auc_low'])}, "
                    f"{_f(row['auc_high'])}] | {_f(row['balanced_accuracy'])} | {_f(row['sensitivity'])} | "
                    f"{_f(row['specificity'])} |")
    for name, result in card["metrics"]["test"].items():
        at = result["at_card"]
        low, high = result["auc_ci95"]
        rows.append(f"| {name}, held-out test (in-distribution) | {result['scans']} ({result['tumour']} / "
                    f"{result['no_tumour']}) | {_f(result['auc'])} [{_f(low)}, {_f(high)}] | "
                    f"{_f(at['balanced_accuracy'])} | {_f(at['sensitivity'])} | {_f(at['specificity'])} |")
    return rows


@pytest.mark.parametrize("name", ["README.md", "docs/model.md"])
def test_readme_and_the_model_page_quote_the_card(name):
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    missing = [row for row in readme_rows(card) if row not in page(name)]
    assert not missing, f"{name} does not quote these rows of the card:\n" + "\n".join(missing)


def test_the_model_page_quotes_the_calibration_and_threshold():
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())
    readme = page("docs/model.md")
    calibration = card["calibration"]
    for name, after in calibration["after"].items():
        before, counts = calibration["before"][name], calibration["checked_on"][name]
        (low, high), (floor, floor95) = after["ece_ci95"], after["ece_if_calibrated"]
        assert (f"| {name} ({counts['tumour']} / {counts['no_tumour']}) | {before['ece']:.3f} -> {after['ece']:.3f} "
                f"| {low:.3f}–{high:.3f} | {floor:.3f} ({floor95:.3f}) "
                f"| {before['brier']:.3f} -> {after['brier']:.3f} |") in readme
    assert f"threshold, {card['threshold']:.3f}," in readme


def test_the_maps_page_quotes_the_explanation_table_and_the_default_is_its_best_fast_method():
    from core.explain import DEFAULT_METHOD
    from core.explain.metrics.evaluation import SLOW_METHODS

    explanations = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())["explanations"]
    missing = [line for line in explanations["table"].splitlines() if line not in page("docs/explanations.md")]
    assert not missing, f"docs/explanations.md does not quote the card's explanation table: {missing}"
    # the default: the best-pointing fast method among those whose maps are faithful (hiding their top share lowers
    # the probability more than hiding a random share: the faithfulness ratio's interval lies above 1)
    fast = {m: s for m, s in explanations["methods"].items()
            if m not in SLOW_METHODS and s["faithfulness_ratio"]["ci95"][0] > 1}
    best = max(fast, key=lambda m: (fast[m]["pointing_15px"]["value"], fast[m]["energy_inside"]["value"]))
    assert DEFAULT_METHOD == best, f"the default method is {DEFAULT_METHOD}; the card's table favours {best}"


def test_the_type_head_table_recomputes_from_its_scores_and_its_page_quotes_it(shipped):
    """The card's tumour_type table is what train.studies.type_table computes from the committed scores; the head was
    fit
    on this backbone's features; docs/tumour_type.md quotes the table."""
    from core.model.tumour_type import CARD_ENTRY
    from train.studies.refit import backbone_sha
    from train.studies.type_table import markdown, type_tables

    entry = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())[CARD_ENTRY]
    scores = json.loads((DEFAULT_MODEL_DIR / entry["scores_file"]).read_text())
    assert entry["table"] == json.loads(json.dumps(type_tables(scores)))
    assert entry["backbone_sha256"] == backbone_sha(shipped.model)
    assert shipped.type_head is not None and shipped.type_head.uncertain_below == entry["uncertain_below"]
    missing = [line for line in markdown(entry["table"], scores["heads"]).splitlines()
               if line.startswith("| ") and line not in page("docs/tumour_type.md")]
    assert not missing, "docs/tumour_type.md does not quote these rows of the type table:\n" + "\n".join(missing)
