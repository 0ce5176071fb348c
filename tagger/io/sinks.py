"""Where records go: an append-only JSONL journal that survives a kill, Parquet made from it, and the rejects file.

The journal is the run's only state. A line counts once its newline is on disk: a kill mid-write leaves at most one
partial last line, which the next run cuts off before it appends. A JSONL output is its own journal; a Parquet
output is written from its journal when a run ends (and a journal is rebuilt from an existing Parquet file to resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tagger.errors import TaggerError
from tagger.records import ErrorRecord, TagRecord, to_json_line

JOURNAL_SUFFIX = ".journal.jsonl"
PARQUET_CHUNK_ROWS = 5_000


class ForeignOutputError(TaggerError):
    """The output file is not one that a tagger run wrote."""


def journal_path(output: Path) -> Path:
    return output if output.suffix.lower() != ".parquet" else output.with_name(output.name + JOURNAL_SUFFIX)


class Journal:
    """The finished records of a run, one JSON line each, appended and flushed to disk batch by batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def recover(self) -> Iterator[str]:
        """The ids already finished, after cutting off a partial last line that a kill left behind."""
        if not self.path.exists():
            return
        _cut_partial_tail(self.path)
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    yield str(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ForeignOutputError(
                        f"{self.path} line {number} is not a tagger record ({exc}); "
                        "use --restart to start over, or write to another --output"
                    ) from exc

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
        self._handle.write("".join(lines).encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())  # finished work survives a power cut too, not only a kill

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _cut_partial_tail(path: Path) -> None:
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(65_536, position)
            handle.seek(position - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                position = position - step + newline + 1
                break
            position -= step
        if position != end:
            handle.truncate(position)


class RejectsFile:
    """The rows a run could not tag, with row, id and reason. Written anew by every run; removed when empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", encoding="utf-8")

    def append(self, records: list[ErrorRecord]) -> None:
        for record in records:
            self._handle.write(to_json_line(record))
        self.count += len(records)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
        if self.count == 0:
            self.path.unlink(missing_ok=True)


# --- Parquet ----------------------------------------------------------------------------------------------------


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("category_id", pa.string()),
            ("category_path", pa.list_(pa.string())),
            ("category_confidence", pa.float64()),
            ("category_evidence", pa.string()),  # JSON, as provenance
            ("attributes", pa.map_(pa.string(), pa.list_(pa.string()))),
            ("evidence", pa.string()),  # JSON: a list of {attribute, value, source, spans, confidence}
            ("warnings", pa.list_(pa.string())),
            ("reused_from", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("seconds", pa.float64()),
            ("provenance", pa.string()),  # JSON: its shape grows with tagger, a column of text does not break readers
        ]
    )


def record_to_row(record: TagRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "category_id": record.category.id,
        "category_path": record.category.path,
        "category_confidence": record.category.confidence,
        "category_evidence": record.category.evidence.model_dump_json() if record.category.evidence else None,
        "attributes": list(record.attributes.items()),
        "evidence": json.dumps([e.model_dump() for e in record.evidence], ensure_ascii=False),
        "warnings": record.warnings,
        "reused_from": record.reused_from,
        "prompt_tokens": record.usage.prompt_tokens,
        "completion_tokens": record.usage.completion_tokens,
        "seconds": record.usage.seconds,
        "provenance": record.provenance.model_dump_json(),
    }


def row_to_record(row: dict[str, Any]) -> TagRecord:
    return TagRecord.model_validate(
        {
            "id": row["id"],
            "category": {
                "id": row["category_id"],
                "path": row["category_path"],
                "confidence": row.get("category_confidence"),
                "evidence": json.loads(row["category_evidence"]) if row.get("category_evidence") else None,
            },
            "attributes": dict(row["attributes"] or []),
            "evidence": json.loads(row.get("evidence") or "[]"),  # files written before evidence existed have none
            "warnings": row["warnings"] or [],
            "reused_from": row["reused_from"],
            "usage": {k: row[k] for k in ("prompt_tokens", "completion_tokens", "seconds")},
            "provenance": json.loads(row["provenance"]),
        }
    )


def write_parquet(journal: Path, dest: Path) -> int:
    """The journal's records as a Parquet file, chunk by chunk, swapped into place whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    partial = dest.with_name(dest.name + ".tmp")
    written = 0
    with pq.ParquetWriter(partial, schema) as writer, journal.open("rb") as lines:
        chunk: list[dict[str, Any]] = []
        for line in lines:
            chunk.append(record_to_row(TagRecord.model_validate_json(line)))
            if len(chunk) == PARQUET_CHUNK_ROWS:
                writer.write_table(pa.Table.from_pylist(chunk, schema))
                written, chunk = written + len(chunk), []
        writer.write_table(pa.Table.from_pylist(chunk, schema))
        written += len(chunk)
    os.replace(partial, dest)
    return written


def parquet_to_journal(source: Path, journal: Path) -> None:
    import pyarrow.parquet as pq

    with journal.open("w", encoding="utf-8") as out:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=PARQUET_CHUNK_ROWS):
            out.writelines(to_json_line(row_to_record(row)) for row in batch.to_pylist())


def prepare_output(output: Path, restart: bool) -> Journal:
    """The journal to resume into (or a fresh one with `restart`)."""
    journal = journal_path(output)
    if restart:
        journal.unlink(missing_ok=True)
        output.unlink(missing_ok=True)
    elif journal != output and output.exists() and not journal.exists():
        parquet_to_journal(output, journal)
    return Journal(journal)


def finish_output(output: Path, journal: Journal) -> None:
    """Make the output from the journal (Parquet) and drop the journal; a JSONL output is already done."""
    journal.close()
    if journal.path != output and journal.path.exists():
        write_parquet(journal.path, output)
        journal.path.unlink()
