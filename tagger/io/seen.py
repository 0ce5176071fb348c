"""Which product ids a run has met: finished by an earlier run, met in this one, or not yet.

Kept in a private temporary SQLite database rather than a Python set, so that memory stays flat on a catalog of
millions of rows (SQLite's page cache is bounded; the file is deleted when the run ends).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from itertools import islice
from typing import Literal

Claim = Literal["new", "done", "duplicate"]


class SeenIds:
    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "": a temporary on-disk database
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, done INTEGER, met INTEGER) WITHOUT ROWID")

    def add_done(self, ids: Iterable[str]) -> int:
        """Ids an earlier run finished; returns how many."""
        count = 0
        iterator = iter(ids)
        while chunk := list(islice(iterator, 10_000)):
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?, 1, 0)", ((i,) for i in chunk))
            count += len(chunk)
        return count

    def claim(self, product_id: str) -> Claim:
        """new: tag it; done: an earlier run did (skip it once); duplicate: this id was met before in this run."""
        row = self._db.execute("SELECT done, met FROM ids WHERE id = ?", (product_id,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO ids VALUES (?, 0, 1)", (product_id,))
            return "new"
        if row[1]:
            return "duplicate"
        self._db.execute("UPDATE ids SET met = 1 WHERE id = ?", (product_id,))
        return "done"

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.close()
