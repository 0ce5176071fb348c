"""The whole path on the real embedded model: sample catalog and Shopify, every value re-checked independently."""

from __future__ import annotations

import hashlib
import json

import pytest

from tagger import __version__
from tagger.backends import Request
from tagger.backends.llamacpp import LlamaCppBackend, embedded_model_path
from tagger.evals.conformance import Reference, check_record, read_reference
from tagger.io import read_rows
from tagger.pipeline import Tagger
from tagger.product import Product
from tagger.records import ErrorRecord, TagRecord
from tagger.taxonomy import Taxonomy
from tests.conftest import FLIPKART_ROWS, SAMPLE_CATALOG, RecordingBackend


def _assert_conforms(record: TagRecord, reference: Reference, product: Product) -> None:
    check_record(reference, record, product)  # read and checked apart from tagger.taxonomy and tagger.validate
    for values in record.attributes.values():
        assert values and len(values) == len(set(values))


def test_sample_catalog_all_valid_and_in_taxonomy(tagger: Tagger, default_taxonomy: Taxonomy) -> None:
    products = [item for _, item in read_rows(SAMPLE_CATALOG) if isinstance(item, Product)]
    assert [p.id for p in products] == [f"sku-{n:03d}" for n in range(1, 28)]
    records = tagger.tag_batch(products)
    assert [r.id for r in records] == [p.id for p in products]
    for record, product in zip(records, products, strict=True):
        assert isinstance(record, TagRecord), record
        _assert_conforms(record, read_reference(None), product)
        assert record.usage.prompt_tokens > 0 and record.usage.completion_tokens > 0
    assert isinstance(records[0], TagRecord)
    provenance = records[0].provenance
    digest = hashlib.sha256(embedded_model_path().read_bytes()).hexdigest()
    assert provenance.model == f"SmolLM2-135M-Instruct.Q4_1.gguf@sha256:{digest[:16]}"  # readable, and the content
    assert provenance.backend == "llamacpp"
    assert provenance.template == "default" and len(provenance.template_hash) == 16
    assert (provenance.taxonomy, provenance.taxonomy_version) == ("tagger-default", "2026.11.0")
    assert provenance.tagger_version == __version__
    assert provenance.decoding == {"temperature": 0.0, "seed": 0}
    # The attribute stage really runs and its answers survive validation (quality is the eval suite's business):
    # closed values from the vocabulary on most records, and the brand read from the text. Measured on 7 of these
    # products: 7 with a closed value, 6 with the brand exactly (one took the whole title as the brand).
    tagged = [r for r in records if isinstance(r, TagRecord)]
    closed = [r for r in tagged if any(not default_taxonomy.attributes[h].extractive for h in r.attributes)]
    assert len(closed) >= len(tagged) * 3 // 4, [r.attributes for r in tagged]
    branded = [(r, p.fields["brand"]) for r, p in zip(tagged, products, strict=True) if p.fields.get("brand")]
    assert len(branded) == 27
    exact = [r.id for r, brand in branded if r.attributes.get("brand") == [brand]]
    assert len(exact) >= len(branded) * 2 // 3, [r.attributes.get("brand") for r, _ in branded]


def test_shopify_products_stay_inside_shopify(backend: object, shopify: Taxonomy) -> None:
    tagger = Tagger(shopify, backend)  # type: ignore[arg-type]
    rows = [item for _, item in read_rows(FLIPKART_ROWS)][:6]  # the dev set's first 6 rows
    products = [p for p in rows if isinstance(p, Product)]
    records = tagger.tag_batch(products)
    tagged = [r for r in records if isinstance(r, TagRecord)]
    assert len(tagged) == len(products), [r for r in records if isinstance(r, ErrorRecord)]
    for record, product in zip(tagged, products, strict=True):
        _assert_conforms(record, read_reference("shopify"), product)
        assert record.provenance.taxonomy_version == "2025-08-unstable"


def test_record_json_shape(tagger: Tagger) -> None:
    record = tagger.tag(Product(id="k1", title="Stainless steel electric kettle 1.7 L", fields={"brand": "Brewmaster"}))
    line = json.loads(record.model_dump_json())
    assert set(line) == {"id", "category", "attributes", "evidence", "warnings", "usage", "provenance", "reused_from"}
    assert line["reused_from"] is None
    assert set(line["category"]) == {"id", "path", "score", "confidence", "evidence"}
    assert line["provenance"]["cleaning"] == tagger.cleaner.config.hash
    assert line["provenance"]["taxonomy_fingerprint"] == tagger.taxonomy.fingerprint
    assert line["attributes"]["brand"] == ["Brewmaster"]  # an extractive value, as the text spells it
    for handle, values in line["attributes"].items():  # each a non-empty list of allowed values, once each
        attribute = tagger.taxonomy.attributes[handle]
        assert (
            values
            and len(values) == len(set(values))
            and (attribute.extractive or set(values) <= set(attribute.values))
        )


def test_the_tree_strategy_walks_down_shopify_level_by_level(backend: LlamaCppBackend, shopify: Taxonomy) -> None:
    recording = RecordingBackend(backend)
    tagger = Tagger(shopify, recording, tree=True)
    record = tagger.tag(Product("k", "Stainless steel electric kettle 1.7 L", fields={"brand": "Brewmaster"}))
    assert isinstance(record, TagRecord), record
    assert record.provenance.strategy == "tree"
    levels = [r.schema.json_schema["properties"]["category"]["enum"] for r in recording.requests if _is_category(r)]  # type: ignore[union-attr]
    depth = len(record.category.path)
    assert len(levels) in (depth, depth + 1)  # one call a level; one more when the model stopped where it was
    assert sorted(levels[0]) == sorted(c.full_path for c in shopify.roots)
    for level, choices in enumerate(levels[1:], start=1):  # the node reached so far, then its children
        node = " > ".join(record.category.path[:level])
        assert choices[0] == node and all(c.startswith(node + " > ") for c in choices[1:]), choices
    with pytest.raises(ValueError, match="tree strategy"):
        Tagger(shopify, recording, tree=True, examples=object())  # type: ignore[arg-type]


def _is_category(request: Request) -> bool:
    return request.schema is not None and request.schema.name == "category"
