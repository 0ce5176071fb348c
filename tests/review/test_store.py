"""The review store and the decisions: taxonomy checks, events, conflicts, holds, undo, progress, the queue."""

from __future__ import annotations

import json

import pytest

from tagger.review.decisions import Decision, DecisionError
from tagger.review.store import Conflict, ReviewStore
from tagger.taxonomy import Taxonomy
from tests.review.conftest import XSS_ID, ReviewFiles


def test_output_loads_with_unreadable_lines_as_rows(store: ReviewStore) -> None:
    rows, total = store.queue(status="unreadable")
    assert total == 2
    assert {r.id for r in rows} == {"line-6", "line-7"}
    assert all(r.problem for r in rows)
    progress = store.progress()
    assert (progress.total, progress.reviewed, progress.unreadable) == (28, 0, 2)


def test_queue_puts_unknown_then_least_confident_first(store: ReviewStore) -> None:
    rows, total = store.queue(limit=100)
    assert total == 28
    known = [r.confidence for r in rows if r.confidence is not None]
    unknown_count = sum(r.confidence is None for r in rows)
    assert unknown_count > 0
    assert all(r.confidence is None for r in rows[:unknown_count])  # unknown sorts as least confident
    assert known == sorted(known)
    unknown = rows[:unknown_count]  # among the unknown, the most warnings first
    assert [r.warnings for r in unknown] == sorted((r.warnings for r in unknown), reverse=True)


def test_queue_filters(store: ReviewStore) -> None:
    rows, total = store.queue(query="navy")
    assert total == 0  # sku-001 carries the wrong color (Black); Navy is in no record's values
    rows, total = store.queue(query="t-shirts")
    assert "sku-001" in {r.id for r in rows}
    rows, _ = store.queue(attribute="sleeve_length", limit=100)
    assert rows
    assert all("sleeve_length" in json.loads(store.item(r.id).raw)["attributes"] for r in rows)  # type: ignore[union-attr]
    by_category, _ = store.queue(sort="category", limit=100)
    paths = [r.category_path for r in by_category]
    assert paths == sorted(paths)


def test_decisions_are_checked_against_the_taxonomy(store: ReviewStore, taxonomy: Taxonomy) -> None:
    with pytest.raises(DecisionError, match="not a value of color"):
        store.decide("sku-001", Decision("set_value", "color", "Black", "Ultraviolet"), taxonomy, "ann", 0)
    with pytest.raises(DecisionError, match="does not belong"):
        store.decide("sku-001", Decision("add_value", "storage_capacity", "64 GB"), taxonomy, "ann", 0)
    with pytest.raises(DecisionError, match="not a category"):
        store.decide("sku-001", Decision("set_category", new_value="no-such"), taxonomy, "ann", 0)
    assert store.events() == []  # a refused decision leaves no event
    tags, version = store.decide("sku-001", Decision("set_value", "color", "Black", "Navy"), taxonomy, "ann", 0)
    assert tags.attributes["color"] == ["Navy"]
    assert version == 1
    (event,) = store.events("sku-001")
    assert (event["reviewer"], event["source"], event["action"], event["attribute"]) == (
        "ann",
        "review",
        "set_value",
        "color",
    )
    assert (json.loads(event["before"]), json.loads(event["after"])) == ("Black", "Navy")
    assert event["at"].endswith("+00:00")


def test_set_category_drops_values_the_new_category_does_not_allow(store: ReviewStore, taxonomy: Taxonomy) -> None:
    before = store.item("sku-001")
    assert before is not None and before.tags is not None and "sleeve_length" in before.tags.attributes
    tags, _ = store.decide("sku-001", Decision("set_category", new_value="jeans"), taxonomy, "ann", 0)
    allowed = {a.handle for a in taxonomy.attributes_for("jeans")}
    assert set(tags.attributes) <= allowed
    assert "sleeve_length" not in tags.attributes


def test_a_stale_version_is_a_conflict(store: ReviewStore, taxonomy: Taxonomy) -> None:
    store.decide("sku-002", Decision("remove_value", "pattern", "Floral"), taxonomy, "ann", 0)
    with pytest.raises(Conflict, match="changed by ann"):
        store.decide("sku-002", Decision("accept"), taxonomy, "bob", 0)  # bob's page showed version 0
    store.decide("sku-002", Decision("accept"), taxonomy, "bob", 1)


def test_a_record_is_held_by_one_tab(store: ReviewStore, taxonomy: Taxonomy) -> None:
    assert store.hold("sku-003", "tab-a", "ann") is None
    assert store.hold("sku-003", "tab-b", "bob") == "ann"
    with pytest.raises(Conflict, match="another tab"):
        store.decide("sku-003", Decision("accept"), taxonomy, "bob", 0, tab="tab-b")
    first = store.next_id("confidence", "", "", "tab-b")
    rows, _ = store.queue(limit=100)
    assert first != "sku-003" or rows[0].id != "sku-003"
    assert "sku-003" not in {r.id for r in store.queue(limit=100, skip_held_for="tab-b")[0]}
    store.decide("sku-003", Decision("accept"), taxonomy, "ann", 0, tab="tab-a")  # accepting releases the hold
    assert store.hold("sku-003", "tab-b", "bob") is None


def test_undo_restores_the_tags_and_is_an_event(store: ReviewStore, taxonomy: Taxonomy) -> None:
    store.decide("sku-004", Decision("reject"), taxonomy, "ann", 0)
    assert store.progress().rejected == 1
    assert store.undo("ann") == "sku-004"
    item = store.item("sku-004")
    assert item is not None and item.tags is not None
    assert item.tags.status == "pending"
    assert item.version == 2
    actions = [(e["action"], e["undone_by"]) for e in store.events("sku-004")]
    assert actions == [("reject", 2), ("undo", None)]
    assert store.undo("ann") is None  # nothing left to undo
    assert store.progress().rejected == 0


def test_progress_counts_acceptance(store: ReviewStore, taxonomy: Taxonomy) -> None:
    store.decide("sku-002", Decision("accept"), taxonomy, "ann", 0)
    store.decide("sku-001", Decision("set_value", "color", "Black", "Navy"), taxonomy, "ann", 0)
    store.decide("sku-001", Decision("accept"), taxonomy, "ann", 1)
    store.decide(XSS_ID, Decision("reject"), taxonomy, "ann", 0)
    progress = store.progress()
    assert (progress.reviewed, progress.accepted, progress.edited, progress.rejected) == (3, 1, 1, 1)
    assert progress.acceptance_rate == pytest.approx(1 / 3)
    assert store.queue(status="pending")[1] == 25


def test_reviews_survive_reloading_the_output(files: ReviewFiles, taxonomy: Taxonomy) -> None:
    store = ReviewStore(files.store)
    store.load_output(files.output)
    store.decide("sku-001", Decision("set_value", "color", "Black", "Navy"), taxonomy, "ann", 0)
    store.close()
    again = ReviewStore(files.store)
    again.load_output(files.output)  # a second start reads the output again: decisions stay
    item = again.item("sku-001")
    assert item is not None and item.tags is not None and item.original is not None
    assert item.tags.attributes["color"] == ["Navy"]
    assert item.original.attributes["color"] == ["Black"]
    again.close()
