from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tagger.taxonomy
from tagger._paths import cache_dir
from tagger.taxonomy import Attribute, Taxonomy, TaxonomyError, load_taxonomy, taxonomy_from_dict
from tagger.taxonomy.bundle import bundle_from_taxonomy, encode_bundle, read_bundle, taxonomy_from_bundle
from tagger.taxonomy.shopify import value_aliases
from tests.conftest import GOOGLE_FILE, ROOT, SHOPIFY_DIR

GID = "gid://shopify/TaxonomyCategory/"
BUNDLED = ROOT / "tagger" / "taxonomy" / "bundled"


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


def test_shopify_value_aliases(shopify: Taxonomy) -> None:
    size = shopify.attributes["size"]
    assert size.aliases["Extra small (XS)"] == ("Extra small", "XS")
    assert shopify.attributes["tool/utensil_material"].aliases["Polyvinyl chloride (PVC)"] == (
        "Polyvinyl chloride",
        "PVC",
    )
    assert shopify.attributes["keyboard_layout"].aliases["BÉPO"] == ("BEPO",)  # its handle's spelling
    assert shopify.attributes["color"].aliases == {}  # nothing to add to "Black"
    # an extended attribute shares its base's values, and so their aliases
    assert shopify.attributes["frame_material"].aliases is shopify.attributes["furniture/fixture_material"].aliases
    every = [(a, alias) for a in shopify.attributes.values() for names in a.aliases.values() for alias in names]
    base = [a for a in shopify.attributes.values() if a.values_from is None]
    assert (sum(len(a.aliases) for a in base), sum(a.values_from is None for a, _ in every)) == (456, 881)
    assert not [(a.handle, alias) for a, alias in every if alias.casefold() in {v.casefold() for v in a.values}]


def test_value_aliases_from_names_and_handles() -> None:
    assert value_aliases("Macramé", "yarn-weight-category__macrame") == ("Macrame",)
    assert value_aliases("Polish Złoty (PLN)", "currency__polish-zloty-pln") == ("Polish Złoty", "PLN")  # ł stays
    assert value_aliases("Spanish (Latin America)", "language__spanish-latin-america") == ()  # not an abbreviation
    assert value_aliases("Black", "color__black") == ()


def test_bundled_taxonomies_load_in_a_fresh_process() -> None:
    code = "from tagger.taxonomy import load_taxonomy as l; print(len(l('shopify').categories), l('google').version)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["10595", "2021-09-21"]


def test_bundle_format_round_trips(default_taxonomy: Taxonomy) -> None:
    doc = bundle_from_taxonomy(default_taxonomy)
    again = taxonomy_from_bundle(json.loads(gzip.decompress(encode_bundle(doc))))
    _assert_same(again, default_taxonomy)
    assert encode_bundle(doc) == encode_bundle(bundle_from_taxonomy(again))  # no time stamp: same bytes


def test_bundled_license_and_provenance_ship_with_the_data() -> None:
    assert "Copyright (c) Shopify" in (BUNDLED / "LICENSE-shopify.txt").read_text()
    assert "2025-08-unstable" in (BUNDLED / "PROVENANCE-shopify.txt").read_text()
    for name in ("shopify", "google"):
        source = read_bundle(name)["source"]
        assert "MIT" in source["license"] and source["files_sha256"]


def test_bundled_google_taxonomy() -> None:
    google = load_taxonomy("google")
    assert len(google.categories) == 5_595
    assert google.version == "2021-09-21"
    assert google.categories["3237"].full_path == "Animals & Pet Supplies > Live Animals"
    assert google.categories["3237"].parent_id == "1"
    assert google.categories["6100"].name == "Corsage & Boutonnière Pins"  # UTF-8 as Google publishes it
    assert google.attributes == {}


def test_the_tests_keep_their_caches_private(private_cache: Path) -> None:
    assert cache_dir("taxonomies").parent == private_cache
    assert Path.home() not in cache_dir("taxonomies").parents


# --- against the source folders (../shared/data or $TAGGER_DATA_ROOT; skipped where missing) ---------------------


@pytest.fixture(scope="module")
def shopify_source(data_root: Path) -> Taxonomy:
    """Parsed from Shopify's YAML (and written to this session's private cache)."""
    return load_taxonomy(f"shopify:{SHOPIFY_DIR}")


def _assert_same(a: Taxonomy, b: Taxonomy) -> None:
    assert a is not b
    assert (a.name, a.version, a.tags) == (b.name, b.version, b.tags)
    assert list(a.categories.items()) == list(b.categories.items())  # ids, names, parents, children, links, paths
    assert list(a.attributes.items()) == list(b.attributes.items())  # values, aliases, values_from, descriptions
    assert a.fingerprint == b.fingerprint and a.summary() == b.summary()


def test_bundled_shopify_is_the_source_taxonomy(shopify: Taxonomy, shopify_source: Taxonomy) -> None:
    _assert_same(shopify, shopify_source)
    shipped = read_bundle("shopify")
    del shipped["source"]
    assert shipped == bundle_from_taxonomy(shopify_source)  # regenerating gives the shipped file


def test_shopify_cache_gives_the_parsed_taxonomy(shopify_source: Taxonomy, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(root: Path) -> Taxonomy:
        raise AssertionError("parsed again: the cache was not used")

    monkeypatch.setattr(tagger.taxonomy, "load_shopify_taxonomy", no_parsing)
    _assert_same(load_taxonomy(f"shopify:{SHOPIFY_DIR}"), shopify_source)


def test_google_source_file(data_root: Path) -> None:
    google = load_taxonomy(f"google:{GOOGLE_FILE}")
    assert len(google.categories) == 5_595
    assert google.version == "2021-09-21"
    assert google.categories["3237"].full_path == "Animals & Pet Supplies > Live Animals"
    assert google.categories["3237"].parent_id == "1"
    assert google.attributes == {}


def test_bundled_google_differs_from_the_source_file_only_by_its_mojibake(data_root: Path) -> None:
    source, bundled = load_taxonomy(f"google:{GOOGLE_FILE}"), load_taxonomy("google")
    assert list(source.categories) == list(bundled.categories)
    differ = []
    for ident, category in bundled.categories.items():
        other = source.categories[ident]
        assert (other.parent_id, other.children) == (category.parent_id, category.children)
        if other.name != category.name:
            differ.append(ident)
            assert category.name.encode("utf-8").decode("cp1251") == other.name  # "Boutonnière" -> "BoutonniГЁre"
    assert len(differ) == 9


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
        (_doc(attributes={"color": {"values": ["Red", {"name": "Blue", "aliases": ["red"]}]}}), "is empty or a value"),
        (_doc(attributes={"color": {"values": [{"name": "Red", "aliases": "crimson"}]}}), "must be a list"),
        (_doc(attributes={"color": {"values": [{"name": "Red", "alias": ["crimson"]}]}}), "takes name and aliases"),
        (
            _doc(
                attributes={
                    "color": {"values": [{"name": "Red", "aliases": ["C"]}, {"name": "Blue", "aliases": ["c"]}]}
                }
            ),
            "belongs to both 'Red' and 'Blue'",
        ),
    ],
)
def test_yaml_format_rejects_bad_files(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        taxonomy_from_dict(doc)


def test_yaml_values_with_aliases() -> None:
    values = ["Red", {"name": "Navy", "aliases": ["Navy blue", "dark blue", "Navy blue"]}]
    taxonomy = taxonomy_from_dict(_doc(attributes={"color": {"values": values}}))
    color = taxonomy.attributes["color"]
    assert color.values == ("Red", "Navy")
    assert color.aliases == {"Navy": ("Navy blue", "dark blue")}
    plain = taxonomy_from_dict(_doc())
    assert plain.attributes["color"].aliases == {}
    assert (
        taxonomy.fingerprint != taxonomy_from_dict(_doc(attributes={"color": {"values": ["Red", "Navy"]}})).fingerprint
    )


def test_attribute_aliases_are_checked() -> None:
    with pytest.raises(TaxonomyError, match="not one of its values"):
        Attribute("color", "Color", ("Red",), aliases={"Blue": ("navy",)})
    with pytest.raises(TaxonomyError, match="is empty or a value"):
        Attribute("color", "Color", ("Red",), aliases={"Red": (" ",)})
    assert hash(Attribute("color", "Color", ("Red",), aliases={"Red": ("crimson",)}))  # still hashable


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_doc()))
    assert load_taxonomy(path).name == "t"
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
