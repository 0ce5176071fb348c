"""Bulk runs: a JSONL catalog in, a JSONL file of records out, streamed batch by batch."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO

from tagger.pipeline import Tagger
from tagger.product import DEFAULT_FIELDS, Product, ProductError, read_jsonl
from tagger.records import ErrorInfo, ErrorRecord, Record, to_json_line


@dataclass
class RunSummary:
    rows: int = 0
    tagged: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def count(self, record: Record) -> None:
        self.rows += 1
        if isinstance(record, ErrorRecord):
            self.errors[record.error.kind] += 1
        else:
            self.tagged += 1


def _batches(
    rows: Iterator[tuple[int, Product | ProductError]], size: int
) -> Iterator[list[tuple[int, Product | ProductError]]]:
    """Groups of rows holding up to `size` products (bad rows ride along, so output keeps input order)."""
    batch: list[tuple[int, Product | ProductError]] = []
    products = 0
    for row, item in rows:
        batch.append((row, item))
        products += isinstance(item, Product)
        if products >= size:
            yield batch
            batch, products = [], 0
    if batch:
        yield batch


def tag_rows(tagger: Tagger, batch: Sequence[tuple[int, Product | ProductError]]) -> list[Record]:
    products = [item for _, item in batch if isinstance(item, Product)]
    tagged = iter(tagger.tag_batch(products))
    records: list[Record] = []
    for row, item in batch:
        if isinstance(item, ProductError):
            records.append(ErrorRecord(id=item.product_id, row=row, error=ErrorInfo(kind=item.kind, message=str(item))))
            continue
        record = next(tagged)
        if isinstance(record, ErrorRecord):
            record.row = row
        records.append(record)
    return records


def generate_file(
    tagger: Tagger,
    source: Path,
    out: IO[str],
    *,
    limit: int | None = None,
    batch_size: int = 8,
    fields: Sequence[str] = DEFAULT_FIELDS,
    on_record: Callable[[Record], None] | None = None,
) -> RunSummary:
    """Tag every row of `source` into `out`, one line per row, flushed after every batch."""
    summary = RunSummary()
    start = time.perf_counter()
    rows = islice(read_jsonl(source, fields), limit)
    for batch in _batches(rows, batch_size):
        for record in tag_rows(tagger, batch):
            out.write(to_json_line(record))
            summary.count(record)
            if on_record is not None:
                on_record(record)
        out.flush()
    summary.seconds = time.perf_counter() - start
    return summary
