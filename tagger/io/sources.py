"""Product sources: JSONL, CSV and Parquet files or standard input, read as a stream of (row, product or error).

A bad row becomes a ProductError that names the row and the problem; reading never stops at one. Nothing is held
beyond the current row (Parquet: the current record batch), so memory does not grow with the catalog.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from tagger.errors import TaggerError
from tagger.product import MAX_DESCRIPTION_CHARS, Columns, Product, ProductError, product_from_record

Row = tuple[int, Product | ProductError]
FORMATS = ("jsonl", "csv", "tsv", "parquet")
STDIN = "-"
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SUFFIXES |= {".parquet": "parquet", ".pq": "parquet"}
PARQUET_BATCH_ROWS = 1024


class InputError(TaggerError, ValueError):
    """The input as a whole cannot be read (its format, a missing column); one bad row is a reject instead."""


def detect_format(source: str | Path, given: str | None = None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise InputError(f"unknown input format {given!r}; choose one of {', '.join(FORMATS)}")
        return given
    if str(source) == STDIN:
        return "jsonl"
    suffix = Path(source).suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(f"cannot tell the format of {source} from its suffix; give --input-format")
    return _SUFFIXES[suffix]


def read_rows(source: str | Path, fmt: str | None = None, columns: Columns | None = None) -> Iterator[Row]:
    """Every row of a source, in order: standard input when `source` is "-"."""
    fmt = detect_format(source, fmt)
    col = columns or Columns()
    if fmt == "parquet":
        if str(source) == STDIN:
            raise InputError("Parquet cannot be read from standard input; give a file")
        yield from parquet_rows(Path(source), col)
        return
    if str(source) == STDIN:
        yield from stream_rows(sys.stdin.buffer, fmt, col)
        return
    with Path(source).open("rb") as handle:
        yield from stream_rows(handle, fmt, col)


def stream_rows(handle: IO[bytes], fmt: str, col: Columns) -> Iterator[Row]:
    if fmt == "jsonl":
        for row, raw in enumerate(handle, start=1):
            if raw.strip():
                yield row, parse_line(raw, row, col)
    else:
        yield from _csv_rows(handle, "\t" if fmt == "tsv" else ",", col)


def parse_line(raw: bytes, row: int, columns: Columns | None = None) -> Product | ProductError:
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
    return _product(record, row, columns or Columns())


def _product(record: Mapping[str, Any], row: int, col: Columns) -> Product | ProductError:
    try:
        return product_from_record(record, row, col)
    except ProductError as exc:
        return exc


def _csv_rows(handle: IO[bytes], delimiter: str, col: Columns) -> Iterator[Row]:
    # surrogateescape keeps reading past a bad byte; the row that holds one is rejected below.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    csv.field_size_limit(MAX_DESCRIPTION_CHARS * 2)  # a larger field is read, then rejected with its size
    reader = csv.reader(text, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    missing = [name for name in (col.id, col.title) if name not in header]
    if missing:
        raise InputError(f"the CSV header has no column {missing[0]!r} (columns: {', '.join(header[:20])})")
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, ProductError("bad_csv", f"unreadable CSV: {exc}", None, start)
            continue
        if not any(values):
            continue
        yield start, _csv_product(header, values, start, col)


def _csv_product(header: list[str], values: list[str], row: int, col: Columns) -> Product | ProductError:
    if len(values) != len(header):
        return ProductError("bad_csv", f"{len(values)} fields, the header has {len(header)}", None, row)
    if any("\udc80" <= ch <= "\udcff" for value in values for ch in value):
        return ProductError("bad_encoding", "not valid UTF-8", None, row)
    return _product(dict(zip(header, values, strict=True)), row, col)


def parquet_rows(path: Path | str, col: Columns, opened: Any = None) -> Iterator[Row]:
    """`opened`: the file already open (an object store's, through pyarrow's filesystems); `path` names it."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path if opened is None else opened)
    present = set(parquet.schema_arrow.names)
    missing = [name for name in (col.id, col.title) if name not in present]
    if missing:
        raise InputError(f"{path} has no column {missing[0]!r} (columns: {', '.join(sorted(present)[:20])})")
    wanted = [name for name in col.names if name in present]
    row = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
        for record in batch.to_pylist():
            row += 1
            yield row, _product(record, row, col)


def count_rows(source: str | Path, fmt: str | None = None) -> int | None:
    """The number of rows, for the progress bar's ETA; None for standard input. One fast pass, no parsing of JSON."""
    fmt = detect_format(source, fmt)
    if str(source) == STDIN:
        return None
    path = Path(source)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if fmt == "jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    csv.field_size_limit(MAX_DESCRIPTION_CHARS * 2)
    with path.open(encoding="utf-8", errors="replace", newline="") as text:
        try:
            return max(0, sum(1 for _ in csv.reader(text, delimiter="\t" if fmt == "tsv" else ",")) - 1)
        except csv.Error:
            return None  # the run itself will say which row is broken
