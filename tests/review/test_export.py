"""Feedback out (pool, gold and eval config, report) and in (outside feedback events, with their source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tagger.cli import app
from tagger.evals.config import load_config
from tagger.evals.dataset import load_labeled
from tagger.product import Columns
from tagger.review.decisions import Decision
from tagger.review.export import export
from tagger.review.feedback import import_feedback
from tagger.review.products import catalog_products
from tagger.review.store import ReviewStore
from tagger.taxonomy import Taxonomy
from tests.review.conftest import ReviewFiles


def _review_three(store: ReviewStore, files: ReviewFiles, taxonomy: Taxonomy) -> None:
    store.load_products(catalog_products(files.catalog, Columns(), clean=True))
    store.decide("sku-001", Decision("set_value", "color", "Black", "Navy"), taxonomy, "ann", 0)
    store.decide("sku-001", Decision("accept"), taxonomy, "ann", 1)
    store.decide("sku-002", Decision("accept"), taxonomy, "ann", 0)
    store.decide("sku-003", Decision("reject"), taxonomy, "ann", 0)


def test_export_writes_pool_gold_eval_and_report(
    store: ReviewStore, files: ReviewFiles, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    _review_three(store, files, taxonomy)
    summary = export(store, tmp_path / "export", None)
    assert (summary.accepted, summary.rejected, summary.without_text) == (2, 1, 0)
    pool = [json.loads(line) for line in summary.pool.read_text().splitlines()]
    assert [row["id"] for row in pool] == ["sku-001", "sku-002"]  # rejected and unreviewed records stay out
    assert pool[0]["attributes"]["color"] == ["Navy"]  # the final tags, not the run's
    assert pool[0]["category"] == "t-shirts"
    assert pool[0]["title"].startswith("Northwind Men's Classic Crew Neck T-Shirt")
    assert pool[0]["brand"] == "Northwind"

    config = load_config(summary.eval_config)
    examples = load_labeled(config, taxonomy, tmp_path)  # the eval reads the gold beside its config
    assert [e.product.id for e in examples] == ["sku-001", "sku-002"]
    assert examples[0].gold.category_id == "t-shirts"
    assert examples[0].gold.attributes["color"] == ["Navy"]

    report = json.loads(summary.report.read_text())
    assert report["reviewed"] == 3 and report["rejected"] == 1 and report["accepted_unchanged"] == 1
    assert report["attributes"]["color"]["removed"] == 1 and report["attributes"]["color"]["added"] == 1
    assert report["attributes"]["color"]["records_changed"] == 1
    assert report["categories"]["jeans"]["rejected"] == 1
    assert report["events_by_source"] == {"review": 4}


def test_the_pool_reads_as_examples(store: ReviewStore, files: ReviewFiles, taxonomy: Taxonomy, tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    from tagger.retrieval.examples import read_pool

    _review_three(store, files, taxonomy)
    summary = export(store, tmp_path / "export", None)
    items = read_pool(summary.pool, taxonomy)
    assert [(i.product.id, i.category.id) for i in items] == [("sku-001", "t-shirts"), ("sku-002", "dresses")]
    assert items[0].attributes["color"] == ["Navy"]


def test_feedback_imports_with_its_source(store: ReviewStore, taxonomy: Taxonomy, tmp_path: Path) -> None:
    feedback = tmp_path / "storefront.jsonl"
    lines = [
        {"id": "sku-002", "action": "remove", "attribute": "pattern", "value": "Floral", "who": "merchant-7"},
        {"id": "sku-002", "action": "add", "attribute": "color", "value": "Purple"},
        {"id": "sku-005", "action": "accept", "at": "2026-01-02T03:04:05+00:00"},
        {"id": "sku-005", "action": "add", "attribute": "color", "value": "Not A Colour"},
        {"id": "nobody", "action": "accept"},
        "not json",
    ]
    feedback.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n")
    summary = import_feedback(store, feedback, taxonomy, "storefront")
    assert summary.applied == 3
    assert [p.split(":")[0] for p in summary.problems] == ["line 4", "line 5", "line 6"]
    events = store.events()
    assert {e["source"] for e in events} == {"storefront"}
    assert [e["reviewer"] for e in events] == ["merchant-7", "storefront", "storefront"]
    assert events[2]["at"] == "2026-01-02T03:04:05+00:00"
    item = store.item("sku-002")
    assert item is not None and item.tags is not None
    assert "pattern" not in item.tags.attributes and "Purple" in item.tags.attributes["color"]


def test_cli_export_and_import(files: ReviewFiles, taxonomy: Taxonomy, tmp_path: Path) -> None:
    store = ReviewStore(files.store)
    store.load_output(files.output)
    _review_three(store, files, taxonomy)
    store.close()
    feedback = tmp_path / "fb.jsonl"
    feedback.write_text(json.dumps({"id": "sku-004", "action": "accept"}) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["review", "import", str(files.output), str(feedback), "--source", "shop"])
    assert result.exit_code == 0, result.output
    assert "1 events imported" in result.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["review", "export", str(files.output), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pool = [json.loads(line)["id"] for line in (out / "pool.jsonl").read_text().splitlines()]
    assert pool == ["sku-001", "sku-002", "sku-004"]  # the storefront's accept counts as a review
    config = yaml.safe_load((out / "eval.yaml").read_text())
    assert config["dataset"]["path"] == "gold.jsonl"
    report = json.loads((out / "report.json").read_text())
    assert report["events_by_source"] == {"review": 4, "shop": 1}


def test_cli_refuses_a_missing_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["review", "export", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "output file not found" in result.output
