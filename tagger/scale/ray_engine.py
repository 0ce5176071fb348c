"""The bulk run on Ray Data: the same planning, cache, journal and rejects as `tagger.run.tag_catalog`, with the
model calls spread over a pool of tagger actors on a Ray cluster (a laptop's local Ray, or many GPU nodes).

Three passes, all driven from here:

1. Plan (this process): rows are read with tagger's own reader (so rejects name the same rows and kinds as a local
   run; Ray's JSON reader fails a whole file on one bad line), then `BulkRun.plan` claims ids (skipping those an
   earlier run finished), rejects bad rows, cleans, looks contents up in the cache and sends each distinct content
   to the model once. Cache hits and rejects are written at once; the contents to generate go to Ray's object
   store, one block per backend batch; duplicates of a content in flight wait in a spool file.
2. Generate (Ray Data): `map_batches` over an actor pool, each actor holding one tagger built by `build_tagger`
   from the same spec. Actors return records; only this process writes them, to the journal (fsynced block by
   block, as they complete) and the cache. Ray restarts an actor that dies and retries its batch.
3. Resolve: the duplicates take their content's result from the cache (or its failure), as in a local run.

A kill at any moment loses only the blocks in flight: the rerun skips every id in the output, and a duplicate whose
content was generated before the kill is a cache hit.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from tagger.build import TaggerSpec, build_tagger, build_taggers
from tagger.cache import ResultCache
from tagger.errors import TaggerError
from tagger.io import Journal, RejectsFile, finish_output, prepare_output, read_rows
from tagger.records import ErrorRecord, Record, TagRecord, to_json_line
from tagger.run import BulkRun, Entry, RunOptions, RunSummary, generate_records, rejects_path, row_batches
from tagger.scale.uri import is_uri, read_uri_rows

log = logging.getLogger("tagger.scale")

RAY_MISSING = "the ray engine needs Ray Data: pip install 'tagger[ray]' (or: pip install 'ray[data]>=2.58')"
SPOOL_CHUNK = 512  # duplicates resolved and written per journal append


@dataclass
class RayOptions:
    """Where and how wide the generation runs.

    address: None starts a local Ray in this process (`ray.init()`) unless one is running already; "auto" or
    "HOST:PORT" joins an existing cluster. Each of `actors` actors holds one backend and reserves `cpus_per_actor`
    CPUs and `gpus_per_actor` GPUs (for vLLM with tensor parallelism, the GPUs of one engine)."""

    address: str | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    progress: bool = True  # Ray Data's own progress bars


def import_ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise TaggerError(f"{RAY_MISSING} ({exc})") from exc
    return ray


class TaggerActor:
    """One tagger on one Ray worker, built from the run's spec; a call tags one block of work rows."""

    def __init__(self, spec: TaggerSpec) -> None:
        self.tagger = build_tagger(spec)

    def __call__(self, batch: Any) -> dict[str, list[Any]]:  # a pyarrow.Table of work rows
        # The payloads were pickled by this run's own planner, never read from outside.
        items = [pickle.loads(payload) for payload in batch.column("payload").to_pylist()]  # noqa: S301
        records = generate_records(self.tagger, items)
        return {
            "key": batch.column("key").to_pylist(),
            "row": batch.column("row").to_pylist(),
            "record": [record.model_dump_json() for record in records],
            "failed": [isinstance(record, ErrorRecord) for record in records],
        }


def actor_spec(spec: TaggerSpec, options: RayOptions) -> TaggerSpec:
    """The spec an actor builds from: llama.cpp gets as many threads as the actor reserves CPUs (threads beyond
    the cores they own spin at barriers), unless the spec sets them."""
    if spec.backend.name != "llamacpp" or "n_threads" in spec.backend.options:
        return spec
    threads = max(1, int(options.cpus_per_actor))
    backend = spec.backend.model_copy(update={"options": {**spec.backend.options, "n_threads": threads}})
    return spec.model_copy(update={"backend": backend})


class _Sink:
    """Writes finished records (journal, then rejects) and keeps the summary, as the local run's drain does."""

    def __init__(
        self, journal: Journal, rejects: RejectsFile, summary: RunSummary, on_progress: Callable[[RunSummary], None]
    ) -> None:
        self.journal, self.rejects, self.summary, self.on_progress = journal, rejects, summary, on_progress
        self.start = time.perf_counter()

    def write(self, records: list[Record]) -> None:
        lines = [to_json_line(r) for r in records if isinstance(r, TagRecord)]
        rejected = [r for r in records if isinstance(r, ErrorRecord)]
        self.journal.append(lines)
        self.rejects.append(rejected)
        for record in records:
            if isinstance(record, TagRecord):
                self.summary.count(record)
            else:
                self.summary.rejected[record.error.kind] += 1
                log.info("rejected: %s", record.error.message)
        self.summary.seconds = time.perf_counter() - self.start
        self.on_progress(self.summary)


class _Work:
    """The contents to generate, put into Ray's object store as Arrow blocks of one backend batch each."""

    def __init__(self, ray: ModuleType, connect: Callable[[], None], block_rows: int) -> None:
        self.ray, self.connect, self.block_rows = ray, connect, block_rows
        self.blocks: list[Any] = []
        self._rows: list[tuple[str, int, bytes]] = []

    def add(self, entry: Entry) -> None:
        self._rows.append((entry.key, entry.row, pickle.dumps(entry.cleaned)))
        if len(self._rows) >= self.block_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa

        self.connect()
        keys, rows, payloads = zip(*self._rows, strict=True)
        table = pa.table({"key": list(keys), "row": list(rows), "payload": pa.array(payloads, pa.binary())})
        self.blocks.append(self.ray.put(table))
        self._rows = []


class _Spool:
    """Rows whose content another row of this run generates: kept on disk until that result is in."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.count = 0

    def add(self, entry: Entry) -> None:
        pickle.dump(entry, self._file)
        self.count += 1

    def __iter__(self) -> Iterator[Entry]:
        self._file.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._file)  # noqa: S301 (written above, by this process)

    def close(self) -> None:
        self._file.close()


def tag_catalog_ray(
    spec: TaggerSpec,
    source: str | Path,
    output: Path,
    options: RunOptions | None = None,
    ray_options: RayOptions | None = None,
    cache: ResultCache | None = None,
    on_progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """`tagger.run.tag_catalog` on Ray: every row of `source` into `output` (JSONL or Parquet), resuming what an
    earlier run left, the model calls made by `ray_options.actors` tagger actors. `cache=None` keeps a private cache
    for this run only."""
    ray = import_ray()
    options = options or RunOptions()
    ray_options = ray_options or RayOptions()
    if ray_options.actors < 1:
        raise TaggerError(f"--actors must be at least 1, got {ray_options.actors}")
    # The planner only cleans, keys and reuses: the backend's tokenizer and names, no weights.
    planner = build_taggers(spec, 1, load_model=False)[0]
    summary = RunSummary()
    journal = prepare_output(output, options.restart)
    run_cache = cache or ResultCache(None)
    run = BulkRun([planner], run_cache, summary)
    run_cache.register(run.scope, planner.scope)
    done = run.seen.add_done(journal.recover())
    if done:
        log.info("resuming: %d products already in %s", done, output)
    rejects = RejectsFile(options.rejects or rejects_path(output))
    sink = _Sink(journal, rejects, summary, on_progress or (lambda _: None))
    started = _Connection(ray, ray_options)
    work = _Work(ray, started.connect, options.batch_size)
    spool = _Spool()
    try:
        _plan(run, source, options, sink, work, spool)
        work.flush()
        if work.blocks:
            _generate(ray, run, actor_spec(spec, ray_options), ray_options, options.batch_size, work.blocks, sink)
        _resolve(run, spool, sink)
        finish_output(output, journal)
    finally:
        spool.close()
        journal.close()
        rejects.close()
        run.close()
        if cache is None:
            run_cache.close()
        planner.close()
        started.close()
    summary.seconds = time.perf_counter() - sink.start
    return summary


class _Connection:
    """Ray, started or joined on first use; shut down at the end only if this run started it."""

    def __init__(self, ray: ModuleType, options: RayOptions) -> None:
        self.ray, self.options = ray, options
        self.owned = False

    def connect(self) -> None:
        if self.ray.is_initialized():
            return
        start = time.perf_counter()
        # A local Ray needs no dashboard (memory and a core for nothing); joining a cluster ignores the flag.
        self.ray.init(address=self.options.address, include_dashboard=False, log_to_driver=False)
        self.owned = True
        log.info("ray started in %.1f s", time.perf_counter() - start)

    def close(self) -> None:
        if self.owned:
            start = time.perf_counter()
            self.ray.shutdown()
            self.owned = False
            log.info("ray stopped in %.1f s", time.perf_counter() - start)


def _plan(run: BulkRun, source: str | Path, options: RunOptions, sink: _Sink, work: _Work, spool: _Spool) -> None:
    if is_uri(source):
        rows = islice(read_uri_rows(str(source), options.input_format, options.columns), options.limit)
    else:
        rows = islice(read_rows(source, options.input_format, options.columns), options.limit)
    for rows_batch in row_batches(rows, options.batch_size):
        run.summary.rows += len(rows_batch)
        batch = run.plan(rows_batch)
        leaders = {id(entry) for entry in batch.generate}
        ready: list[Record] = []
        for entry in batch.entries:
            if entry.record is not None:  # a reject or a cache hit
                ready.append(entry.record)
            elif id(entry) in leaders:
                work.add(entry)
            elif entry.cleaned is not None:  # its content is generated by an earlier row of this run
                spool.add(entry)
        sink.write(ready)


def _generate(
    ray: ModuleType,
    run: BulkRun,
    spec: TaggerSpec,
    options: RayOptions,
    batch_size: int,
    blocks: list[Any],
    sink: _Sink,
) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = options.progress
    dataset = ray.data.from_arrow_refs(blocks).map_batches(
        TaggerActor,
        fn_constructor_args=(spec,),
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor or None,
        # Ray Data's actor pools default to max_restarts=-1 and max_task_retries=-1: a dead actor is restarted and
        # its batch retried (tests/test_ray_engine.py kills one).
    )
    start, first = time.perf_counter(), True
    for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        if first:  # the actors' start and model loads, and one batch: a cost per command, not per product
            log.info("first records in %.1f s", time.perf_counter() - start)
            first = False
        sink.write(_finished(run, block.to_pylist()))
    log.info("generation done in %.1f s", time.perf_counter() - start)


def _finished(run: BulkRun, rows: list[dict[str, Any]]) -> list[Record]:
    """An actor's records, back in this process: into the cache (successes) or remembered (failures)."""
    made: dict[str, Record] = {}
    for row in rows:
        if row["failed"]:
            failure = ErrorRecord.model_validate_json(row["record"])
            failure.row = row["row"]
            made[row["key"]] = failure
        else:
            made[row["key"]] = TagRecord.model_validate_json(row["record"])
    run.keep(made)
    return list(made.values())


def _resolve(run: BulkRun, spool: _Spool, sink: _Sink) -> None:
    chunk: list[Record] = []
    for entry in spool:
        record = run.resolve(entry, {})
        if record is None:
            continue
        if isinstance(record, ErrorRecord):
            record.row = entry.row
        chunk.append(record)
        if len(chunk) >= SPOOL_CHUNK:
            sink.write(chunk)
            chunk = []
    sink.write(chunk)


__all__ = ["RAY_MISSING", "RayOptions", "TaggerActor", "actor_spec", "import_ray", "tag_catalog_ray"]
