"""Products as tagger reads them, and the checks that turn a raw input row into one or into a clear error."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FIELDS: tuple[str, ...] = ("brand",)
# Only the fields asked for reach the prompt: dataset rows also carry gold labels that must never leak into it.

MAX_TITLE_CHARS = 1_000
MAX_FIELD_CHARS = 5_000
MAX_DESCRIPTION_CHARS = 100_000


class ProductError(ValueError):
    """A row that cannot be tagged. `kind` is a stable machine-readable reason."""

    def __init__(self, kind: str, message: str, product_id: str | None = None, row: int | None = None) -> None:
        where = f"row {row}" if row is not None else "product"
        if product_id is not None:
            where += f" (id {product_id!r})"
        super().__init__(f"{where}: {message}")
        self.kind = kind
        self.detail = message
        self.product_id = product_id
        self.row = row


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    description: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Everything the model sees of the product: extractive values must come from here."""
        return "\n".join([self.title, *self.fields.values(), self.description])

    def as_template_vars(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "description": self.description, "fields": dict(self.fields)}


def _text(value: Any, name: str, limit: int, pid: str | None, row: int | None) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ProductError("wrong_type", f"field {name!r} must be text, got {type(value).__name__}", pid, row)
    if len(value) > limit:
        raise ProductError(
            "too_large", f"field {name!r} has {len(value):,} characters; the limit is {limit:,}", pid, row
        )
    return value.strip()


def product_from_record(
    record: Mapping[str, Any], row: int | None = None, fields: Sequence[str] = DEFAULT_FIELDS
) -> Product:
    raw_id = record.get("id")
    if raw_id is None or raw_id == "":
        raise ProductError("missing_id", "no 'id'", None, row)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise ProductError("wrong_type", f"'id' must be text or an integer, got {type(raw_id).__name__}", None, row)
    pid = str(raw_id)
    if "title" not in record or record["title"] in (None, ""):
        raise ProductError("missing_title", "no 'title'", pid, row)
    title = _text(record["title"], "title", MAX_TITLE_CHARS, pid, row)
    if not title:
        raise ProductError("missing_title", "the title is blank", pid, row)
    description = record.get("description")
    extras = {
        name: _text(record[name], name, MAX_FIELD_CHARS, pid, row)
        for name in fields
        if record.get(name) not in (None, "")
    }
    return Product(
        id=pid,
        title=title,
        description=_text(description, "description", MAX_DESCRIPTION_CHARS, pid, row) if description else "",
        fields={k: v for k, v in extras.items() if v},
    )


def read_jsonl(path: Path, fields: Sequence[str] = DEFAULT_FIELDS) -> Iterator[tuple[int, Product | ProductError]]:
    """(row, product or the error that names the row) for each non-blank line; never stops at a bad row."""
    with path.open("rb") as handle:
        for row, raw in enumerate(handle, start=1):
            if raw.strip():
                yield row, parse_line(raw, row, fields)


def parse_line(raw: bytes, row: int, fields: Sequence[str] = DEFAULT_FIELDS) -> Product | ProductError:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProductError(
            "bad_encoding", f"not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})", None, row
        )
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return ProductError("bad_json", f"not valid JSON: {exc.msg} at column {exc.colno}", None, row)
    if not isinstance(record, dict):
        return ProductError("bad_json", f"expected a JSON object, got {type(record).__name__}", None, row)
    try:
        return product_from_record(record, row, fields)
    except ProductError as exc:
        return exc
