"""Review app latency on a 10,000-record output (issue 14): page load and decision round trip, p50 and p95.

Builds a catalog and an output of N records from the shared dev sets' products (cycled with new ids), each with its
Shopify category, a few closed attribute values of that category, confidences and evidence; starts the real
`tagger review` server on it (Shopify's taxonomy, 10,595 categories) and times, over HTTP from another process:
the queue page, a record page, a decision (accept, or a value change) answered as JSON, and the category search.
The baseline, interleaved with every measured request, is a static file from the same server: the floor of a
request on this machine at that moment (the machine is shared).

    python benchmarks/bench_review.py [--n 10000] [--samples 200] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.evals.config import default_data_root  # noqa: E402
from tagger.records import CategoryRef, Evidence, Provenance, Span, TagRecord, to_json_line  # noqa: E402
from tagger.taxonomy import Taxonomy, load_taxonomy  # noqa: E402

SETS = ("oa-mine/dev.jsonl", "wdc-pave/dev.jsonl", "flipkart/dev.jsonl")


def build(
    folder: Path, n: int, data_root: Path, taxonomy: Taxonomy, rng: random.Random
) -> tuple[Path, Path, list[str]]:
    """The catalog, the output, and the ids of records with values (a value decision needs one)."""
    rows = []
    for name in SETS:
        for line in (data_root / name).read_text().splitlines():
            row = json.loads(line)
            gid = (row.get("shopify_category") or {}).get("gid")
            if gid in taxonomy.categories:
                rows.append(row)
    provenance = Provenance(
        model="bench", backend="llamacpp", template="default", template_hash="h", taxonomy=taxonomy.name,
        taxonomy_version=taxonomy.version, tagger_version="0.1.0", decoding={}, cleaning="off",
    )  # fmt: skip
    catalog, output = folder / "catalog.jsonl", folder / "tagged.jsonl"
    with_values = []
    with catalog.open("w") as cat, output.open("w") as out:
        for i in range(n):
            row = rows[i % len(rows)]
            pid = f"p{i:05d}"
            cat.write(
                json.dumps({"id": pid, "title": row["title"], "description": row.get("description") or ""}) + "\n"
            )
            record = _record(pid, row, taxonomy, provenance, rng)
            out.write(to_json_line(record))
            if record.attributes:
                with_values.append(pid)
    return catalog, output, with_values


def _record(pid: str, row: dict, taxonomy: Taxonomy, provenance: Provenance, rng: random.Random) -> TagRecord:
    category = taxonomy.categories[row["shopify_category"]["gid"]]
    closed = [a for a in taxonomy.attributes_for(category.id) if a.values]
    attributes = {a.handle: [rng.choice(a.values)] for a in rng.sample(closed, min(3, len(closed)))}
    evidence = []
    for handle, values in attributes.items():
        at = row["title"].lower().find(values[0].lower())
        spans = [Span(field="title", start=at, end=at + len(values[0]), text=row["title"][at : at + len(values[0])])]
        evidence.append(Evidence(attribute=handle, value=values[0], source="text" if at >= 0 else "inferred",
                                 spans=spans if at >= 0 else [], confidence=round(rng.random(), 3)))  # fmt: skip
    return TagRecord(
        id=pid,
        category=CategoryRef(id=category.id, path=list(category.path), confidence=round(rng.random(), 3)),
        attributes=attributes,
        evidence=evidence,
        provenance=provenance,
    )


class Server:
    def __init__(self, output: Path, catalog: Path, taxonomy_spec: str) -> None:
        command = [sys.executable, "-m", "tagger", "review", str(output), "--input", str(catalog), "--no-clean",
                   "--taxonomy", taxonomy_spec, "--port", "0", "--reviewer", "bench"]  # fmt: skip
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(600)
        match = re.search(r"(http://\S+)", line[0] if line else "")
        if match is None:
            self.process.kill()
            raise SystemExit(f"the server did not start: {line}")
        self.url = match.group(1)
        self.start_seconds = time.perf_counter() - started

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.url}: HTTP {response.status_code} {response.text[:300]}")
    return elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    spec = "shopify"  # the copy shipped with tagger
    taxonomy = load_taxonomy(spec)
    with tempfile.TemporaryDirectory() as tmp:
        catalog, output, with_values = build(Path(tmp), args.n, args.data_root, taxonomy, rng)
        server = Server(output, catalog, spec)
        try:
            results = measure(server.url, args.samples, with_values, rng)
        finally:
            server.stop()
        db_mb = sum(p.stat().st_size for p in Path(tmp).glob("*.sqlite*")) / 1e6
    print(f"{args.n:,} records, Shopify taxonomy ({len(taxonomy.categories):,} categories); server start with")
    print(f"loading {server.start_seconds:.1f} s; review store {db_mb:.1f} MB; {args.samples} samples each")
    print(f"{'request':<42} {'p50 ms':>8} {'p95 ms':>8}   baseline (static file) p50 / p95 ms")
    for name, (values, floor) in results.items():
        print(f"{name:<42} {pct(values, 50):8.1f} {pct(values, 95):8.1f}   {pct(floor, 50):.1f} / {pct(floor, 95):.1f}")


def measure(
    url: str, samples: int, with_values: list[str], rng: random.Random
) -> dict[str, tuple[list[float], list[float]]]:
    client = httpx.Client(base_url=url, timeout=60)
    queue = client.get("queue?tab=bench")
    csrf = re.search(r'name="csrf" value="([^"]+)"', queue.text).group(1)  # type: ignore[union-attr]
    results: dict[str, tuple[list[float], list[float]]] = {}

    def run(name: str, call: Callable[[], httpx.Response]) -> None:
        values, floor = results.setdefault(name, ([], []))
        floor.append(timed(lambda: client.get("static/review.css")))
        values.append(timed(call))

    ids = rng.sample(with_values, samples)
    words = ["shoes", "dress", "kettle", "phone case", "yoga mat", "women shirt", "cable", "bed", "toy car", "tea"]
    for i in range(samples):
        rid, word = ids[i], words[i % len(words)]
        run("queue page (50 least confident of all)", lambda: client.get("queue?tab=bench"))
        run("queue page, filtered (a word)", lambda word=word: client.get(f"queue?tab=bench&q={word}"))  # type: ignore[misc]
        run("record page", lambda rid=rid: client.get(f"r/{rid}?tab=bench"))  # type: ignore[misc]
        record = client.get(f"api/record/{rid}").json()
        handle, values = next(iter(record["tags"]["attributes"].items()))
        change = {"action": "remove_value", "attribute": handle, "value": values[0], "version": record["version"]}
        run("decision: remove a value (JSON)", lambda rid=rid, change=change: _post(client, rid, change, csrf))  # type: ignore[misc]
        accept = {"action": "accept", "version": record["version"] + 1}
        run("decision: accept, with the next record (JSON)", lambda rid=rid, a=accept: _post(client, rid, a, csrf))  # type: ignore[misc]
        run("category search (Shopify)", lambda word=word: client.get(f"api/categories?q={word}"))  # type: ignore[misc]
    return results


def _post(client: httpx.Client, rid: str, form: dict, csrf: str) -> httpx.Response:
    return client.post(f"r/{rid}/decide?tab=bench", data=form | {"csrf": csrf}, headers={"accept": "application/json"})


if __name__ == "__main__":
    main()
