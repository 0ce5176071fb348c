"""Sources and sinks without the model: CSV quirks, the journal's crash recovery, row counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagger.cache import ResultCache
from tagger.io import ForeignOutputError, Journal, count_rows, detect_format, read_rows
from tagger.io.seen import SeenIds
from tagger.product import Columns, Product, ProductError


def test_csv_quirks_are_rows_not_crashes(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_bytes(
        "\ufeffid,title,description\n"  # Excel's byte-order mark
        '1,"Mug, large","Line one\nline two"\n'  # a quoted comma and a newline inside a field
        "2,Too,many,fields\n"
        "\n"
        "3,Caf\xe9\n".encode("utf-8").replace(b"Caf\xc3\xa9", b"Caf\xe9")  # a Latin-1 byte
        + b"4,Plate,\n"
    )
    rows = list(read_rows(source))
    assert isinstance(rows[0][1], Product) and rows[0][1].title == "Mug, large"
    assert rows[0][1].description == "Line one\nline two"
    kinds = {row: item.kind for row, item in rows if isinstance(item, ProductError)}
    assert kinds == {4: "bad_csv", 6: "bad_csv"}  # row 6 has 2 fields (and a bad byte)
    assert [item.id for _, item in rows if isinstance(item, Product)] == ["1", "4"]
    assert count_rows(source) == 4 + 1  # records, blank line included: csv counts it, the reader skips it


def test_csv_without_the_mapped_columns_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    source.write_text("sku,name\n1,Mug\n")
    with pytest.raises(ValueError, match="no column 'id'"):
        list(read_rows(source))
    assert [p.id for _, p in read_rows(source, columns=Columns(id="sku", title="name"))] == ["1"]  # type: ignore[union-attr]


def test_formats_from_suffix() -> None:
    assert detect_format("a.JSONL") == "jsonl" and detect_format("b.tsv") == "tsv"
    assert detect_format("-") == "jsonl" and detect_format("x.txt", "csv") == "csv"
    with pytest.raises(ValueError, match="--input-format"):
        detect_format("catalog.xlsx")


def test_journal_cuts_a_partial_line_and_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "cat')
    journal = Journal(path)
    assert list(journal.recover()) == ["a", "b"]
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
    journal.append(['{"id": "c"}\n'])
    journal.close()
    assert list(Journal(path).recover()) == ["a", "b", "c"]
    path.write_text("id,title\n")
    with pytest.raises(ForeignOutputError, match="line 1 is not a tagger record"):
        list(Journal(path).recover())


def test_seen_ids_claims() -> None:
    seen = SeenIds()
    assert seen.add_done(iter(["a", "b"])) == 2
    assert [seen.claim(i) for i in ["a", "c", "a", "c", "b"]] == ["done", "new", "duplicate", "duplicate", "done"]
    seen.close()


def test_cache_scopes_and_clear(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.register("scope-a", {"model": "m1"})
    cache.register("scope-b", {"model": "m2"})
    cache.put_many("scope-a", [("k1", {"id": "p1"}), ("k2", {"id": "p2"})])
    cache.put_many("scope-b", [("k1", {"id": "q1"})])
    assert cache.get_many("scope-a", ["k1", "k3"]) == {"k1": {"id": "p1"}}
    assert cache.get_many("scope-b", ["k1"]) == {"k1": {"id": "q1"}}
    assert sorted((s.scope, s.entries, s.description["model"]) for s in cache.stats()) == [
        ("scope-a", 2, "m1"),
        ("scope-b", 1, "m2"),
    ]
    assert cache.clear("scope-a") == 2
    assert cache.get_many("scope-a", ["k1"]) == {}
    assert cache.clear() == 1
    cache.close()
    assert json.loads(json.dumps([])) == []
