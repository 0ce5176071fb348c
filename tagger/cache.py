"""The result cache: tagged results in SQLite, so a rerun or a duplicate product never asks the model twice.

A result is keyed by its scope (everything that shapes an answer: model, backend, decoding, template hash, taxonomy
content, cleaning config, tagger version) and by the product's cleaned content. Change any of those and the old
entries are simply not found; `tagger cache clear` removes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger._paths import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (scope TEXT PRIMARY KEY, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    scope TEXT NOT NULL, key TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""


def default_cache_path() -> Path:
    return cache_dir("results") / "results.sqlite"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, computed once per (path, size, modification time) and remembered under
    $TAGGER_CACHE_DIR/digests: a model's identity in the cache key, without rereading 100 MB on every start."""
    path = path.resolve()
    stat = path.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        memo: Path | None = cache_dir("digests") / "sha256.json"
    except OSError:  # no writable cache folder: the digest is computed every time, which is only slower
        memo = None
    known = _read_memo(memo) if memo is not None else {}
    entry = known.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return str(entry["sha256"])
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if memo is not None:
        known[str(path)] = {"stamp": stamp, "sha256": digest}
        _write_memo(memo, known)
    return digest


def _read_memo(memo: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: digests are simply computed again
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_memo(memo: Path, known: dict[str, Any]) -> None:
    # Written whole to a temporary file and renamed: a concurrent reader sees the old memo or the new, never half.
    try:
        handle, name = tempfile.mkstemp(dir=memo.parent, prefix=".sha256-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(known, out)
        os.replace(name, memo)
    except OSError:  # a read-only cache folder: not remembered, which is only slower
        return


def scope_of(description: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ScopeStats:
    scope: str
    description: dict[str, Any]
    entries: int
    first: float
    last: float


class ResultCache:
    """Results by (scope, content key). `path=None` keeps a private temporary database (gone when closed)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect("" if path is None else str(path), timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers (`tagger cache show`) never block a running job
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def register(self, scope: str, description: Mapping[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO scopes VALUES (?, ?)", (scope, json.dumps(description, sort_keys=True))
            )

    def get_many(self, scope: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # under SQLite's limit on bound parameters
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, result FROM results WHERE scope = ? AND key IN ({marks})",  # noqa: S608 (only "?" marks)
                (scope, *chunk),
            )
            found.update((key, json.loads(result)) for key, result in rows)
        return found

    def put_many(self, scope: str, results: Iterable[tuple[str, dict[str, Any]]]) -> None:
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                ((scope, key, json.dumps(result, ensure_ascii=False), now) for key, result in results),
            )

    def stats(self) -> list[ScopeStats]:
        rows = self._db.execute(
            "SELECT s.scope, s.description, COUNT(r.key), MIN(r.created), MAX(r.created) "
            "FROM scopes s JOIN results r ON r.scope = s.scope GROUP BY s.scope ORDER BY MAX(r.created) DESC"
        )
        return [ScopeStats(scope, json.loads(text), count, first, last) for scope, text, count, first, last in rows]

    def clear(self, scope: str | None = None) -> int:
        """Remove every entry, or one scope's (a prefix of its id is enough); returns how many went."""
        with self._db:
            if scope is None:
                removed = self._db.execute("DELETE FROM results").rowcount
                self._db.execute("DELETE FROM scopes")
            else:
                removed = self._db.execute("DELETE FROM results WHERE scope LIKE ?", (scope + "%",)).rowcount
                self._db.execute("DELETE FROM scopes WHERE scope LIKE ?", (scope + "%",))
        self._db.execute("VACUUM")
        return int(removed)

    def close(self) -> None:
        self._db.close()
