from __future__ import annotations

import json

import pytest

from tagger.taxonomy import Taxonomy
from tagger.validate import AnswerError, check_record, find_span, read_attributes, read_category


def test_read_category_exact_and_by_case(default_taxonomy: Taxonomy) -> None:
    allowed = default_taxonomy.by_path
    path = "Apparel & Accessories > Clothing > Tops > T-Shirts"
    assert read_category(json.dumps({"category": path}), allowed).id == "t-shirts"
    assert read_category(json.dumps({"category": path.upper()}), allowed).id == "t-shirts"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ('{"category": "Apparel & Accessories > Capes"}', "not_in_taxonomy", "not an allowed category"),
        ('{"category": "Apparel', "invalid_output", "not JSON"),
        ("[1, 2]", "invalid_output", "not a JSON object"),
        ('{"cat": "Electronics"}', "invalid_output", "no category"),
    ],
)
def test_read_category_rejects(default_taxonomy: Taxonomy, text: str, kind: str, message: str) -> None:
    with pytest.raises(AnswerError, match=message) as caught:
        read_category(text, default_taxonomy.by_path)
    assert caught.value.kind == kind


def test_truncated_output_says_so(default_taxonomy: Taxonomy) -> None:
    with pytest.raises(AnswerError, match="cut at the token limit"):
        read_category('{"category": "Elec', default_taxonomy.by_path, truncated=True)


def test_a_category_outside_the_shortlist_is_refused(default_taxonomy: Taxonomy) -> None:
    shirts = default_taxonomy.categories["t-shirts"]
    shortlist = {shirts.full_path: shirts}
    with pytest.raises(AnswerError, match="not an allowed category"):
        read_category('{"category": "Electronics"}', shortlist)


def test_read_attributes_keeps_only_allowed_values(default_taxonomy: Taxonomy) -> None:
    attributes = default_taxonomy.attributes_for("t-shirts")
    text = json.dumps(
        {
            "brand": "NORTHWIND",
            "color": ["Navy", "navy", "Chartreuse", "Navy", "red"],
            "target_gender": "Men",
            "size": [],
            "pattern": None,
            "fit": ["Slim", "Regular"],
            "warranty": "2 years",
        }
    )
    found = read_attributes(text, attributes, "Northwind crew neck tee in navy")
    assert found.values == {
        "brand": ["Northwind"],  # the text's own spelling
        "color": ["Navy", "Red"],  # deduplicated, case mapped to the taxonomy's value
        "target_gender": ["Men"],
        "fit": ["Slim"],
    }
    assert "dropped color='Chartreuse': not an allowed value" in found.warnings
    assert "dropped unknown attribute 'warranty'" in found.warnings
    assert "kept the first of 2 values for single-valued fit" in found.warnings


def test_extractive_values_must_come_from_the_text(default_taxonomy: Taxonomy) -> None:
    attributes = default_taxonomy.attributes_for("phones")
    found = read_attributes('{"brand": "Samsung", "model": "x12  pro"}', attributes, "Voltix X12\nPro 5G phone")
    assert found.values == {"model": ["X12\nPro"]}
    assert "dropped brand='Samsung': not in the product text" in found.warnings
    assert find_span("  ", "anything") is None
    assert find_span("a.b", "axb a.b") == "a.b"  # regex characters are literal


def test_check_record_is_an_independent_conformance_check(default_taxonomy: Taxonomy) -> None:
    shirt = default_taxonomy.categories["t-shirts"]
    check_record({"color": ["Navy"], "brand": ["Northwind"]}, shirt, default_taxonomy, "Northwind tee")
    with pytest.raises(AnswerError, match="not allowed"):
        check_record({"color": ["Chartreuse"]}, shirt, default_taxonomy, "tee")
    with pytest.raises(AnswerError, match="does not belong"):
        check_record({"storage_capacity": ["64 GB"]}, shirt, default_taxonomy, "tee")
    with pytest.raises(AnswerError, match="not allowed"):
        check_record({"brand": ["Acme"]}, shirt, default_taxonomy, "Northwind tee")
