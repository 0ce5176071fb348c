from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagger.io.sources import parse_line, read_rows
from tagger.product import MAX_DESCRIPTION_CHARS, Columns, Product, ProductError, product_from_record


def test_a_good_row() -> None:
    product = product_from_record(
        {"id": 7, "title": " Tee ", "description": "Soft", "brand": "Acme", "category_path": ["gold"]}
    )
    assert product == Product(id="7", title="Tee", description="Soft", fields={"brand": "Acme"})
    assert "gold" not in product.text  # labels in the row never reach the model


@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        (b'{"id": "a", "title": ', "bad_json", "row 3: not valid JSON"),
        (b'["a"]', "bad_json", "expected a JSON object"),
        (b'{"id": "a", "description": "x"}', "missing_title", "row 3 (id 'a'): no 'title'"),
        (b'{"id": "a", "title": "   "}', "missing_title", "title is blank"),
        (b'{"title": "x"}', "missing_id", "row 3: no 'id'"),
        (b'{"id": [1], "title": "x"}', "wrong_type", "'id' must be text"),
        (b'{"id": "a", "title": {"en": "x"}}', "wrong_type", "field 'title' must be text, got dict"),
        (b'{"id": "a", "title": "T\xff\xfe"}', "bad_encoding", "not valid UTF-8 (byte 0xff at offset 23)"),
    ],
)
def test_bad_rows_are_named(line: bytes, kind: str, message: str) -> None:
    result = parse_line(line, 3)
    assert isinstance(result, ProductError)
    assert result.kind == kind
    assert message in str(result)


def test_a_huge_description_is_refused_with_its_size() -> None:
    line = json.dumps({"id": "big", "title": "x", "description": "a" * 1_048_576}).encode()
    result = parse_line(line, 9)
    assert isinstance(result, ProductError)
    assert result.kind == "too_large"
    assert (
        f"row 9 (id 'big'): field 'description' has 1,048,576 characters; the limit is {MAX_DESCRIPTION_CHARS:,}"
        == str(result)
    )


def test_read_rows_keeps_row_numbers_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1, "title": "a"}\n\nnot json\n{"id": 2, "title": "b"}\n')
    rows = list(read_rows(path))
    assert [row for row, _ in rows] == [1, 3, 4]
    assert isinstance(rows[1][1], ProductError)
    assert [item.id for _, item in rows if isinstance(item, Product)] == ["1", "2"]


def test_columns_map_a_shop_export_onto_product_fields() -> None:
    columns = Columns(id="sku", title="name", description="body_html", fields=("vendor",))
    product = product_from_record({"sku": "A1", "name": "Mug", "body_html": "<p>Big</p>", "vendor": "Acme"}, 2, columns)
    assert product == Product(id="A1", title="Mug", description="<p>Big</p>", fields={"vendor": "Acme"})
    with pytest.raises(ProductError, match="row 2: no 'sku'"):
        product_from_record({"id": "A1", "name": "Mug"}, 2, columns)
