"""The feedback loop of issue 14, measured: tag N dev products with no pool; review R of them by replaying their gold
labels as the reviewer's decisions through the review app's own HTTP endpoints (the least confident first, against
R random ones); export each arm's pool; tag each arm's remaining products again with it (`--examples`). Reports
category exact and attribute F1 on those remaining products before and after, per arm.

Everything runs as a user would: `tagger generate` and `tagger review` processes, `tagger review export`.

    TAGGER_THREADS=1 python benchmarks/loop_review.py [--n 200] [--review 50] [--out loop-results]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagger.evals.config import default_data_root, load_config  # noqa: E402
from tagger.evals.conformance import read_reference  # noqa: E402
from tagger.evals.dataset import LabeledProduct, load_labeled  # noqa: E402
from tagger.evals.metrics import compute  # noqa: E402
from tagger.evals.samples import score  # noqa: E402
from tagger.records import ErrorRecord, Record, TagRecord  # noqa: E402
from tagger.taxonomy import Taxonomy, load_taxonomy  # noqa: E402

ENV = os.environ | {"PYTHONPATH": str(ROOT), "TAGGER_THREADS": os.environ.get("TAGGER_THREADS", "1")}
METRICS = ["category_exact", "category_hf1", "attribute_precision", "attribute_recall", "attribute_f1"]


def tagger(*args: str) -> None:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tagger", *args], env=ENV, check=True)
    print(f"  tagger {args[0]} {args[1]}: {time.perf_counter() - started:.0f} s", flush=True)


def write_catalog(path: Path, examples: list[LabeledProduct]) -> None:
    with path.open("w") as handle:
        for example in examples:
            p = example.product
            handle.write(json.dumps({"id": p.id, "title": p.title, "description": p.description, **p.fields}) + "\n")


def read_records(path: Path) -> dict[str, Record]:
    records: dict[str, Record] = {}
    for line in path.read_text().splitlines():
        data = json.loads(line)
        record: Record = ErrorRecord.model_validate(data) if "error" in data else TagRecord.model_validate(data)
        if record.id is not None:
            records[record.id] = record
    return records


class ReviewServer:
    def __init__(self, output: Path, catalog: Path, spec: str, db: Path) -> None:
        command = [sys.executable, "-m", "tagger", "review", str(output), "--input", str(catalog), "--taxonomy", spec,
                   "--db", str(db), "--port", "0", "--reviewer", "gold-replay"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=ENV)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(300)
        match = re.search(r"(http://\S+)", line[0] if line else "")
        if match is None:
            self.process.kill()
            raise SystemExit(f"the review server did not start: {line}")
        self.client = httpx.Client(base_url=match.group(1), timeout=60)
        page = self.client.get("queue?tab=replay").text
        self.csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def next_id(self) -> str | None:
        response = self.client.get("next?tab=replay&sort=confidence", follow_redirects=False)
        match = re.match(r"/r/([^?]+)", response.headers["location"])
        return httpx.URL("/" + match.group(1)).path[1:] if match else None

    def decide(self, record_id: str, form: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(
            f"r/{record_id}/decide?tab=replay", data=form | {"csrf": self.csrf}, headers={"accept": "application/json"}
        )
        return dict(response.json()) | {"status_code": response.status_code}

    def replay_gold(self, record_id: str, gold: LabeledProduct, taxonomy: Taxonomy) -> int:
        """Turns the record's tags into the gold ones with the app's own decisions; returns how many it made."""
        state = self.client.get(f"api/record/{record_id}").json()
        version, tags, made = state["version"], state["tags"], 0
        target = gold.gold.category_id
        coarse_hit = target and gold.gold.coarse and target in [c.id for c in taxonomy.ancestors(tags["category"])]
        if target and tags["category"] != target and not coarse_hit:
            answer = self.decide(record_id, {"action": "set_category", "new_value": target, "version": version})
            version, tags, made = answer["version"], answer["tags"], made + 1
        allowed = {a.handle for a in taxonomy.attributes_for(tags["category"])}
        for handle, accepted in gold.gold.attributes.items():
            if handle not in allowed:
                continue
            want = [v for v in accepted if v in taxonomy.attributes[handle].values][:1]
            for value in tags["attributes"].get(handle, []):
                if value not in want:
                    answer = self.decide(record_id, {"action": "remove_value", "attribute": handle, "value": value,
                                                     "version": version})  # fmt: skip
                    version, tags, made = answer["version"], answer["tags"], made + 1
            for value in want:
                if value not in tags["attributes"].get(handle, []):
                    answer = self.decide(record_id, {"action": "add_value", "attribute": handle, "value": value,
                                                     "version": version})  # fmt: skip
                    version, tags, made = answer["version"], answer["tags"], made + 1
        answer = self.decide(record_id, {"action": "accept", "version": version})
        assert answer["status_code"] == 200, answer
        return made

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def metrics(
    records: dict[str, Record], examples: list[LabeledProduct], taxonomy: Taxonomy, spec: str
) -> dict[str, Any]:
    reference = read_reference(spec)
    samples = [
        score(records[e.product.id], e.gold, taxonomy, e.product, reference)
        for e in examples
        if e.product.id in records
    ]
    return compute(METRICS, samples) | {"n": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--review", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=default_data_root())
    parser.add_argument("--out", type=Path, default=Path("loop-results"))
    args = parser.parse_args()
    os.environ.setdefault("TAGGER_DATA_ROOT", str(args.data_root))
    config = load_config(ROOT / "evals" / "flipkart-shopify.yaml")
    spec = config.resolve(config.taxonomy or "", args.data_root)
    taxonomy = load_taxonomy(spec)
    everything = load_labeled(config, taxonomy, args.data_root, sample=False)
    examples = random.Random(args.seed).sample(everything, args.n)
    gold = {e.product.id: e for e in examples}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    catalog, before_path = out / "catalog.jsonl", out / "tagged.jsonl"
    write_catalog(catalog, examples)
    print(f"tagging {args.n} products with no pool", flush=True)
    common = ["--taxonomy", spec, "--no-cache", "--quiet"]
    if not before_path.exists():
        tagger("generate", str(catalog), "-o", str(before_path), *common)
    before = read_records(before_path)
    results: dict[str, Any] = {
        "n": args.n,
        "review": args.review,
        "all_before": metrics(before, examples, taxonomy, spec),
    }
    for arm in ("confidence", "random"):
        print(f"arm {arm}: reviewing {args.review} through the app", flush=True)
        db = out / f"{arm}.review.sqlite"
        for stale in out.glob(f"{arm}.review.sqlite*"):
            stale.unlink()
        server = ReviewServer(before_path, catalog, spec, db)
        try:
            if arm == "confidence":
                reviewed = []
                while len(reviewed) < args.review and (rid := server.next_id()) is not None:
                    server.replay_gold(rid, gold[rid], taxonomy)
                    reviewed.append(rid)
            else:
                reviewed = random.Random(args.seed + 1).sample(sorted(before), args.review)
                for rid in reviewed:
                    server.replay_gold(rid, gold[rid], taxonomy)
        finally:
            server.stop()
        export_dir = out / f"{arm}-export"
        tagger("review", "export", str(before_path), "--db", str(db), "--out", str(export_dir), "--taxonomy", spec)
        rest = [e for e in examples if e.product.id not in set(reviewed)]
        rest_catalog, after_path = out / f"{arm}-rest.jsonl", out / f"{arm}-after.jsonl"
        write_catalog(rest_catalog, rest)
        print(f"arm {arm}: tagging the {len(rest)} others with the pool", flush=True)
        if not after_path.exists():
            tagger("generate", str(rest_catalog), "-o", str(after_path), *common,
                   "--examples", str(export_dir / "pool.jsonl"))  # fmt: skip
        after = read_records(after_path)
        results[arm] = {
            "reviewed": reviewed,
            "rest_before": metrics(before, rest, taxonomy, spec),
            "rest_after": metrics(after, rest, taxonomy, spec),
        }
        (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{args.n} Flipkart dev products, Shopify taxonomy; {args.review} reviewed per arm; scores on the others")
    print(f"{'arm':<12} {'products':>8}  " + "  ".join(f"{m:>22}" for m in METRICS))
    for arm in ("confidence", "random"):
        for when in ("rest_before", "rest_after"):
            row = results[arm][when]
            cells = "  ".join(f"{(row[m] if row[m] is not None else float('nan')):22.3f}" for m in METRICS)
            print(f"{arm + ' ' + when.split('_')[1]:<12} {row['n']:>8}  {cells}")


if __name__ == "__main__":
    main()
