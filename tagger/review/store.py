"""The review store: one SQLite file beside the output (WAL mode) with the records under review, their product
text, the current tags of each, and every decision as an event (who, when, from where, the value before and after).

Each decision is one transaction, committed with `synchronous=FULL` before the page is told it happened: a killed
server or browser loses nothing that was confirmed. Two tabs cannot overwrite each other: a record is held by the
tab that opened it for HOLD_SECONDS, and every decision names the version of the tags it was made on, so a decision
on tags that changed since is refused as a conflict and shown.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tagger.product import Product
from tagger.records import ErrorRecord, TagRecord
from tagger.review.decisions import Decision, DecisionError, Tags, apply
from tagger.taxonomy import Taxonomy

HOLD_SECONDS = 120.0
SORTS = ("confidence", "category", "warnings", "row")
STATUSES = ("pending", "reviewed", "accepted", "rejected", "unreadable", "all")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    row INTEGER NOT NULL,           -- the line of the output file
    kind TEXT NOT NULL,             -- tag, error (an error record of the run), malformed (an unreadable line)
    record TEXT NOT NULL,           -- the record as JSON, or the raw line when malformed
    problem TEXT,                   -- why a line is an error or unreadable
    confidence REAL,                -- the mean of the record's confidences; NULL when nothing measured one
    warnings INTEGER NOT NULL DEFAULT 0,
    category_path TEXT NOT NULL DEFAULT '',
    handles TEXT NOT NULL DEFAULT '',  -- ' handle1 handle2 ' for the attribute filter
    search TEXT NOT NULL DEFAULT ''    -- lowercase id, title, category path and values, for the filter box
);
CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, product TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    id TEXT PRIMARY KEY REFERENCES records(id),
    tags TEXT NOT NULL,             -- decisions.Tags as JSON
    original TEXT NOT NULL,         -- the tags as the run wrote them
    status TEXT NOT NULL DEFAULT 'pending',  -- tags.status, kept as a column for the queue and the progress bar
    edited INTEGER NOT NULL DEFAULT 0,       -- the tags differ from the original
    version INTEGER NOT NULL DEFAULT 0,
    reviewer TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    at TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    source TEXT NOT NULL,           -- review (this app), or the name of an imported feedback source
    action TEXT NOT NULL,
    attribute TEXT,
    before TEXT,                    -- the value (or category, or status) before, as JSON
    after TEXT,
    tags_before TEXT NOT NULL,
    tags_after TEXT NOT NULL,
    version INTEGER NOT NULL,       -- the tags' version this event made
    undone_by INTEGER
);
CREATE INDEX IF NOT EXISTS events_record ON events(record_id);
CREATE INDEX IF NOT EXISTS state_status ON state(status, edited);
-- One index per queue order: the first page of 10,000 records is read from the index, not sorted.
-- The filter box's text is in the default order's index: a filtered page and its count read the index, not the rows.
CREATE INDEX IF NOT EXISTS records_confidence
    ON records(confidence IS NOT NULL, confidence, warnings DESC, row, search);
CREATE INDEX IF NOT EXISTS state_id_status ON state(id, status, edited);
CREATE INDEX IF NOT EXISTS records_category ON records(category_path, confidence IS NOT NULL, confidence, row);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind);
CREATE INDEX IF NOT EXISTS records_warnings ON records(warnings DESC, confidence IS NOT NULL, confidence, row);
CREATE INDEX IF NOT EXISTS events_reviewer ON events(reviewer, seq);
CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, tab TEXT NOT NULL, reviewer TEXT NOT NULL, until REAL NOT NULL);
"""


class Conflict(RuntimeError):
    """The record changed since the page showed it, or another tab holds it."""


@dataclass(frozen=True)
class LoadSummary:
    records: int
    errors: int  # error records of the run
    malformed: int  # lines that are not a record


@dataclass(frozen=True)
class QueueRow:
    id: str
    row: int
    kind: str
    status: str
    confidence: float | None
    warnings: int
    category_path: str
    title: str
    problem: str | None
    edited: bool


@dataclass(frozen=True)
class Item:
    """One record with everything the page shows."""

    id: str
    row: int
    kind: str
    record: dict[str, Any] | None  # None when malformed
    raw: str
    problem: str | None
    product: Product | None
    tags: Tags | None
    original: Tags | None
    version: int


@dataclass(frozen=True)
class Progress:
    total: int  # records that can be reviewed
    reviewed: int
    accepted: int  # accepted with the tags unchanged
    edited: int  # accepted after changes
    rejected: int
    unreadable: int  # error records and malformed lines

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None


def store_path(output: Path) -> Path:
    return output.with_name(output.name + ".review.sqlite")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ReviewStore:
    """Thread-safe: the web server's worker threads share one connection behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a confirmed decision survives a crash of the process or host
        self._db.execute("PRAGMA busy_timeout=10000")  # another process (an import) may be writing
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. `durable=False` (holds: they expire anyway) skips the fsync at commit."""
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # --- meta --------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, value]
            )

    # --- loading -----------------------------------------------------------------------------------------------

    def load_output(self, output: Path) -> LoadSummary:
        """Reads the output file into the store. Reviews already made are kept; a line that is not a record
        becomes an unreadable row (shown, never reviewed), not an error."""
        counts = {"tag": 0, "error": 0, "malformed": 0}
        with self._write() as db, output.open("rb") as handle:
            for row, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                entry = _parse_line(raw, row)
                counts[entry["kind"]] += 1
                db.execute(
                    "INSERT INTO records VALUES (:id, :row, :kind, :record, :problem, :confidence, :warnings,"
                    " :category_path, :handles, :search) ON CONFLICT(id) DO UPDATE SET row = excluded.row,"
                    " kind = excluded.kind, record = excluded.record, problem = excluded.problem,"
                    " confidence = excluded.confidence, warnings = excluded.warnings,"
                    " category_path = excluded.category_path, handles = excluded.handles, search = excluded.search",
                    entry,
                )
                if entry["tags"] is not None:
                    db.execute(
                        "INSERT INTO state (id, tags, original) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
                        [entry["id"], entry["tags"], entry["tags"]],
                    )
        return LoadSummary(counts["tag"], counts["error"], counts["malformed"])

    def load_products(self, products: Iterable[Product]) -> int:
        """Stores the products' text (only for records in the store) and adds their titles to the filter."""
        count = 0
        with self._write() as db:
            for product in products:
                text = json.dumps(
                    {
                        "id": product.id,
                        "title": product.title,
                        "description": product.description,
                        "fields": dict(product.fields),
                    },
                    ensure_ascii=False,
                )
                found = db.execute(
                    "UPDATE records SET search = ? || ' ' || search WHERE id = ? AND instr(search, ?) != 1",
                    [product.title.lower(), product.id, product.title.lower()],
                ).rowcount
                exists = found or db.execute("SELECT 1 FROM records WHERE id = ?", [product.id]).fetchone()
                if exists:
                    db.execute(
                        "INSERT INTO products VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET product = excluded.product",
                        [product.id, text],
                    )
                    count += 1
        return count

    def label_categories(self, taxonomy: Taxonomy) -> None:
        """Fills in category paths the records did not carry (for sorting and the filter)."""
        with self._write() as db:
            rows = db.execute("SELECT id, record FROM records WHERE kind = 'tag' AND category_path = ''").fetchall()
            for rid, text in rows:
                category = taxonomy.categories.get(json.loads(text)["category"]["id"])
                if category is not None:
                    db.execute("UPDATE records SET category_path = ? WHERE id = ?", [category.full_path, rid])

    # --- reading -----------------------------------------------------------------------------------------------

    def queue(
        self,
        sort: str = "confidence",
        status: str = "pending",
        query: str = "",
        attribute: str = "",
        limit: int = 50,
        offset: int = 0,
        skip_held_for: str | None = None,
        count: bool = True,
    ) -> tuple[list[QueueRow], int]:
        """The records to review in order, least confident first by default, and how many match."""
        where, args = _filters(status, query, attribute)
        if skip_held_for is not None:
            where.append("r.id NOT IN (SELECT id FROM holds WHERE tab != ? AND until > ?)")
            args += [skip_held_for, time.time()]
        clause = " AND ".join(where) or "1"
        base = f"FROM records r LEFT JOIN state s ON s.id = r.id LEFT JOIN products p ON p.id = r.id WHERE {clause}"
        total = self._count(status, clause, args, simple=not query.strip() and not attribute) if count else -1
        rows = self._all(
            f"SELECT r.id, r.row, r.kind, coalesce(s.status, 'unreadable'), r.confidence, r.warnings, r.category_path,"
            f" coalesce(json_extract(p.product, '$.title'), ''), r.problem, coalesce(s.edited, 0)"
            f" {base} ORDER BY {_ORDER[sort]} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [_queue_row(*row) for row in rows], int(total)

    def _count(self, status: str, clause: str, args: list[Any], simple: bool) -> int:
        if simple and status in ("pending", "accepted", "rejected"):
            return int(self._one("SELECT count(*) FROM state WHERE status = ?", [status])[0])
        base = "SELECT count(*) FROM records r INDEXED BY records_confidence LEFT JOIN state s ON s.id = r.id"
        sql = f"{base} WHERE {clause}"  # the clause is fixed text; its values are bound
        return int(self._one(sql, args)[0])

    def next_id(self, sort: str, query: str, attribute: str, tab: str | None, after: str | None = None) -> str | None:
        """The first pending record in queue order that no other tab holds (not `after`, just decided)."""
        rows, _ = self.queue(sort, "pending", query, attribute, limit=2, skip_held_for=tab, count=False)
        ids = [r.id for r in rows if r.id != after]
        return ids[0] if ids else None

    def item(self, record_id: str) -> Item | None:
        row = self._one(
            "SELECT r.id, r.row, r.kind, r.record, r.problem, p.product, s.tags, s.original, s.version"
            " FROM records r LEFT JOIN products p ON p.id = r.id LEFT JOIN state s ON s.id = r.id WHERE r.id = ?",
            [record_id],
        )
        if row is None:
            return None
        rid, line, kind, record, problem, product, tags, original, version = row
        return Item(
            id=rid,
            row=line,
            kind=kind,
            record=None if kind == "malformed" else json.loads(record),
            raw=record,
            problem=problem,
            product=_product(product),
            tags=Tags.from_json(json.loads(tags)) if tags else None,
            original=Tags.from_json(json.loads(original)) if original else None,
            version=version or 0,
        )

    def progress(self) -> Progress:
        counts = {"accepted": 0, "edited": 0, "rejected": 0, "pending": 0}
        for status, edited, count in self._all("SELECT status, edited, count(*) FROM state GROUP BY status, edited"):
            counts["edited" if status == "accepted" and edited else status] += count
        unreadable = self._one("SELECT count(*) FROM records WHERE kind != 'tag'")[0]
        reviewed = counts["accepted"] + counts["edited"] + counts["rejected"]
        total = reviewed + counts["pending"]
        return Progress(total, reviewed, counts["accepted"], counts["edited"], counts["rejected"], unreadable)

    def events(self, record_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if record_id is None:
                cursor = self._db.execute("SELECT * FROM events ORDER BY seq")
            else:
                cursor = self._db.execute("SELECT * FROM events WHERE record_id = ? ORDER BY seq", [record_id])
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def reviewed(self) -> Iterator[tuple[Item, Tags]]:
        """Every reviewed record (accepted or rejected) with its final tags, in output order."""
        ids = [r[0] for r in self._all("SELECT s.id FROM state s JOIN records r ON r.id = s.id ORDER BY r.row")]
        for rid in ids:
            item = self.item(rid)
            if item is not None and item.tags is not None and item.tags.status != "pending":
                yield item, item.tags

    # --- holds -------------------------------------------------------------------------------------------------

    def hold(self, record_id: str, tab: str, reviewer: str) -> str | None:
        """Takes the record for `tab` unless another tab holds it; returns that tab's reviewer then."""
        with self._write(durable=False) as db:
            row = db.execute("SELECT tab, reviewer, until FROM holds WHERE id = ?", [record_id]).fetchone()
            if row is not None and row[0] != tab and row[2] > time.time():
                return str(row[1])
            db.execute(
                "INSERT INTO holds VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET tab = excluded.tab,"
                " reviewer = excluded.reviewer, until = excluded.until",
                [record_id, tab, reviewer, time.time() + HOLD_SECONDS],
            )
        return None

    # --- decisions ---------------------------------------------------------------------------------------------

    def decide(
        self,
        record_id: str,
        decision: Decision,
        taxonomy: Taxonomy,
        reviewer: str,
        version: int | None,
        tab: str | None = None,
        source: str = "review",
        at: str | None = None,
    ) -> tuple[Tags, int]:
        """Applies a decision in one transaction and records its event. `version`: the tags' version the decision
        was made on (None: whatever is current, for imported feedback)."""
        with self._write() as db:
            row = db.execute("SELECT tags, version, original FROM state WHERE id = ?", [record_id]).fetchone()
            if row is None:
                raise DecisionError(f"no reviewable record {record_id!r}")
            current, current_version = Tags.from_json(json.loads(row[0])), row[1]
            if version is not None and version != current_version:
                raise Conflict(_changed_message(db, record_id, version))
            if tab is not None:
                _check_hold(db, record_id, tab)
            new, before, after = apply(current, decision, taxonomy)
            new_version = current_version + 1
            edited = not _same_tags(new.to_json(), json.loads(row[2]))
            self._record(
                db, record_id, reviewer, source, decision, (before, after), (current, new, edited), new_version, at
            )
            if decision.action in ("accept", "reject"):
                db.execute("DELETE FROM holds WHERE id = ?", [record_id])
        return new, new_version

    def undo(self, reviewer: str, tab: str | None = None) -> str | None:
        """Undoes this reviewer's last decision made here (not undone yet); returns its record id, None if none."""
        with self._write() as db:
            row = db.execute(
                "SELECT seq, record_id, tags_before, version FROM events WHERE reviewer = ? AND source = 'review'"
                " AND action != 'undo' AND undone_by IS NULL ORDER BY seq DESC LIMIT 1",
                [reviewer],
            ).fetchone()
            if row is None:
                return None
            seq, record_id, tags_before, version = row
            current = db.execute("SELECT tags, version, original FROM state WHERE id = ?", [record_id]).fetchone()
            if current[1] != version:
                raise Conflict(_changed_message(db, record_id, version))
            if tab is not None:
                _check_hold(db, record_id, tab)
            restored = Tags.from_json(json.loads(tags_before))
            now = Tags.from_json(json.loads(current[0]))
            undo = Decision("undo")
            edited = not _same_tags(restored.to_json(), json.loads(current[2]))
            self._record(
                db, record_id, reviewer, "review", undo, (seq, None), (now, restored, edited), version + 1, None
            )
            db.execute("UPDATE events SET undone_by = last_insert_rowid() WHERE seq = ?", [seq])
        return str(record_id)

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        record_id: str,
        reviewer: str,
        source: str,
        decision: Decision,
        change: tuple[Any, Any],
        tags: tuple[Tags, Tags, bool],
        version: int,
        at: str | None,
    ) -> None:
        """The event (the changed value before and after; the whole tags before and after) and the new state."""
        (before, after), (old, new, edited) = change, tags
        when = at or now_iso()
        db.execute(
            "INSERT INTO events (record_id, at, reviewer, source, action, attribute, before, after, tags_before,"
            " tags_after, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record_id,
                when,
                reviewer,
                source,
                decision.action,
                decision.attribute,
                json.dumps(before, ensure_ascii=False),
                json.dumps(after, ensure_ascii=False),
                json.dumps(old.to_json(), ensure_ascii=False),
                json.dumps(new.to_json(), ensure_ascii=False),
                version,
            ],
        )
        db.execute(
            "UPDATE state SET tags = ?, status = ?, edited = ?, version = ?, reviewer = ?, updated_at = ? WHERE id = ?",
            [json.dumps(new.to_json(), ensure_ascii=False), new.status, edited, version, reviewer, when, record_id],
        )


_ORDER = {
    # Unknown confidence sorts as least confident; then the most warnings first; then the output's order.
    "confidence": "r.confidence IS NOT NULL, r.confidence, r.warnings DESC, r.row",
    "category": "r.category_path, r.confidence IS NOT NULL, r.confidence, r.row",
    "warnings": "r.warnings DESC, r.confidence IS NOT NULL, r.confidence, r.row",
    "row": "r.row",
}


def _filters(status: str, query: str, attribute: str) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    status_sql = {
        # The unary + keeps SQLite from the status index, so it walks the order's index and stops at the page.
        "pending": "+s.status = 'pending'",
        "reviewed": "+s.status != 'pending'",
        "accepted": "+s.status = 'accepted'",
        "rejected": "+s.status = 'rejected'",
        "unreadable": "r.kind != 'tag'",
        "all": "",
    }
    if status_sql.get(status):
        where.append(status_sql[status])
    for word in query.lower().split():
        where.append("r.search LIKE ? ESCAPE '\\'")
        args.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if attribute:
        where.append("r.handles LIKE ?")
        args.append(f"% {attribute} %")
    return where, args


def _parse_line(raw: bytes, row: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"row": row, "confidence": None, "warnings": 0, "category_path": "", "handles": ""}
    entry |= {"problem": None, "tags": None}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if "error" in data:
            error = ErrorRecord.model_validate(data)
            rid = error.id if error.id is not None else f"row-{row}"
            text = error.model_dump_json()
            return entry | {
                "id": rid,
                "kind": "error",
                "record": text,
                "problem": error.error.message,
                "search": f"{rid} {error.error.kind}".lower(),
            }
        record = TagRecord.model_validate(data)
    except (ValueError, ValidationError) as exc:
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        problem = str(exc).splitlines()[0][:300]
        return entry | {
            "id": f"line-{row}",
            "kind": "malformed",
            "record": text,
            "problem": problem,
            "search": f"line-{row}",
        }
    tags = Tags(record.category.id, record.attributes)
    values = " ".join(v for vs in record.attributes.values() for v in vs)
    return entry | {
        "id": record.id,
        "kind": "tag",
        "record": record.model_dump_json(),
        "confidence": _record_confidence(record),
        "warnings": len(record.warnings),
        "category_path": " > ".join(record.category.path),
        "handles": " " + " ".join(record.attributes) + " ",
        "search": f"{record.id} {' > '.join(record.category.path)} {values}".lower(),
        "tags": json.dumps(tags.to_json(), ensure_ascii=False),
    }


def _record_confidence(record: TagRecord) -> float | None:
    """The mean of the category's and the values' calibrated confidences: on 200 Flipkart dev records, the 50 least
    confident by the mean held 39 wrong categories, by the lowest 30, at random 27 (README, "The loop")."""
    known = [e.confidence for e in record.evidence if e.confidence is not None]
    if record.category.confidence is not None:
        known.append(record.category.confidence)
    return sum(known) / len(known) if known else None


def _queue_row(
    rid: str, row: int, kind: str, status: str, confidence: float | None, warnings: int, path: str, title: str,
    problem: str | None, edited: int,
) -> QueueRow:  # fmt: skip
    return QueueRow(rid, row, kind, status, confidence, warnings, path, title, problem, bool(edited))


def _product(text: str | None) -> Product | None:
    if not text:
        return None
    data = json.loads(text)
    return Product(data["id"], data["title"], data["description"], data["fields"])


def _same_tags(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _normal(a) == _normal(b)


def _normal(tags: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
    return tags["category"], {k: sorted(v) for k, v in tags["attributes"].items() if v}


def _check_hold(db: sqlite3.Connection, record_id: str, tab: str) -> None:
    row = db.execute("SELECT tab, reviewer, until FROM holds WHERE id = ?", [record_id]).fetchone()
    if row is not None and row[0] != tab and row[2] > time.time():
        raise Conflict(f"{record_id} is open in another tab ({row[1]}); try again when it is released")


def _changed_message(db: sqlite3.Connection, record_id: str, version: int) -> str:
    row = db.execute(
        "SELECT reviewer, at, action FROM events WHERE record_id = ? AND version > ? ORDER BY seq DESC LIMIT 1",
        [record_id, version],
    ).fetchone()
    who = f"{row[0]} ({row[2]} at {row[1]})" if row else "someone"
    return f"{record_id} was changed by {who} since this page showed it; reload to see the current tags"
