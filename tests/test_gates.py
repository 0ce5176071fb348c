"""Gates that can fail: each gated eval fails on pipelines broken on purpose, scored by the real eval code against the
committed baseline, and passes the real pipeline; the conformance check fails on records outside the taxonomy; a
failing run is never saved as the baseline.

The broken pipelines (tagger.evals.broken) make no model call, so they run on every product of each gated eval. The
real pipeline's full runs take minutes: they are marked slow (`make test-slow`); CI runs the same evals through the
CLI (`make gate`, `make gate-data`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tagger.evals.broken import PLANTED, PlantedPipeline
from tagger.evals.config import EvalConfig, default_data_root, load_config
from tagger.evals.conformance import ConformanceError, check, read_reference
from tagger.evals.gate import check_gate
from tagger.evals.output import load_result
from tagger.evals.runner import EvalOutcome, Pipeline, run_eval
from tagger.product import Product
from tagger.records import Record, TagRecord
from tagger.taxonomy import Category, Taxonomy, load_taxonomy
from tests.conftest import GOOGLE_FILE, ROOT, SHOPIFY_DIR

DATA_ROOT = default_data_root()
needs_data = pytest.mark.skipif(not DATA_ROOT.is_dir(), reason=f"no data root at {DATA_ROOT} (set TAGGER_DATA_ROOT)")
MODEL_FREE = ["smoke", "smoke-choose"]  # gated evals on the sample catalog, in the repository
DATA = ["flipkart-shopify-gate", "wdc-pave-shopify-gate", "oa-mine-shopify-gate"]  # `make gate-data`

# What must fail, per gated eval and broken pipeline (more may fail too). The retrieval category is right where
# MiniLM is, so brand-only and first-value fail on attributes; random-category fails on the category.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "smoke": {
        "brand-only": {"attribute_f1@-brand", "attribute_recall@-brand"},
        "first-value": {"attribute_precision", "attribute_f1", "attribute_f1@brand"},
        "random-category": {"category_exact", "category_hf1", "attribute_f1@-brand", "attribute_precision"},
    },
    "smoke-choose": {
        "brand-only": {"attribute_f1@-brand"},
        "first-value": {"attribute_f1@brand"},
        "random-category": {"category_exact", "category_depth_1", "category_hf1"},
    },
    "flipkart-shopify-gate": {
        "brand-only": {"attribute_f1"},
        "first-value": {"attribute_f1"},
        "random-category": {"category_exact", "category_hf1"},
    },
    "wdc-pave-shopify-gate": {"random-category": {"category_exact", "category_hf1"}},
    "oa-mine-shopify-gate": {"random-category": {"category_exact", "category_hf1"}},
}


def _config(name: str) -> EvalConfig:
    return load_config(ROOT / "evals" / f"{name}.yaml")


def _taxonomy(config: EvalConfig) -> Taxonomy:
    return load_taxonomy(config.resolve(config.taxonomy, DATA_ROOT) if config.taxonomy else None)


def _gate(config: EvalConfig, outcome: EvalOutcome) -> list[str]:
    assert config.baseline is not None, f"{config.name} is gated against a committed baseline"
    baseline = load_result(Path(config.resolve(config.baseline, DATA_ROOT)))
    assert baseline.gate == [], f"{config.name}'s baseline must be a run that passed its gate"
    return check_gate(outcome.main.metrics, config.gate, baseline.run().metrics)


def _failed(failures: list[str]) -> set[str]:
    return {failure.split(" ")[0].rstrip(":") for failure in failures}


def _run_planted(name: str, planted: str) -> list[str]:
    config = _config(name)
    pipeline = PLANTED[planted](_taxonomy(config))
    try:
        outcome = run_eval(config, DATA_ROOT, pipeline=pipeline, minilm=False)
    finally:
        pipeline.close()
    assert outcome.main.metrics["conformance"] == 1.0  # broken, but inside the taxonomy: the quality gates catch it
    return _gate(config, outcome)


@pytest.mark.parametrize("planted", sorted(PLANTED))
@pytest.mark.parametrize("name", MODEL_FREE)
def test_sample_catalog_gates_fail_on_broken_pipelines(name: str, planted: str) -> None:
    failures = _run_planted(name, planted)
    assert EXPECTED[name][planted] <= _failed(failures), failures


@needs_data
@pytest.mark.parametrize(("name", "planted"), [(n, p) for n in DATA for p in sorted(EXPECTED[n])])
def test_data_gates_fail_on_broken_pipelines(name: str, planted: str) -> None:
    failures = _run_planted(name, planted)
    assert EXPECTED[name][planted] <= _failed(failures), failures


def test_gated_evals_score_attributes_without_the_input_brand() -> None:
    """The sample catalog's gold brand is its `brand` input field: a gate on all attributes rewards copying it."""
    rows = [json.loads(line) for line in (ROOT / "examples" / "catalog.jsonl").read_text().splitlines()]
    assert all(row["gold"]["attributes"]["brand"] == [row["brand"]] for row in rows)
    for name in MODEL_FREE:
        assert "attribute_f1@-brand" in _config(name).gate, name  # brand-only scores 0 there


class _Invents:
    """A pipeline that writes a value outside the taxonomy: conformance must catch it, the gate must fail."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.provenance = inner, inner.provenance

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        records = self.inner.tag_batch(products, categories)
        for record in records:
            if isinstance(record, TagRecord) and record.id == "sku-001":  # a t-shirt: color is its attribute
                record.attributes["color"] = ["Chartreuse"]
        return records

    def close(self) -> None:
        self.inner.close()


def test_conformance_gate_fails_on_an_invented_value() -> None:
    config = _config("smoke")
    pipeline = _Invents(PLANTED["first-value"](_taxonomy(config)))
    try:
        outcome = run_eval(config, DATA_ROOT, pipeline=pipeline, minilm=False)
    finally:
        pipeline.close()
    assert outcome.main.metrics["conformance"] == pytest.approx(26 / 27)
    assert "is not one of the attribute's values" in (outcome.main.samples[0].nonconformity or "")
    assert "conformance" in _failed(_gate(config, outcome))


# --- the independent conformance check ------------------------------------------------------------------------------


def _shirt_check(values: dict[str, list[str]], path: Sequence[str] | None = None, text: str = "Northwind tee") -> None:
    taxonomy = load_taxonomy()
    shirt = taxonomy.categories["t-shirts"]
    check(read_reference(None), "p1", shirt.id, path or shirt.path, values, text)


def test_conformance_accepts_a_conforming_record() -> None:
    _shirt_check({"color": ["Navy"], "material": ["Cotton"], "brand": ["Northwind"]})


@pytest.mark.parametrize(
    ("values", "path", "message"),
    [
        ({"color": ["Chartreuse"]}, None, "product 'p1': color='Chartreuse' is not one of the attribute's values"),
        ({"color": ["navy"]}, None, "color='navy' is not one of"),  # closed values are exact, case included
        ({"warp_drive": ["Yes"]}, None, "attribute 'warp_drive' does not belong"),  # made up
        ({"storage_capacity": ["64 GB"]}, None, "attribute 'storage_capacity' does not belong"),  # another category's
        ({"brand": ["Acme"]}, None, "brand='Acme' is not in the product's text"),
        ({"brand": ["northwind"]}, None, "brand='northwind' is not in the product's text"),  # verbatim, case included
        ({}, ["Apparel & Accessories", "Clothing", "Dresses"], "has the path"),  # the path of another category
    ],
)
def test_conformance_fails_outside_the_taxonomy(
    values: dict[str, list[str]], path: list[str] | None, message: str
) -> None:
    with pytest.raises(ConformanceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _shirt_check(values, path)


def test_conformance_fails_on_an_unknown_category() -> None:
    with pytest.raises(ConformanceError, match="category id 'no-such-node' is not in"):
        check(read_reference(None), "p1", "no-such-node", ["Apparel & Accessories"], {}, "")


def test_conformance_reads_the_default_taxonomy_itself() -> None:
    """The reference is read apart from tagger.taxonomy: the two readings agree on every path and link."""
    reference, taxonomy = read_reference(None), load_taxonomy()
    assert {i: c.path for i, c in taxonomy.categories.items()} == dict(reference.paths)
    for ident in taxonomy.categories:
        assert reference.allowed_attributes(ident) == {a.handle for a in taxonomy.attributes_for(ident)}


@needs_data
def test_conformance_reads_shopify_and_google_themselves() -> None:
    shopify, reference = load_taxonomy(f"shopify:{SHOPIFY_DIR}"), read_reference(f"shopify:{SHOPIFY_DIR}")
    assert {i: c.path for i, c in shopify.categories.items()} == dict(reference.paths)
    shirts = shopify.find("T-Shirts")[0]
    assert reference.allowed_attributes(shirts.id) == {a.handle for a in shopify.attributes_for(shirts.id)}
    assert reference.values["color"] == frozenset(shopify.attributes["color"].values)
    google, by_text = load_taxonomy(f"google:{GOOGLE_FILE}"), read_reference(f"google:{GOOGLE_FILE}")
    assert {i: c.path for i, c in google.categories.items()} == dict(by_text.paths)
    with pytest.raises(ConformanceError, match="does not belong"):  # Google has no attributes
        check(by_text, "p1", "1", ["Animals & Pet Supplies"], {"color": ["Red"]}, "red")


def test_conformance_reads_the_bundled_files_itself() -> None:
    """The shipped compact files, read with gzip and json alone, agree with tagger.taxonomy's loading of them."""
    for name in ("shopify", "google"):
        taxonomy, reference = load_taxonomy(name), read_reference(name)
        assert {i: c.path for i, c in taxonomy.categories.items()} == dict(reference.paths)
        for attribute in taxonomy.attributes.values():
            expected = None if attribute.extractive else frozenset(attribute.values)
            assert reference.values[attribute.handle] == expected
    shopify = load_taxonomy("shopify")
    for ident in list(shopify.categories)[::50]:
        assert reference_attributes(ident) == {a.handle for a in shopify.attributes_for(ident)}
    with pytest.raises(ConformanceError, match=r"category id .no-such-id. is not in"):
        check(read_reference("shopify"), "p1", "no-such-id", ["Nowhere"], {}, "text")


def reference_attributes(ident: str) -> set[str]:
    return read_reference("shopify").allowed_attributes(ident)


# --- the baseline is only ever a passing run ------------------------------------------------------------------------


def _eval(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tagger", "eval", str(config), "--no-minilm", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(("floor", "saved"), [(0.0, True), (0.99, False)])
def test_write_baseline_refuses_a_failing_run(tmp_path: Path, floor: float, saved: bool) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text(
        f"""name: baseline-check
version: 1
dataset:
  path: {ROOT / "examples" / "catalog.jsonl"}
  category: {{field: gold.category, kind: id}}
  attributes: {{field: gold.attributes}}
backend: {{name: minilm}}
metrics: [category_exact, conformance]
gate:
  conformance: {{min: 1.0}}
  category_exact: {{min: {floor}}}
baseline: baseline.json
"""
    )
    done = _eval(config, "--write-baseline", "--out", str(tmp_path / "out"))  # MiniLM's exact: 0.852
    assert (tmp_path / "baseline.json").is_file() == saved, done.stderr
    if saved:
        assert done.returncode == 0, done.stderr
        assert load_result(tmp_path / "baseline.json").gate == []
    else:
        assert done.returncode == 4
        assert "not saving the baseline: the gate failed" in done.stderr
        assert "category_exact = " in done.stderr
    limited = _eval(config, "--write-baseline", "--limit", "3")
    assert limited.returncode == 1 and "--limit" in limited.stderr


# --- the real pipeline passes --------------------------------------------------------------------------------------


def _run_real(name: str) -> list[str]:
    config = _config(name)
    outcome = run_eval(config, DATA_ROOT, minilm=False)
    try:
        return _gate(config, outcome)
    finally:
        outcome.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_FREE)
def test_real_pipeline_passes_the_sample_catalog_gates(name: str) -> None:
    assert _run_real(name) == []


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", DATA)
def test_real_pipeline_passes_the_data_gates(name: str) -> None:
    assert _run_real(name) == []


def test_planted_pipelines_keep_given_categories() -> None:
    taxonomy = load_taxonomy()
    shirt = taxonomy.categories["t-shirts"]
    product = Product("p1", "Northwind tee", fields={"brand": "Northwind"})
    pipeline: PlantedPipeline = PLANTED["random-category"](taxonomy)
    [record] = pipeline.tag_batch([product], [shirt])
    assert isinstance(record, TagRecord) and record.category.id == "t-shirts"


class _MovesSpans:
    """The real pipeline with one evidence span moved a character: evidence_valid must catch it, the gate fail."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.provenance = inner, inner.provenance
        self.cleaner = getattr(inner, "cleaner")  # noqa: B009 (a Pipeline has no cleaner in its protocol)

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        records = self.inner.tag_batch(products, categories)
        for record in records:
            if isinstance(record, TagRecord) and record.id == "sku-001" and record.evidence:
                span = record.evidence[0].spans[0]
                span.start, span.end = span.start + 1, span.end + 1
        return records

    def close(self) -> None:
        self.inner.close()


def test_evidence_gate_fails_on_a_moved_span() -> None:
    from tagger.evals.runner import make_llm_pipeline

    config = _config("smoke")
    pipeline = _MovesSpans(make_llm_pipeline(config, _taxonomy(config), DATA_ROOT, None))
    try:
        outcome = run_eval(config, DATA_ROOT, pipeline=pipeline, minilm=False)
    finally:
        pipeline.close()
    assert outcome.main.metrics["evidence_valid"] == pytest.approx(26 / 27)
    assert "evidence_valid" in _failed(_gate(config, outcome))
