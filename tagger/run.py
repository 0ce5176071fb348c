"""Bulk runs: a catalog in, one record per product out, resumable, cached, deduplicated, rejects set aside.

For each batch of rows, the main thread plans: it claims each id (skipping ids an earlier run finished), rejects bad
rows, cleans the products and looks their content up in the cache. Only content that is neither cached nor already
in flight goes to a worker's Tagger; finished batches are written in input order, to the journal first, then to
the cache. A kill loses at most the batches in flight, and a rerun of the same command does the rest.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tagger.cache import ResultCache, scope_of
from tagger.clean import Cleaned, content_key
from tagger.io import RejectsFile, Row, finish_output, prepare_output, read_rows
from tagger.io.seen import SeenIds
from tagger.pipeline import Tagger
from tagger.product import Columns, Product, ProductError
from tagger.records import ErrorInfo, ErrorRecord, Record, TagRecord, result_of, to_json_line

log = logging.getLogger("tagger.run")


@dataclass
class RunOptions:
    input_format: str | None = None  # from the suffix when None
    columns: Columns = field(default_factory=Columns)
    limit: int | None = None
    batch_size: int = 8
    restart: bool = False  # drop earlier output and start over
    rejects: Path | None = None  # default: beside the output, <stem>.rejects.jsonl


@dataclass
class RunSummary:
    rows: int = 0
    tagged: int = 0  # records written by this run
    generated: int = 0  # of which this run tagged afresh (the rest reuse a cached or duplicate result)
    asked: int = 0  # of which needed a model call (the evidence settles many without one)
    resumed: int = 0  # skipped: finished by an earlier run
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def count(self, record: TagRecord) -> None:
        self.tagged += 1
        self.generated += record.reused_from is None
        self.asked += record.reused_from is None and record.usage.prompt_tokens > 0

    @property
    def reused(self) -> int:
        return self.tagged - self.generated

    @property
    def failed(self) -> int:
        return sum(self.rejected.values())


def rejects_path(output: Path) -> Path:
    return output.with_name(output.with_suffix("").name + ".rejects.jsonl")


@dataclass
class Entry:
    """One input row in a bulk run: its content key and cleaned product, or the record it already has."""

    row: int
    key: str = ""
    cleaned: Cleaned | None = None
    record: Record | None = None  # known at planning: a reject or a cache hit


@dataclass
class _Batch:
    entries: list[Entry]
    generate: list[Entry]  # one entry per distinct content not yet cached or in flight
    future: Future[list[Record]] | None = None


class BulkRun:
    """One run over one source. Several taggers (one per worker) share the work; they must share their scope."""

    def __init__(self, taggers: Sequence[Tagger], cache: ResultCache, summary: RunSummary) -> None:
        self.taggers = taggers
        self.cache = cache
        self.summary = summary
        self.scope = scope_of(taggers[0].scope)
        self.seen = SeenIds()
        self.in_flight: Counter[str] = Counter()
        self.failures: dict[str, ErrorInfo] = {}  # content key -> why its generation failed (for its duplicates)
        self._idle: queue.Queue[Tagger] = queue.Queue()
        for tagger in taggers:
            self._idle.put(tagger)

    # --- planning (main thread) -------------------------------------------------------------------------------

    def plan(self, rows: Sequence[Row]) -> _Batch:
        entries = [self._entry(row, item) for row, item in rows]
        self.seen.commit()
        fresh = [e for e in entries if e.cleaned is not None]
        hits = self.cache.get_many(self.scope, [e.key for e in fresh])
        generate: dict[str, Entry] = {}
        for entry in fresh:
            assert entry.cleaned is not None
            if entry.key in hits:
                entry.record = self.taggers[0].reuse(hits[entry.key], entry.cleaned.product.id, entry.cleaned.truncated)
            elif entry.key not in self.in_flight and entry.key not in generate:
                generate[entry.key] = entry
        for entry in fresh:
            if entry.record is None:
                self.in_flight[entry.key] += 1
        return _Batch(entries, list(generate.values()))

    def _entry(self, row: int, item: Product | ProductError) -> Entry:
        if isinstance(item, ProductError):
            return Entry(row, record=_reject(item.product_id, row, item.kind, str(item)))
        claim = self.seen.claim(item.id)
        if claim == "done":
            self.summary.resumed += 1
            return Entry(row)
        if claim == "duplicate":
            message = f"row {row} (id {item.id!r}): the id was already used by an earlier row"
            return Entry(row, record=_reject(item.id, row, "duplicate_id", message))
        cleaned = self.taggers[0].cleaner.clean(item)
        if not cleaned.product.title:
            message = f"row {row} (id {item.id!r}): the title is empty after cleaning"
            return Entry(row, record=_reject(item.id, row, "missing_title", message))
        return Entry(row, content_key(cleaned.product), cleaned)

    # --- generation (a worker) --------------------------------------------------------------------------------

    def submit(self, pool: ThreadPoolExecutor | None, batch: _Batch) -> None:
        items = [e.cleaned for e in batch.generate if e.cleaned is not None]
        if pool is None:  # one worker: generate here, in the calling thread
            batch.future = Future()
            batch.future.set_result(self._generate(items))
        else:
            batch.future = pool.submit(self._generate, items)

    def _generate(self, items: list[Cleaned]) -> list[Record]:
        tagger = self._idle.get()
        try:
            return generate_records(tagger, items)
        finally:
            self._idle.put(tagger)

    # --- writing (main thread, input order) -------------------------------------------------------------------

    def finish(self, batch: _Batch) -> tuple[list[str], list[ErrorRecord]]:
        assert batch.future is not None
        made = dict(zip((e.key for e in batch.generate), batch.future.result(), strict=True))
        self.keep(made)
        lines, rejects = [], []
        for entry in batch.entries:
            record = entry.record or self.resolve(entry, made)
            if record is None:
                continue  # finished by an earlier run
            if isinstance(record, ErrorRecord):
                record.row = entry.row
                rejects.append(record)
            else:
                lines.append(to_json_line(record))
                self.summary.count(record)
        for entry in batch.entries:
            if entry.record is None and entry.cleaned is not None:
                self.in_flight[entry.key] -= 1
                if not self.in_flight[entry.key]:
                    del self.in_flight[entry.key]
        return lines, rejects

    def keep(self, made: dict[str, Record]) -> None:
        """Generated results by content key: successes into the cache, failures remembered for their duplicates."""
        # Into the cache first: the duplicates of this batch, and those in later batches, read their result there.
        self.cache.put_many(self.scope, ((k, result_of(r)) for k, r in made.items() if isinstance(r, TagRecord)))
        self.failures.update((k, r.error) for k, r in made.items() if isinstance(r, ErrorRecord))

    def resolve(self, entry: Entry, made: dict[str, Record]) -> Record | None:
        if entry.cleaned is None:
            return None
        product = entry.cleaned.product
        own = made.get(entry.key)
        if own is not None and own.id == product.id:
            return own
        result = self.cache.get_many(self.scope, [entry.key]).get(entry.key)
        if result is not None:
            return self.taggers[0].reuse(result, product.id, entry.cleaned.truncated)
        error = self.failures.get(entry.key, ErrorInfo(kind="internal_error", message="no result for its content"))
        return ErrorRecord(id=product.id, error=error)

    def close(self) -> None:
        self.seen.close()


def generate_records(tagger: Tagger, items: Sequence[Cleaned]) -> list[Record]:
    """One record per item, in order. A bug or a backend that broke its promise fails this batch's rows as
    internal_error records; it never stops the run."""
    try:
        return tagger.tag_cleaned(items)
    except Exception as exc:
        log.exception("a batch of %d products failed", len(items))
        error = ErrorInfo(kind="internal_error", message=f"{type(exc).__name__}: {exc}")
        return [ErrorRecord(id=item.product.id, error=error) for item in items]


def _reject(product_id: str | None, row: int, kind: str, message: str) -> ErrorRecord:
    return ErrorRecord(id=product_id, row=row, error=ErrorInfo(kind=kind, message=message))


def row_batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Groups of rows holding up to `size` products (bad rows ride along, so output keeps input order)."""
    batch: list[Row] = []
    products = 0
    for row, item in rows:
        batch.append((row, item))
        products += isinstance(item, Product)
        if products >= size:
            yield batch
            batch, products = [], 0
    if batch:
        yield batch


def tag_catalog(
    taggers: Tagger | Sequence[Tagger],
    source: str | Path,
    output: Path,
    options: RunOptions | None = None,
    cache: ResultCache | None = None,
    on_progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Tag every row of `source` into `output` (JSONL or Parquet), resuming what an earlier run left.

    `cache=None` keeps a private cache for this run only (duplicates are still generated once)."""
    options = options or RunOptions()
    workers = [taggers] if isinstance(taggers, Tagger) else list(taggers)
    summary = RunSummary()
    start = time.perf_counter()
    journal = prepare_output(output, options.restart)
    run_cache = cache or ResultCache(None)
    run = BulkRun(workers, run_cache, summary)
    run_cache.register(run.scope, workers[0].scope)
    done = run.seen.add_done(journal.recover())
    if done:
        log.info("resuming: %d products already in %s", done, output)
    rejects = RejectsFile(options.rejects or rejects_path(output))
    window: deque[_Batch] = deque()

    def drain(keep: int) -> None:
        while len(window) > keep:
            lines, rejected = run.finish(window.popleft())
            journal.append(lines)
            rejects.append(rejected)
            for record in rejected:
                summary.rejected[record.error.kind] += 1
                log.info("rejected: %s", record.error.message)
            summary.seconds = time.perf_counter() - start
            if on_progress is not None:
                on_progress(summary)

    # One worker generates in this thread: planning the next batch meanwhile would save only ~0.06% of the run
    # (bench_bulk.py). The 6-12% slowdown once blamed on a worker thread was drift over a long run: interleaved,
    # the two measure alike.
    pool = ThreadPoolExecutor(len(workers), thread_name_prefix="tagger") if len(workers) > 1 else None
    try:
        rows = islice(read_rows(source, options.input_format, options.columns), options.limit)
        for rows_batch in row_batches(rows, options.batch_size):
            summary.rows += len(rows_batch)
            batch = run.plan(rows_batch)
            run.submit(pool, batch)
            window.append(batch)
            drain(keep=len(workers) - 1 if pool is None else len(workers))  # keep every worker busy
        drain(keep=0)
        finish_output(output, journal)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        journal.close()
        rejects.close()
        run.close()
        if cache is None:
            run_cache.close()
    summary.seconds = time.perf_counter() - start
    return summary
