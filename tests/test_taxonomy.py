from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tagger.taxonomy import Taxonomy, TaxonomyError, load_taxonomy, taxonomy_from_dict
from tests.conftest import GOOGLE_FILE, SHOPIFY_DIR

GID = "gid://shopify/TaxonomyCategory/"


def test_default_taxonomy_is_real_and_small(default_taxonomy: Taxonomy) -> None:
    summary = default_taxonomy.summary()
    assert summary["name"] == "tagger-default"
    assert 50 <= summary["categories"] <= 150
    assert summary["top_level"] >= 8
    assert {"color", "material", "target_gender", "size", "pattern", "brand"} <= set(default_taxonomy.attributes)
    assert default_taxonomy.attributes["brand"].extractive


def test_attributes_are_inherited_root_first(default_taxonomy: Taxonomy) -> None:
    handles = [a.handle for a in default_taxonomy.attributes_for("t-shirts")]
    # apparel -> clothing -> tops -> t-shirts
    assert handles == [
        "brand",
        "color",
        "target_gender",
        "age_group",
        "material",
        "size",
        "pattern",
        "sleeve_length",
        "fit",
    ]
    assert default_taxonomy.categories["t-shirts"].path == ("Apparel & Accessories", "Clothing", "Tops", "T-Shirts")


def test_find_by_words(default_taxonomy: Taxonomy) -> None:
    # a match in the category's own name first, then shallower first
    assert [c.id for c in default_taxonomy.find("coffee")] == ["coffee", "coffee-makers"]
    assert [c.id for c in default_taxonomy.find("kitchen")][:3] == ["home", "kitchen-appliances", "kitchen-tools"]
    assert default_taxonomy.find("no such thing") == []


def test_shopify_counts_and_paths(shopify: Taxonomy) -> None:
    summary = shopify.summary()
    assert summary["categories"] == 10_595
    assert summary["top_level"] == 26
    assert summary["max_depth"] == 8
    assert summary["values"] == 20_635
    assert summary["attributes"] == 1_987 + 312
    assert shopify.version == "2025-08-unstable"
    activewear = shopify.categories[GID + "aa-1-1"]
    assert activewear.full_path == "Apparel & Accessories > Clothing > Activewear"
    assert shopify.by_path["Apparel & Accessories > Clothing > Activewear"] is activewear


def test_shopify_inherits_attributes_from_ancestors(shopify: Taxonomy) -> None:
    handles = [a.handle for a in shopify.attributes_for(GID + "aa-1-1")]
    assert handles[:3] == ["color", "pattern", "target_gender"]  # from Apparel & Accessories
    assert "fabric" in handles  # from Clothing
    assert "activewear_clothing_features" in handles  # its own
    assert "Navy" in shopify.attributes["color"].values


def test_shopify_extended_attribute_shares_values(shopify: Taxonomy) -> None:
    frame = shopify.attributes["frame_material"]
    assert frame.values_from == "furniture/fixture_material"
    assert frame.values == shopify.attributes["furniture/fixture_material"].values


def test_shopify_cache_returns_the_same_taxonomy(shopify: Taxonomy) -> None:
    again = load_taxonomy(f"shopify:{SHOPIFY_DIR}")
    assert again.summary() == shopify.summary()
    assert again.categories[GID + "aa-1-1"].full_path == shopify.categories[GID + "aa-1-1"].full_path


def test_google_taxonomy(data_root: Path) -> None:
    google = load_taxonomy(f"google:{GOOGLE_FILE}")
    assert len(google.categories) == 5_595
    assert google.version == "2021-09-21"
    assert google.categories["3237"].full_path == "Animals & Pet Supplies > Live Animals"
    assert google.categories["3237"].parent_id == "1"
    assert google.attributes == {}


def _doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "t",
        "version": "1",
        "attributes": {"color": {"values": ["Red", "Blue"]}},
        "categories": [{"name": "A", "attributes": ["color"], "children": [{"name": "B"}]}],
    }
    doc.update(overrides)
    return doc


def test_yaml_format_builds_ids_and_paths() -> None:
    taxonomy = taxonomy_from_dict(_doc())
    assert set(taxonomy.categories) == {"a", "a-b"}
    assert [a.handle for a in taxonomy.attributes_for("a-b")] == ["color"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(categories=[{"name": "A", "attributes": ["size"]}]), "unknown attributes"),
        (_doc(attributes={"color": {"values": ["Red", "Red"]}}), "lists a value twice"),
        (_doc(attributes={"brand": {"extractive": True, "values": ["X"]}}), "cannot list values"),
        (_doc(attributes={"color": {"name": "Color"}}), "no values"),
        (_doc(attributes={"color": {"values": ["Red"], "colour": 1}}), "unknown keys"),
        (_doc(categories=[{"name": "A", "id": "x"}, {"name": "B", "id": "x"}]), "duplicate category id"),
        (_doc(categories=[{"name": "A"}, {"name": "A", "id": "other"}]), "share the path"),
        ({"name": "t", "version": "1"}, "missing top-level key 'categories'"),
    ],
)
def test_yaml_format_rejects_bad_files(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        taxonomy_from_dict(doc)


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_doc()))
    assert load_taxonomy(path).name == "t"
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
