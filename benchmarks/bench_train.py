"""Fine-tuning measurements: training cost, and the student against the base model with examples and the lexical
baseline on a held-apart split of a dev set.

    python benchmarks/bench_train.py split   --dataset oa-mine --train 160 --test 40 [--data-root ../shared/data]
    python benchmarks/bench_train.py train   --dataset oa-mine [--epochs 2] [--processes 1]
    python benchmarks/bench_train.py spans   --dataset oa-mine [--epochs 15] [--seed 0] [--members 3] [--processes 1]
    python benchmarks/bench_train.py quality --dataset oa-mine
    python benchmarks/bench_train.py cost    --dataset oa-mine --n 16 [--steps 3] [--rounds 1]

`split` shuffles the dev set (seed 0) and writes its first TRAIN products as a training pool and the next TEST as the
held-apart eval set (never trained on, never an example) under benchmarks/results/train/DATASET/. `train` trains the
student on the pool with `tagger train` (its wall time and the child's peak RSS are recorded); `spans` trains the
span student (`tagger train-spans`) on the same pool, into DATASET/spans (`--name`). `quality` runs
`tagger eval` on the held-apart set three ways on the same products: the student with no examples, the base model
with 3 examples retrieved from the training pool (both `--attributes model`, the call the student learned), and the
lexical baseline that every eval runs beside. `cost` times one process (one thread, then two) against two
data-parallel processes (one thread each) on the same steps, interleaved. Every figure is written to
benchmarks/results/train/DATASET/*.json. `bench_student.py` compares the student with the other arms interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "train"


def _folder(dataset: str) -> Path:
    path = RESULTS / dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tagger(*args: str) -> tuple[float, int, str]:
    """Run tagger in a child process: wall seconds, the child's peak RSS (MiB), its stderr's tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "tagger", *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (KiB on Linux)
    if run.returncode not in (0, 3, 4):
        raise SystemExit(f"tagger {' '.join(args)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return seconds, max(peak, before) // 1024, run.stderr[-2000:]


def split(args: argparse.Namespace) -> None:
    source = Path(args.data_root) / args.dataset / "dev.jsonl"
    rows = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(0).shuffle(rows)
    folder = _folder(args.dataset)
    (folder / "pool.jsonl").write_text("\n".join(rows[: args.train]) + "\n", encoding="utf-8")
    (folder / "test.jsonl").write_text("\n".join(rows[args.train : args.train + args.test]) + "\n", encoding="utf-8")
    _examples_pool(args.dataset)
    print(f"{args.train} training products, {args.test} held apart -> {folder}")


def _examples_pool(dataset: str) -> Path:
    """The training pool in the example pool's shape (category by id, attributes by handle) for the base model's
    few-shot arm: the same products the student trained on, read by the same checked reader."""
    from tagger.taxonomy import load_taxonomy
    from tagger.train.pool import read_pool

    folder = _folder(dataset)
    taxonomy = load_taxonomy(str(ROOT / "evals" / "taxonomies" / f"{dataset}.yaml"))
    pool = read_pool(folder / "pool.jsonl", taxonomy)
    path = folder / "examples.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for item in pool.items:
            row = {"id": item.product.id, "title": item.product.title, "description": item.product.description}
            handle.write(json.dumps({**row, "category": item.category.id, "attributes": item.attributes}) + "\n")
    return path


def train(args: argparse.Namespace) -> None:
    folder = _folder(args.dataset)
    name = args.name or f"p{args.processes}"
    out = folder / f"student-{name}"
    taxonomy = str(ROOT / "evals" / "taxonomies" / f"{args.dataset}.yaml")
    pool = folder / "pool.jsonl"
    if args.n is not None:  # the first N of the training pool (a shorter run on a busy machine)
        rows = pool.read_text(encoding="utf-8").splitlines()[: args.n]
        pool = folder / f"pool-{args.n}.jsonl"
        pool.write_text("\n".join(rows) + "\n", encoding="utf-8")
    command = ["train", str(pool), "-o", str(out), "-t", taxonomy, "--epochs", str(args.epochs),
               "--validation", str(args.validation), "--checkpoint-every", "2",
               *(["--max-steps", str(args.stop_at)] if args.stop_at else ["--fresh"]),
               *(["--lr", str(args.lr)] if args.lr else []),
               *(["--eval-every", str(args.eval_every)] if args.eval_every else []),
               "--batch-size", "8", "--processes", str(args.processes), "--gguf-type", args.gguf_type,
               "--max-length", "512", *(["--base", args.base] if args.base else []), "-q"]  # fmt: skip
    seconds, rss, _ = _tagger(*command)  # with --stop-at: the export's only (the training's is in training.json)
    facts = json.loads((out / "training.json").read_text())
    figures = {
        "products_trained": facts["data"]["train"],
        "validation": facts["data"]["validation"],
        "skipped": len(facts["data"]["skipped"]),
        "answer_tokens": facts["data"]["answer_tokens"],
        "steps": facts["run"]["steps"],
        "training_seconds": facts["run"]["seconds"],
        "wall_seconds": round(seconds, 1),
        "peak_rss_mib": rss,
        "best_validation_loss": facts["run"]["best_loss"],
        "threads": facts["run"]["threads"],
        "processes": args.processes,
        "base": facts["base"]["gguf"],
    }
    (folder / f"train-{name}.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def spans(args: argparse.Namespace) -> None:
    """The span student (`tagger train-spans`) on the same training pool: wall time and the child's peak RSS."""
    folder = _folder(args.dataset)
    taxonomy = str(ROOT / "evals" / "taxonomies" / f"{args.dataset}.yaml")
    out = folder / args.name
    command = ["train-spans", str(folder / "pool.jsonl"), "-o", str(out), "-t", taxonomy, "--epochs", str(args.epochs),
               "--seed", str(args.seed), "--members", str(args.members), "--processes", str(args.processes),
               "--patience", str(args.patience), "-q"]  # fmt: skip
    seconds, rss, _ = _tagger(*command)
    facts = json.loads((out / "training.json").read_text())
    counts = ("train", "validation", "skipped", "values_marked", "values_unmarked")
    figures = {key: facts[key] for key in (*counts, "calibration_values", "calibration_precision")}
    # Per member: its seed, its best epoch, the epochs it ran.
    figures["members"] = [(m["seed"], m["best_epoch"], len(m["history"])) for m in facts["members"]]
    figures |= {"training_seconds": facts["seconds"], "wall_seconds": round(seconds, 1), "peak_rss_mib": rss}
    figures["processes"] = args.processes
    (folder / f"{args.name}.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def _eval_config(dataset: str, name: str, model: str | None, examples: Path | None) -> Path:
    folder = _folder(dataset)
    base = (ROOT / "evals" / f"{dataset}.yaml").read_text()
    import yaml

    config: dict[str, Any] = yaml.safe_load(base)
    config["name"] = f"{dataset}-{name}"
    config["dataset"]["path"] = str(folder / "test.jsonl")
    config["taxonomy"] = str(ROOT / "evals" / "taxonomies" / f"{dataset}.yaml")
    config["sample"] = {"size": None, "seed": 0}
    config["pipeline"] = {"attributes": "model"}
    if examples is not None:
        config["pipeline"]["examples"] = {"k": 3, "pool": str(examples)}
    if model is not None:
        config["backend"] = {"name": "llamacpp", "model": model}
    path = folder / f"eval-{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def quality(args: argparse.Namespace) -> None:
    folder = _folder(args.dataset)
    student = folder / "student-p1"
    arms = {
        "student": _eval_config(args.dataset, "student", str(student), None),
        "base-3-examples": _eval_config(args.dataset, "base-3-examples", None, _examples_pool(args.dataset)),
    }
    target = folder / "quality.json"
    figures: dict[str, Any] = json.loads(target.read_text()) if target.is_file() else {}
    for name, config in arms.items():
        if args.arm and name != args.arm:
            continue
        out = folder / f"eval-{name}"
        seconds, _, _ = _tagger("eval", str(config), "--out", str(out), "--data-root", args.data_root)
        result = json.loads((out / "results.json").read_text())
        figures[name] = {"runs": result.get("runs", result), "wall_seconds": round(seconds, 1)}
        target.write_text(json.dumps(figures, indent=2))  # each arm as it ends: arms may run apart
    print(json.dumps(figures, indent=2)[:6000])


# The layouts `cost` compares: (name, processes, threads in all; each process gets threads / processes).
LAYOUTS = [("1-process-1-thread", 1, 1), ("1-process-2-threads", 1, 2), ("2-processes-1-thread-each", 2, 2)]


def _tree_peak(command: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Run a child; its exit status and the peak of the summed RSS of it and its descendants (MiB), sampled every
    0.2 s: two data-parallel workers hold two models, which one process's own peak would not show."""
    import tempfile

    import psutil

    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        parent = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            total = 0
            for process in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # ended between the listing and the reading
                    total += process.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.2)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{errors.read()[-3000:]}")
    return child.returncode, peak // (1 << 20)


def cost(args: argparse.Namespace) -> None:
    """The same steps (the same global batch) with one process on one thread, one process on two threads, and two
    data-parallel processes on one thread each (gloo), interleaved round by round. Seconds per step are the training
    loop's own (the checkpoint's state: no model loading); peak RSS is the whole process tree's."""
    folder = _folder(args.dataset)
    rows = (folder / "pool.jsonl").read_text().splitlines()[: args.n]
    pool = folder / f"cost-pool-{args.n}.jsonl"
    pool.write_text("\n".join(rows) + "\n")
    taxonomy = str(ROOT / "evals" / "taxonomies" / f"{args.dataset}.yaml")
    timings: dict[str, list[float]] = {name: [] for name, _, _ in LAYOUTS}
    peaks: dict[str, list[int]] = {name: [] for name, _, _ in LAYOUTS}
    for round_ in range(args.rounds):
        for name, processes, threads in LAYOUTS:
            out = folder / f"cost-{name}-{round_}"
            command = [sys.executable, "-m", "tagger", "train", str(pool), "-o", str(out), "-t", taxonomy,
                       "--max-steps", str(args.steps), "--batch-size", "8", "--validation", "0", "--max-length", "512",
                       "--processes", str(processes), "--no-export", "--fresh", "-q"]  # fmt: skip
            _, peak = _tree_peak(command, {**os.environ, "TAGGER_THREADS": str(threads)})
            state = json.loads((out / "checkpoint" / "state.json").read_text())
            timings[name].append(state["seconds"] / state["step"])
            peaks[name].append(peak)
            print(f"round {round_}: {name}: {timings[name][-1]:.1f} s/step, peak {peak} MiB", file=sys.stderr)
    mean = {name: sum(v) / len(v) for name, v in timings.items()}
    figures = {
        "products": args.n,
        "steps": args.steps,
        "batch_size": 8,
        "rounds": args.rounds,
        "load_average_after": os.getloadavg(),
        "seconds_per_step": {k: [round(v, 2) for v in vs] for k, vs in timings.items()},
        "peak_rss_mib": peaks,
        "relative_to_1_process_1_thread": {k: round(v / mean[LAYOUTS[0][0]], 3) for k, v in mean.items()},
    }
    (folder / "cost.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("split", "train", "spans", "quality", "cost"):
        sub = commands.add_parser(name)
        sub.add_argument("--dataset", default="oa-mine", choices=["oa-mine", "wdc-pave"])
        default_root = os.environ.get("TAGGER_DATA_ROOT") or str(ROOT.parent / "shared" / "data")
        sub.add_argument("--data-root", default=default_root)
    commands.choices["split"].add_argument("--train", type=int, default=160)
    commands.choices["split"].add_argument("--test", type=int, default=40)
    commands.choices["train"].add_argument("--epochs", type=int, default=2)
    commands.choices["train"].add_argument("--processes", type=int, default=1)
    commands.choices["train"].add_argument("--base", default=None, help="a GGUF or gemma3-270m [default: embedded]")
    commands.choices["train"].add_argument("--name", default=None, help="student-NAME/ [default: p<processes>]")
    commands.choices["train"].add_argument("--gguf-type", default="q8_0")
    commands.choices["train"].add_argument("--n", type=int, default=None)
    commands.choices["train"].add_argument("--lr", type=float, default=None)
    commands.choices["train"].add_argument("--validation", type=float, default=0.1)
    commands.choices["train"].add_argument("--eval-every", type=int, default=None)
    stop = "export the killed run of the same settings where its checkpoint is (its step), without training further"
    commands.choices["train"].add_argument("--stop-at", type=int, default=None, help=stop)
    commands.choices["spans"].add_argument("--epochs", type=int, default=15)
    commands.choices["spans"].add_argument("--seed", type=int, default=0)
    commands.choices["spans"].add_argument("--members", type=int, default=3)
    commands.choices["spans"].add_argument("--patience", type=int, default=3)
    commands.choices["spans"].add_argument("--processes", type=int, default=1)
    commands.choices["spans"].add_argument("--name", default="spans", help="the student's folder under DATASET/")
    commands.choices["quality"].add_argument("--arm", choices=["student", "base-3-examples"], default=None)
    commands.choices["cost"].add_argument("--n", type=int, default=16)
    commands.choices["cost"].add_argument("--steps", type=int, default=3)
    commands.choices["cost"].add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    {"split": split, "train": train, "spans": spans, "quality": quality, "cost": cost}[args.command](args)


if __name__ == "__main__":
    main()
