from __future__ import annotations

import pytest
from pydantic import ValidationError

from tagger.schema import SchemaSet
from tagger.schema.build import MAX_LIST_ITEMS
from tagger.taxonomy import Taxonomy


def _closed_everywhere(node: object) -> bool:
    """Every object schema forbids extra keys."""
    if isinstance(node, dict):
        if node.get("type") == "object" and node.get("additionalProperties") is not False:
            return False
        return all(_closed_everywhere(v) for v in node.values())
    if isinstance(node, list):
        return all(_closed_everywhere(v) for v in node)
    return True


def test_category_schema_is_a_closed_enum_of_every_path(default_taxonomy: Taxonomy) -> None:
    schema = SchemaSet(default_taxonomy).category.json_schema
    assert schema["required"] == ["category"]
    assert schema["additionalProperties"] is False
    assert schema["x-guidance"] == {"whitespace_flexible": False}
    enum = schema["properties"]["category"]["enum"]
    assert sorted(enum) == sorted(c.full_path for c in default_taxonomy.categories.values())


def test_attribute_schema_follows_the_category(default_taxonomy: Taxonomy) -> None:
    schemas = SchemaSet(default_taxonomy)
    answer = schemas.attributes("t-shirts")
    assert answer is not None
    props = answer.json_schema["properties"]
    assert list(props) == [a.handle for a in default_taxonomy.attributes_for("t-shirts")]
    assert sorted(answer.json_schema["required"]) == sorted(props)
    assert props["color"]["type"] == "array"
    assert props["color"]["items"]["enum"] == list(default_taxonomy.attributes["color"].values)
    assert props["color"]["maxItems"] == MAX_LIST_ITEMS
    assert {"enum": ["Women", "Men", "Unisex"], "type": "string"} in props["target_gender"]["anyOf"]
    assert {"type": "null"} in props["brand"]["anyOf"]
    assert _closed_everywhere(answer.json_schema)
    assert schemas.attributes("t-shirts") is answer  # built once, then reused


def test_the_pydantic_model_rejects_what_the_taxonomy_does_not_allow(default_taxonomy: Taxonomy) -> None:
    model = SchemaSet(default_taxonomy).attributes("phones")
    assert model is not None
    good = {"brand": "Voltix", "model": "X12", "color": ["Black"], "connectivity": [], "storage_capacity": "128 GB"}
    assert model.model.model_validate(good).model_dump(by_alias=True)["storage_capacity"] == "128 GB"
    with pytest.raises(ValidationError):
        model.model.model_validate({**good, "storage_capacity": "3 GB"})
    with pytest.raises(ValidationError):
        model.model.model_validate({**good, "warranty": "2 years"})


def test_schema_hash_is_stable_and_distinct(default_taxonomy: Taxonomy) -> None:
    first, second = SchemaSet(default_taxonomy), SchemaSet(default_taxonomy)
    assert first.category.hash == second.category.hash
    shirts, phones = first.attributes("t-shirts"), first.attributes("phones")
    assert shirts is not None and phones is not None
    assert shirts.hash != phones.hash


def test_shopify_schemas_cover_the_whole_taxonomy(shopify: Taxonomy) -> None:
    schemas = SchemaSet(shopify)
    enum = schemas.category.json_schema["properties"]["category"]["enum"]
    assert len(enum) == 10_595
    gid = "gid://shopify/TaxonomyCategory/aa-1-1"
    answer = schemas.attributes(gid)
    assert answer is not None
    assert "activewear_clothing_features" in answer.json_schema["properties"]
