"""The model panel's summary of a trainer-written model card (the shipped one)."""

from __future__ import annotations

import json

import pytest

import app_support
from core.model.calibration import Calibration
from core.model.card import CardError, ModelCard
from core.model.classifier import CARD_FILE, DEFAULT_MODEL_DIR


def shipped_card() -> dict:
    return json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text())


def test_summary_shows_unseen_sources_then_held_out_test_not_validation():
    card = shipped_card()
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))["metrics"]
    for row in card["leave_one_source_out"]["rows"]:
        assert (f"{row['held_out']}: AUC {row['auc']:.3f} (95% CI {row['auc_low']:.3f}–{row['auc_high']:.3f}), "
                f"balanced accuracy {row['balanced_accuracy']:.3f}") in summary
    for source, result in card["metrics"]["test"].items():
        low, high = result["auc_ci95"]
        assert f"{source}: AUC {result['auc']:.3f} (95% CI {low:.3f}–{high:.3f})" in summary
        assert f"{result['scans']} scans ({result['no_tumour']} without tumour)" in summary
    assert summary.index("leave-one-source-out") < summary.index("held-out scans of its training sources")
    assert "validation" not in summary


def test_summary_shows_external_results_of_a_trainer_card():
    mos = {"auc": 0.748, "auc_ci95": [0.634, 0.845], "scans": 898, "tumour": 861, "no_tumour": 37,
           "at_card": {"balanced_accuracy": 0.699}, "duplicates_removed": {"exact": 406, "near": 7}}
    card = {"name": "m", "external_test": {"mos/Testing": mos}, "metrics": {"validation": {"auc": 0.99}}}
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))["metrics"]
    assert summary == ("mos/Testing: AUC 0.748 (95% CI 0.634–0.845), balanced accuracy 0.699 at the threshold, "
                       "898 scans (37 without tumour), after removing 413 copies of training scans")


def test_summary_shows_training_counts_and_initialisation():
    card = shipped_card()
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))
    if "counts_after_deduplication" in card["data"]:  # a head refit's card: counts per split and source
        for source, counts in card["data"]["counts_after_deduplication"]["train"].items():
            assert f"train: {source} {counts['tumour']} tumour / {counts['no_tumour']} no tumour" in summary["data"]
    else:  # a fine-tuned model's card: counts per split, and the sources
        assert f"train: {card['data']['counts']['train']} scans" in summary["data"]
        assert f"sources: {', '.join(card['data']['sources'])}" in summary["data"]
    assert card["initialisation"] in summary["data"]
    calibrated = Calibration.from_dict(card["calibration"])([card["threshold"]])[0]
    assert summary["threshold"] == (f"{calibrated:.3f} on the calibrated probability "
                                    f"({card['threshold']:.3f} on the raw network output)")


def test_the_summary_lists_every_limitation_of_the_card():
    card = shipped_card()
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))
    assert summary["limitations"].splitlines() == [f"- {item}" for item in card["limitations"]]
    assert app_support.card_summary(ModelCard.from_dict({"name": "m"}, require_hash=False))["limitations"] == ""


def test_one_line_gives_the_auc_on_each_source_the_model_never_saw():
    card = shipped_card()
    line = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))["unseen_sources"]
    rows = card["leave_one_source_out"]["rows"]
    assert line == ("AUC on each source left out of its training: "
                    + " · ".join(f"{r['held_out']} {r['auc']:.3f}" for r in rows)
                    + f" ({card['leave_one_source_out']['caveat']})")  # the shared backbone saw Br35H
    trainer = {"name": "m", "external_test": {"mos/Testing": {"auc": 0.748, "scans": 898}}}
    assert app_support.card_summary(ModelCard.from_dict(trainer, require_hash=False))["unseen_sources"] == (
        "AUC on a source it never saw: mos/Testing 0.748")
    assert app_support.card_summary(ModelCard.from_dict({"name": "m"}, require_hash=False))["unseen_sources"] == ""


def test_results_table_lists_left_out_sources_then_held_out_scans():
    card = shipped_card()
    rows = app_support.results_table(ModelCard.from_dict(card, require_hash=False))
    loso, test = card["leave_one_source_out"]["rows"], card["metrics"]["test"]
    assert [row["test set"] for row in rows] == ([f"{r['held_out']} (left out of training)" for r in loso]
                                                 + [f"{source} (held-out scans)" for source in test])
    first = loso[0]
    assert rows[0] == {"test set": f"{first['held_out']} (left out of training)",
                       "scans (no tumour)": f"{first['tumour'] + first['no_tumour']} ({first['no_tumour']})",
                       "AUC [95% CI]": f"{first['auc']:.3f} [{first['auc_low']:.3f}, {first['auc_high']:.3f}]",
                       "balanced accuracy": f"{first['balanced_accuracy']:.3f}"}
    lgg = test["lgg"]
    assert rows[len(loso) + list(test).index("lgg")]["balanced accuracy"] == (
        f"{lgg['at_card']['balanced_accuracy']:.3f}")  # at the card's threshold


def test_results_table_of_a_trainer_card_and_of_a_card_without_results():
    card = {"name": "m", "external_test": {"mos/Testing": {"auc": 0.748, "auc_ci95": [0.634, 0.845], "scans": 898,
                                                          "no_tumour": 37, "at_card": {"balanced_accuracy": 0.7}},
                                           "small": {"auc": None, "scans": 5, "no_tumour": 0}}}
    rows = app_support.results_table(ModelCard.from_dict(card, require_hash=False))
    assert [list(row.values()) for row in rows] == [["mos/Testing (never seen)", "898 (37)", "0.748 [0.634, 0.845]",
                                                     "0.700"],
                                                    ["small (never seen)", "5 (0)", "not defined (one class)", ""]]
    assert app_support.results_table(ModelCard.from_dict({"name": "m", "metrics": {"auc": 0.5}},
                                                         require_hash=False)) == []


def test_threshold_of_a_card_without_calibration_is_the_raw_one():
    card = ModelCard.from_dict({"name": "m", "threshold": 0.42}, require_hash=False)
    assert app_support.card_summary(card)["threshold"] == "0.420"


def test_single_class_external_set_says_auc_is_undefined():
    card = {"name": "small", "external_test": {"small": {"auc": None, "scans": 5}}}
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))
    assert "small: AUC not defined (5 scans of one class)" in summary["metrics"]


@pytest.mark.parametrize("card", [
    {"name": "m", "data": "Br35H, 3000 slices"},
    {"name": "m", "data": {"counts_after_deduplication": {"train": 5}}},
    {"name": "m", "data": {"counts_after_deduplication": {"train": {"br35h": "many"}}}},
])
def test_odd_but_valid_cards_are_shown_as_given_without_raising(card):
    summary = app_support.card_summary(ModelCard.from_dict(card, require_hash=False))
    assert set(summary) == {"name", "data", "metrics", "threshold", "unseen_sources", "limitations",
                            "weights_sha256"}
    assert all(isinstance(value, str) for value in summary.values())


@pytest.mark.parametrize("card, entry", [
    ({"name": "m", "external_test": "MOS"}, "external_test"),
    ({"name": "m", "external_test": {"mos": "good"}}, "external_test"),
    ({"name": "m", "threshold": 1.5}, "threshold"),
    ({"name": "m", "threshold": "high"}, "threshold"),
    ({"name": "m", "input": {"size": 7}}, "input.size"),
    ({"threshold": 0.5}, "name"),
    ({"name": "m", "weights_sha256": "abc"}, "weights_sha256"),
])
def test_malformed_cards_are_refused_naming_the_entry(card, entry):
    with pytest.raises(CardError, match=entry.replace(".", r"\.")):
        ModelCard.from_dict(card)
