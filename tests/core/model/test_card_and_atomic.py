"""core.model.card (the one model-card schema) and core.io.atomic (no half-written files)."""

from __future__ import annotations

import json

import pytest

from core.io.atomic import atomic_path, write_atomic
from core.model.card import CARD_FILE, CardError, ModelCard, carried_over, read_card, update_card, write_card

HASH = "ab" * 32


def test_card_round_trips_through_json_keeping_unknown_entries():
    card = ModelCard.from_dict({"name": "m", "weights_sha256": HASH, "threshold": 0.3, "input": {"size": 64},
                                "external_test": {"lgg": {"auc": 0.8}}, "provenance": "notes"})
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.extra == {"provenance": "notes"} and again.input_size == 64
    assert again.model_id == f"m@{HASH[:12]}"
    assert json.loads(card.to_json())["provenance"] == "notes"


def test_with_entries_validates_and_routes_unknown_names_to_extra():
    card = ModelCard.from_dict({"name": "m"}, require_hash=False)
    changed = card.with_entries(threshold=0.7, notes=["a"])
    assert changed.threshold == 0.7 and changed.extra == {"notes": ["a"]}
    with pytest.raises(CardError, match="threshold"):
        card.with_entries(threshold=2)


def test_broken_json_names_the_source():
    with pytest.raises(CardError, match="card.json is not valid JSON"):
        ModelCard.from_json("{", source="card.json")


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "report.json"
    write_atomic(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temporary file left
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"


def test_update_card_changes_only_the_named_entries_and_leaves_no_partial_file(tmp_path):
    write_card(tmp_path, ModelCard(name="m", weights_sha256="a" * 64, threshold=0.4, extra={"notes": "kept"}))
    updated = update_card(tmp_path, threshold=0.6, explanations={"default": "hirescam"})
    assert read_card(tmp_path) == updated
    assert updated.threshold == 0.6 and updated.weights_sha256 == "a" * 64
    assert updated.extra == {"notes": "kept", "explanations": {"default": "hirescam"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == [CARD_FILE]
    with pytest.raises(CardError, match="threshold"):
        update_card(tmp_path, threshold=2.0)
    assert read_card(tmp_path).threshold == 0.6

def test_a_new_head_keeps_the_backbone_entries_a_new_backbone_keeps_only_the_description():
    card = ModelCard.from_dict({"name": "m", "weights_sha256": "ab" * 32, "threshold": 0.3, "intended_use": "demo",
                                "external_test": {"x": {"auc": 0.9}}, "tumour_type": {"file": "type_head.keras"},
                                "published_reference": "a paper"}, require_hash=False)
    after_head = carried_over(card, "head")
    assert "weights_sha256" not in after_head and "external_test" not in after_head
    assert after_head["tumour_type"] == {"file": "type_head.keras"} and after_head["threshold"] == 0.3
    after_backbone = carried_over(card, "backbone")
    assert set(after_backbone) >= {"name", "intended_use", "published_reference"}
    assert not {"tumour_type", "threshold", "weights_sha256", "external_test"} & set(after_backbone)
    with pytest.raises(ValueError, match="retrained must be one of head, backbone"):
        carried_over(card, "logit")
