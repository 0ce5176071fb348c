"""The student where it is used: every arm on the same held-apart products, interleaved, scored by the eval protocol.

    python benchmarks/bench_student.py distill --dataset oa-mine --catalog 120 [--epochs 2]
    python benchmarks/bench_student.py compare --dataset oa-mine [--arms student-model,base-model-3-examples,...]
    python benchmarks/bench_student.py teacher --dataset oa-mine
    python benchmarks/bench_student.py agree   --dataset oa-mine [--teacher base-evidence --student distilled]

Run after `bench_train.py split` and `bench_train.py train` (the split's pool.jsonl and test.jsonl, the student in
student-p1/). `distill` takes the CATALOG products that follow the held-apart ones in the split's shuffled order
(never trained on by the gold student, never tested on), strips their labels, and runs `tagger distill` on them with
the embedded pipeline and the split's pool as few-shot examples as the stand-in teacher (its wall time and peak RSS
are recorded); the distilled student is written to distilled/.

`compare` builds every arm once, then tags the held-apart products in chunks, each chunk by every arm in a rotating
order, so that the arms share the machine's state (a shared machine: only the ratios between arms mean anything).
The category is the gold one (the eval protocol of attribute extraction); records are scored by the eval's own code
(`tagger.evals.runner.run_pipeline` over the stored records). Arms:

- `student-model`: the student, `--attributes model` (the call it was trained on), no examples.
- `base-model-3-examples`: the embedded model, `--attributes model`, 3 examples retrieved from the pool.
- `lexical`: string matching with the pool (the bar every eval shows).
- `base-evidence`, `student-evidence`: the default pipeline (evidence from the text and the pool; the model only
  chooses among rival candidates), with the embedded model or the student as the model.
- `base-evidence-extract`, `student-evidence-extract`: the same, and the model copies a span for each attribute no
  candidate was found for (`--extract`).
- `ARM@MODEL`: the arm with another model: a student's folder under the dataset's results for the student arms
  (`student-model@student-gemma`), a packaged model's name for the base arms (`base-model-3-examples@gemma3-270m`),
  another span student's folder for `spans-evidence` (`spans-evidence@spans-all`).
- `spans-evidence`: the default pipeline with the span student (`bench_train.py spans`) deciding extractive
  attributes where it marks a value.
- `distilled`: the student `distill` trained on the teacher's labels, `--attributes model`. The teacher on these
  products is `base-evidence` (the default pipeline with the pool as examples, the category given); `agree` compares
  the two arms' stored records (records-ARM.jsonl).

Figures go to benchmarks/results/train/DATASET/compare.json (per arm: attribute P/R/F1, macro F1, products/s, prompt
tokens) and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "train"
CHUNK = 5
ALL_ARMS = [
    "student-model",
    "base-model-3-examples",
    "lexical",
    "base-evidence",
    "student-evidence",
    "base-evidence-extract",
    "student-evidence-extract",
    "distilled",
    "spans-evidence",
]


def _folder(dataset: str) -> Path:
    return RESULTS / dataset


def _taxonomy_path(dataset: str) -> str:
    return str(ROOT / "evals" / "taxonomies" / f"{dataset}.yaml")


# --- distill ---------------------------------------------------------------------------------------------------------


def distill(args: argparse.Namespace) -> None:
    folder = _folder(args.dataset)
    source = Path(args.data_root) / args.dataset / "dev.jsonl"
    rows = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(0).shuffle(rows)  # bench_train.py split's order: pool, then test, then these
    used = len((folder / "pool.jsonl").read_text().splitlines()) + len((folder / "test.jsonl").read_text().splitlines())
    catalog = folder / "distill-catalog.jsonl"
    with catalog.open("w", encoding="utf-8") as handle:
        for line in rows[used : used + args.catalog]:
            row = json.loads(line)  # the catalog as a shop has it: no labels
            handle.write(json.dumps({"id": row["id"], "title": row["title"], "description": row["description"]}) + "\n")
    out = folder / "distilled"
    command = ["distill", str(catalog), "-o", str(out), "-t", _taxonomy_path(args.dataset),
               "--teacher-examples", str(folder / "examples.jsonl"), "--epochs", str(args.epochs),
               "--lr", str(args.lr), "--batch-size", "8", "--max-length", "512", "--gguf-type", "q8_0",
               "--checkpoint-every", "2", "--fresh", "-q"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "tagger", *command], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"tagger distill failed ({run.returncode}):\n{run.stderr[-3000:]}")
    facts = json.loads((out / "training.json").read_text())
    figures = {
        "catalog": args.catalog,
        "teacher_line": [line for line in run.stderr.splitlines() if line.startswith("teacher:")],
        "products_trained": facts["data"]["train"],
        "validation": facts["data"]["validation"],
        "skipped": len(facts["data"]["skipped"]),
        "steps": facts["run"]["steps"],
        "training_seconds": facts["run"]["seconds"],
        "wall_seconds": round(seconds, 1),
        "peak_rss_mib": max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) // 1024,
        "best_validation_loss": facts["run"]["best_loss"],
    }
    (folder / "distill.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


# --- compare ---------------------------------------------------------------------------------------------------------


class _Stored:
    """The records an arm produced, replayed for scoring by the eval's own code."""

    def __init__(self, tagger: Any, records: dict[str, Any]) -> None:
        self.provenance = tagger.provenance
        self.cleaner = getattr(tagger, "cleaner", None)
        self.records = records

    def tag_batch(self, products: Sequence[Any], categories: Sequence[Any] | None = None) -> list[Any]:
        return [self.records[p.id] for p in products]

    def close(self) -> None:
        pass  # the arm's own tagger is closed by compare


def _arm(arm: str, dataset: str, pool: Any, taxonomy: Any) -> Any:
    """An arm by its name; NAME@MODEL runs it with another model: a student's folder under the dataset's results
    (student-model@student-gemma) or a packaged model (base-model-3-examples@gemma3-270m)."""
    from tagger.build import BackendSpec, Narrowing, TaggerSpec, build_tagger
    from tagger.evidence import LexicalTagger

    folder = _folder(dataset)
    name, _, other = arm.partition("@")
    if name == "lexical":
        return LexicalTagger(taxonomy, pool)
    student = {"student": str(folder / "student-p1"), "distilled": str(folder / "distilled")}
    kind = "student" if name.startswith("student") else "distilled" if name == "distilled" else None
    model = student[kind] if kind else None
    spans = folder / (other or "spans") if name.startswith("spans") else None
    if other and spans is None:
        model = str(folder / other) if kind else other
    backend = BackendSpec(name="llamacpp", model=model)
    evidence = "evidence" in name
    shots = name == "base-model-3-examples"
    spec = TaggerSpec(
        taxonomy=_taxonomy_path(dataset),
        backend=backend,
        narrowing=Narrowing(shortlist=0, example_k=3),
        attributes="evidence" if evidence else "model",
        extract=name.endswith("-extract"),
        spans=spans,
    )
    # The pool feeds the evidence (its dictionary) and, for the examples arms, the prompt's few-shot examples.
    return build_tagger(spec, taxonomy=taxonomy, pool=pool if (evidence or shots) else None)


def compare(args: argparse.Namespace) -> None:
    os.environ.setdefault("TAGGER_THREADS", "1")
    from tagger.evals.config import load_config
    from tagger.evals.dataset import load_labeled
    from tagger.evals.runner import EvalOutcome, run_pipeline
    from tagger.retrieval import read_pool
    from tagger.taxonomy import load_taxonomy

    folder = _folder(args.dataset)
    config = _config(args.dataset, load_config)
    data_root = Path(args.data_root)
    taxonomy = load_taxonomy(config.taxonomy)
    labeled = load_labeled(config, taxonomy, data_root, args.limit)
    shard, shards = (int(n) for n in args.shard.split("/")) if args.shard else (0, 1)
    labeled = labeled[shard::shards]  # shards run side by side on a busy machine; `merge` scores them together
    pool = read_pool(folder / "examples.jsonl", taxonomy)
    names = args.arms.split(",") if args.arms else ALL_ARMS
    arms = {name: _arm(name, args.dataset, pool, taxonomy) for name in names}
    records: dict[str, dict[str, Any]] = {name: {} for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for number, first in enumerate(range(0, len(labeled), CHUNK)):
        chunk = labeled[first : first + CHUNK]
        categories = [taxonomy.categories[e.gold.category_id] for e in chunk if e.gold.category_id]
        order = names[number % len(names) :] + names[: number % len(names)]  # rotate: no arm always goes first
        for name in order:
            start = time.perf_counter()
            done = arms[name].tag_batch([e.product for e in chunk], categories)
            seconds[name] += time.perf_counter() - start
            records[name].update({r.id: r for r in done})
        print(f"{first + len(chunk)}/{len(labeled)} products", file=sys.stderr, flush=True)
        if shards > 1:  # each chunk kept as it ends: `merge` scores what a stopped shard had done
            _keep(folder, f".{shard}of{shards}", records, seconds)
    outcome = EvalOutcome(config, data_root, taxonomy, labeled)
    figures: dict[str, Any] = {"products": len(labeled), "chunk": CHUNK, "load_average": os.getloadavg(), "arms": {}}
    for name in names:
        run = run_pipeline(name, _Stored(arms[name], records[name]), outcome)
        kept = {k: round(v, 4) for k, v in run.metrics.items() if isinstance(v, (int, float))}
        kept["products_per_s"] = round(len(labeled) / seconds[name], 4)
        kept["seconds"] = round(seconds[name], 1)
        figures["arms"][name] = kept | {"per_attribute": _per_attribute(run.samples)}
    if shards > 1:
        return
    if args.limit is None:
        _keep(folder, "", records, seconds)  # for `agree`
    _to_cards(args.dataset, figures)
    target = folder / (args.out or "compare.json")
    target.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    for tagger in arms.values():
        close = getattr(tagger, "close", None)
        if close is not None:
            close()


def _per_attribute(samples: Sequence[Any]) -> dict[str, list[float]]:
    """Per attribute handle: precision, recall, F1 and how many gold values the products have."""
    from tagger.evals.metrics import attribute_counts, precision_recall

    figures: dict[str, list[float]] = {}
    for handle, counts in sorted(attribute_counts(samples).items()):
        gold = counts["VN"] + counts["VC"] + counts["VW"]
        figures[handle] = [round(x, 4) for x in precision_recall(counts)] + [gold]
    return figures


MODES = {
    "model": "`--attributes model`, no examples",
    "evidence": "default pipeline (evidence from the text and the pool; the model chooses among rivals)",
    "evidence-extract": "default pipeline with `--extract`",
}


def _keep(folder: Path, tail: str, records: dict[str, dict[str, Any]], seconds: dict[str, float]) -> None:
    for name, kept in records.items():
        with (folder / f"records-{name}{tail}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(r.model_dump_json() + "\n" for r in kept.values())
    (folder / f"seconds{tail}.json").write_text(json.dumps(seconds))


def merge(args: argparse.Namespace) -> None:
    """The shards of a `compare --shard I/N` run scored together, as one run on every held-apart product; an arm's
    products/s is its products over its seconds summed over the shards (which ran side by side)."""
    from tagger.clean import Cleaner
    from tagger.evals.config import load_config
    from tagger.evals.dataset import load_labeled
    from tagger.evals.runner import EvalOutcome, run_pipeline
    from tagger.records import ErrorRecord, TagRecord
    from tagger.taxonomy import load_taxonomy

    folder = _folder(args.dataset)
    config = _config(args.dataset, load_config)
    data_root = Path(args.data_root)
    taxonomy = load_taxonomy(config.taxonomy)
    labeled = load_labeled(config, taxonomy, data_root)
    names = args.arms.split(",")
    seconds = dict.fromkeys(names, 0.0)
    for part in folder.glob(f"seconds.*of{args.shards}.json"):
        for name, value in json.loads(part.read_text()).items():
            seconds[name] = seconds.get(name, 0.0) + value
    every: dict[str, dict[str, Any]] = {}
    for name in names:
        records: dict[str, Any] = {}
        for part in folder.glob(f"records-{name}.*of{args.shards}.jsonl"):
            for line in part.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                records[row["id"]] = (TagRecord if "category" in row else ErrorRecord).model_validate(row)
        every[name] = records
    # Shards keep whole chunks (every arm's), so a stopped shard leaves products every arm tagged: those are scored.
    done = set.intersection(*(set(r) for r in every.values()))
    outcome = EvalOutcome(config, data_root, taxonomy, [e for e in labeled if e.product.id in done])
    figures: dict[str, Any] = {"products": len(outcome.labeled), "shards": args.shards, "arms": {}}
    for name in names:
        records = {pid: r for pid, r in every[name].items() if pid in done}
        tagged = [r for r in records.values() if isinstance(r, TagRecord)]

        class Replayed:
            provenance = tagged[0].provenance
            cleaner = Cleaner()  # every arm cleans with the default settings

        run = run_pipeline(name, _Stored(Replayed(), records), outcome)
        kept: dict[str, float | None] = {k: round(v, 4) for k, v in run.metrics.items() if isinstance(v, (int, float))}
        kept["products_per_s"] = round(len(outcome.labeled) / seconds[name], 4) if seconds[name] else None
        kept["seconds"] = round(seconds[name], 1)
        figures["arms"][name] = kept | {"per_attribute": _per_attribute(run.samples)}
        with (folder / f"records-{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(r.model_dump_json() + "\n" for r in records.values())
    _to_cards(args.dataset, figures)
    (folder / (args.out or "compare.json")).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def _to_cards(dataset: str, figures: dict[str, Any]) -> None:
    """Each student arm's figures, beside the baselines of the same run, into its student's model card."""
    from tagger.train.card import add_evals

    arms = figures["arms"]

    def f1(name: str) -> str:
        return f"{arms[name]['attribute_f1']:.3f}" if name in arms else "not in this run"

    for name, found in arms.items():
        student, _, mode = name.partition("-")
        if student not in ("student", "distilled"):
            continue
        folder = _folder(dataset) / ("student-p1" if student == "student" else "distilled")
        line = (
            f"{dataset}, {figures['products']} held-apart products, category given, {MODES.get(mode or 'model')}:"
            f" attribute P / R / F1 {found['attribute_precision']:.3f} / {found['attribute_recall']:.3f} /"
            f" {found['attribute_f1']:.3f}, {found['products_per_s']:.3f} products/s; same run: lexical baseline F1"
            f" {f1('lexical')}, base model with 3 examples F1 {f1('base-model-3-examples')}, base model in the same"
            f" mode F1 {f1('base-' + mode if mode.startswith('evidence') else 'base-model-3-examples')}"
            " (benchmarks/bench_student.py; a shared 2-core"
            " machine)"
        )
        add_evals(folder, [line])


def agree(args: argparse.Namespace) -> None:
    """The distilled student's values against its teacher's on the held-apart products, from `compare`'s records
    (the teacher's arm is the default pipeline with the pool: `base-evidence`, as `tagger distill` ran it)."""
    folder = _folder(args.dataset)

    def read(name: str) -> dict[str, Any]:
        lines = (folder / f"records-{name}.jsonl").read_text(encoding="utf-8").splitlines()
        return {row["id"]: row for row in map(json.loads, lines)}

    figures = agreement(read(args.teacher), read(args.student))
    (folder / "agreement.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def agreement(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    """How many of the teacher's (attribute, value) pairs the student wrote, and how many of its own the teacher
    wrote, over the same products (values compared case-insensitively, as the eval compares them with gold)."""

    def pairs(record: dict[str, Any] | None) -> set[tuple[str, str]]:
        values = (record or {}).get("attributes") or {}
        return {(k, v.strip().lower()) for k, vs in values.items() for v in vs}

    both = told = wrote = 0
    for pid, record in teacher.items():
        mine, theirs = pairs(student.get(pid)), pairs(record)
        both += len(mine & theirs)
        told += len(theirs)
        wrote += len(mine)
    recall, precision = both / max(1, told), both / max(1, wrote)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {
        "teacher_values": told,
        "student_values": wrote,
        "shared": both,
        "student_recall_of_teacher": round(recall, 4),
        "student_precision_to_teacher": round(precision, 4),
        "agreement_f1": round(f1, 4),
    }


def teacher(args: argparse.Namespace) -> None:
    """The teacher's labels on the distillation catalog against the catalog's gold (the dev set's labels, which the
    teacher never saw), scored by the eval's code: how good the labels the student learns from are."""
    from tagger.evals.config import load_config
    from tagger.evals.dataset import load_labeled
    from tagger.evals.runner import EvalOutcome, run_pipeline
    from tagger.records import ErrorRecord, TagRecord
    from tagger.taxonomy import load_taxonomy

    folder = _folder(args.dataset)
    wanted = {json.loads(line)["id"] for line in (folder / "distill-catalog.jsonl").read_text().splitlines()}
    source = Path(args.data_root) / args.dataset / "dev.jsonl"
    gold = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = folder / "distill-gold.jsonl"
    rows.write_text("".join(line + "\n" for line in gold if json.loads(line)["id"] in wanted), encoding="utf-8")
    config = _config(args.dataset, load_config, rows, given=False)
    taxonomy = load_taxonomy(config.taxonomy)
    labeled = load_labeled(config, taxonomy, Path(args.data_root))
    records: dict[str, Any] = {}
    for line in (folder / "distilled" / "teacher.jsonl").read_text().splitlines():
        row = json.loads(line)
        records[row["id"]] = (TagRecord if "category" in row else ErrorRecord).model_validate(row)

    class Teacher:
        provenance = next(r for r in records.values() if isinstance(r, TagRecord)).provenance
        cleaner = None

    run = run_pipeline(
        "teacher", _Stored(Teacher(), records), EvalOutcome(config, Path(args.data_root), taxonomy, labeled)
    )
    keep = ("attribute_precision", "attribute_recall", "attribute_f1", "attribute_macro_f1", "category_exact")
    figures = {"products": len(labeled), **{k: round(v, 4) for k, v in run.metrics.items() if k in keep and v}}
    (folder / "teacher.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def _config(dataset: str, load_config: Any, rows: Path | None = None, given: bool = True) -> Any:
    """The dataset's eval config, pointed at the held-apart products (every one, the category given) or `rows`."""
    import yaml

    config: dict[str, Any] = yaml.safe_load((ROOT / "evals" / f"{dataset}.yaml").read_text())
    config["name"] = f"{dataset}-student-compare"
    config["dataset"]["path"] = str(rows or _folder(dataset) / "test.jsonl")
    config["given_category"] = given
    if not given:
        config["metrics"] = ["category_exact", *config["metrics"]]
    config["taxonomy"] = _taxonomy_path(dataset)
    config["sample"] = {"size": None, "seed": 0}
    path = _folder(dataset) / ("eval-compare.yaml" if rows is None else "eval-teacher.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return load_config(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    default_root = os.environ.get("TAGGER_DATA_ROOT") or str(ROOT.parent / "shared" / "data")
    for name in ("distill", "compare", "merge", "agree", "teacher"):
        sub = commands.add_parser(name)
        sub.add_argument("--dataset", default="oa-mine", choices=["oa-mine", "wdc-pave"])
        sub.add_argument("--data-root", default=default_root)
    commands.choices["distill"].add_argument("--catalog", type=int, default=120)
    commands.choices["distill"].add_argument("--epochs", type=int, default=2)
    commands.choices["distill"].add_argument("--lr", type=float, default=5e-4)
    commands.choices["compare"].add_argument("--arms", default=None, help="comma-separated, of: " + ",".join(ALL_ARMS))
    commands.choices["compare"].add_argument("--limit", type=int, default=None)
    commands.choices["compare"].add_argument("--out", default=None)
    commands.choices["compare"].add_argument("--shard", default=None, help="I/N: every Nth product from the Ith")
    commands.choices["merge"].add_argument("--arms", required=True)
    commands.choices["merge"].add_argument("--shards", type=int, required=True)
    commands.choices["merge"].add_argument("--out", default=None)
    commands.choices["agree"].add_argument("--teacher", default="base-evidence")
    commands.choices["agree"].add_argument("--student", default="distilled")
    args = parser.parse_args()
    {"distill": distill, "compare": compare, "merge": merge, "agree": agree, "teacher": teacher}[args.command](args)


if __name__ == "__main__":
    main()
