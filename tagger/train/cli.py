"""`tagger train POOL -o MODEL_DIR` and `tagger distill CATALOG --teacher-backend B -o MODEL_DIR`; mounted in
tagger.cli. torch, transformers and peft (the `train` extra) are imported when a command runs."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tagger.build import BackendSpec, Narrowing, TaggerSpec
from tagger.errors import TaggerError
from tagger.train.loop import Ranks, Settings, State

if TYPE_CHECKING:
    from tagger.train.spans import SpanSettings

err = Console(stderr=True)

OutOpt = Annotated[Path, typer.Option("--output", "-o", help="The student's folder (MODEL_DIR)")]
TaxonomyOpt = Annotated[Optional[str], typer.Option("--taxonomy", "-t", help="As for generate [default: shopify]")]
TemplateOpt = Annotated[Optional[str], typer.Option("--template", help="As for generate [default: default]")]
BaseOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--base", help="A GGUF (llama or gemma3) or a packaged model's name to start from [default: the embedded]"
    ),
]
FullOpt = Annotated[bool, typer.Option("--full", help="Train every weight instead of LoRA adapters")]
EpochsOpt = Annotated[int, typer.Option(help="Passes over the training part")]
MaxStepsOpt = Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps")]
BatchOpt = Annotated[int, typer.Option(help="Sequences per optimizer step, over all processes")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Learning rate [default: 2e-4 LoRA, 3e-5 full]")]
RankOpt = Annotated[int, typer.Option(help="LoRA rank")]
MaxLengthOpt = Annotated[int, typer.Option(help="Pairs longer than this (tokens) are skipped and reported")]
ValidationOpt = Annotated[float, typer.Option(help="The share of the pool held out for validation")]
EvalEveryOpt = Annotated[Optional[int], typer.Option(help="Steps between validations [default: each epoch]")]
PatienceOpt = Annotated[int, typer.Option(help="Validations without improvement before stopping early")]
CheckpointOpt = Annotated[int, typer.Option(help="Steps between checkpoints (a rerun resumes from the last)")]
SeedOpt = Annotated[int, typer.Option(help="The seed of the split, the order and the adapters")]
GgufTypeOpt = Annotated[str, typer.Option("--gguf-type", help="f16 or q8_0")]
ProcessesOpt = Annotated[int, typer.Option(help="Data-parallel local processes (gloo); or start under torchrun")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Drop a checkpoint of another run in MODEL_DIR")]
NoExportOpt = Annotated[
    bool, typer.Option("--no-export", help="Train only: the weights stay in MODEL_DIR/checkpoint, no model files")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")]


def train_command(
    pool: Annotated[Path, typer.Argument(help="Labeled products (JSONL): a review export, gold, a teacher's labels")],
    output: OutOpt,
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    base: BaseOpt = None,
    full: FullOpt = False,
    epochs: EpochsOpt = 3,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchOpt = 8,
    lr: LrOpt = None,
    lora_rank: RankOpt = 16,
    max_length: MaxLengthOpt = 768,
    validation: ValidationOpt = 0.1,
    eval_every: EvalEveryOpt = None,
    patience: PatienceOpt = 2,
    checkpoint_every: CheckpointOpt = 20,
    seed: SeedOpt = 0,
    gguf_type: GgufTypeOpt = "f16",
    processes: ProcessesOpt = 1,
    fresh: FreshOpt = False,
    no_export: NoExportOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the small model on a pool's products and tags: MODEL_DIR gets model.gguf (llama.cpp), hf/ (vLLM),
    MODEL_CARD.md and training.json. Killed? Rerun the same command: it resumes from its last checkpoint."""
    if not pool.is_file():
        raise TaggerError(f"training pool not found: {pool}")
    settings = _settings(
        full=full, epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=lr, lora_rank=lora_rank,
        lora_alpha=2 * lora_rank, max_length=max_length, validation=validation, eval_every=eval_every,
        patience=patience, checkpoint_every=checkpoint_every, seed=seed,
    )  # fmt: skip
    spec = TaggerSpec(taxonomy=taxonomy, template=template)
    _check_gguf_type(gguf_type)
    job = functools.partial(_train_job, pool, output, settings, spec, base, gguf_type, fresh, quiet, not no_export)
    _launch(job, processes)


def distill_command(
    catalog: Annotated[Path, typer.Argument(help="The catalog the teacher tags (JSONL, CSV, TSV or Parquet)")],
    output: OutOpt,
    teacher_backend: Annotated[str, typer.Option("--teacher-backend", help="The teacher's backend")] = "llamacpp",
    teacher_model: Annotated[Optional[str], typer.Option("--teacher-model", help="The teacher's model")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="openai: the teacher's server")] = None,
    teacher_examples: Annotated[
        Optional[Path], typer.Option("--teacher-examples", help="A labeled pool: the teacher's few-shot examples")
    ] = None,
    teacher_attributes: Annotated[
        str, typer.Option("--teacher-attributes", help="The teacher's strategy: evidence or model")
    ] = "evidence",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N products")] = None,
    taxonomy: TaxonomyOpt = None,
    template: TemplateOpt = None,
    base: BaseOpt = None,
    full: FullOpt = False,
    epochs: EpochsOpt = 3,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchOpt = 8,
    lr: LrOpt = None,
    max_length: MaxLengthOpt = 768,
    validation: ValidationOpt = 0.1,
    checkpoint_every: CheckpointOpt = 20,
    seed: SeedOpt = 0,
    gguf_type: GgufTypeOpt = "f16",
    fresh: FreshOpt = False,
    no_export: NoExportOpt = False,
    spans: Annotated[
        bool,
        typer.Option("--spans", help="Train a span student (tagger train-spans' defaults) instead of the chat model"),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """A teacher tags the catalog with its best settings; its conformant, evidenced values train the student.
    The teacher's records and the pool made of them stay in MODEL_DIR (teacher.jsonl, teacher-pool.jsonl)."""
    from tagger.train.distill import teacher_labels

    if teacher_attributes not in ("evidence", "model"):
        raise TaggerError(f"--teacher-attributes must be evidence or model, not {teacher_attributes!r}")
    options: dict[str, Any] = {"base_url": base_url} if base_url else {}
    narrowing = Narrowing(examples=teacher_examples) if teacher_examples else Narrowing()
    teacher = TaggerSpec(
        taxonomy=taxonomy,
        template=template,
        backend=BackendSpec(name=teacher_backend, model=teacher_model, options=options),
        narrowing=narrowing,
        attributes="model" if teacher_attributes == "model" else "evidence",
    )
    _check_gguf_type(gguf_type)
    labels = teacher_labels(catalog, teacher, output, limit)
    err.print(
        f"teacher: {labels.products} products labeled, {labels.kept} evidenced values kept, {labels.dropped} dropped"
        f" ({escape(str(labels.pool))})"
    )
    if spans:  # train-spans' own defaults: the chat student's epochs, steps and learning rate do not apply
        from tagger.train.spans import SpanSettings

        _train_spans_job(labels.pool, output, taxonomy, SpanSettings(validation=validation, seed=seed), quiet, Ranks())
        return
    settings = _settings(
        full=full, epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=lr,
        max_length=max_length, validation=validation, checkpoint_every=checkpoint_every, seed=seed,
    )  # fmt: skip
    student = TaggerSpec(taxonomy=taxonomy, template=template)
    _train_job(labels.pool, output, settings, student, base, gguf_type, fresh, quiet, not no_export, Ranks())


def train_spans_command(
    pool: Annotated[Path, typer.Argument(help="Labeled products (JSONL): a review export, gold, a teacher's labels")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The span student's folder")],
    taxonomy: TaxonomyOpt = None,
    epochs: Annotated[int, typer.Option(help="At most this many passes over the training part")] = 15,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate")] = 3e-4,
    batch_size: Annotated[int, typer.Option(help="Products per optimizer step")] = 16,
    validation: ValidationOpt = 0.1,
    patience: Annotated[int, typer.Option(help="Epochs without a better held-out F1 before stopping")] = 3,
    seed: SeedOpt = 0,
    threshold: Annotated[float, typer.Option(help="Runs of words less probable than this are not written")] = 0.5,
    members: Annotated[int, typer.Option(help="Encoders trained with seeds SEED, SEED+1, ...; tagging averages")] = 3,
    min_labels: Annotated[
        int, typer.Option(help="The student decides a category's attribute the pool has this many values of")
    ] = 10,
    processes: ProcessesOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune MiniLM to mark each extractive attribute's value in a product's text (the span student): use it
    with `tagger generate --spans DIR`. Bad rows are reported and skipped."""
    from tagger.train.spans import SpanSettings

    if not pool.is_file():
        raise TaggerError(f"training pool not found: {pool}")
    if (
        not 0 <= validation < 1
        or min(epochs, batch_size, members, min_labels, processes) < 1
        or not 0 <= threshold <= 1
    ):
        wanted = "--epochs, --batch-size, --members, --min-labels, --processes >= 1"
        raise TaggerError(f"--validation in [0, 1); {wanted}; --threshold in [0, 1]")
    settings = SpanSettings(
        epochs, lr, batch_size, validation, patience, seed, threshold=threshold, members=members, min_labels=min_labels
    )
    _launch(functools.partial(_train_spans_job, pool, output, taxonomy, settings, quiet), processes)


def _train_spans_job(
    pool: Path, output: Path, taxonomy: str | None, settings: SpanSettings, quiet: bool, ranks: Ranks
) -> None:
    from tagger.retrieval.embeddings import model_folder
    from tagger.taxonomy import load_taxonomy
    from tagger.train.pool import read_pool
    from tagger.train.spans import train_spans

    chosen = load_taxonomy(taxonomy)
    read = read_pool(pool, chosen)
    for problem in read.problems if ranks.main else []:
        err.print(f"[yellow]skipped[/yellow] {escape(str(problem))}", highlight=False)

    def shown(epoch: int, total: int, figures: dict[str, float]) -> None:
        if not quiet:
            held = ", ".join(f"{k.removeprefix('validation_')} {v:.4f}" for k, v in figures.items() if "valid" in k)
            line = f"seed {figures['seed']:.0f}, epoch {epoch}/{total}: loss {figures['loss']:.4f}"
            err.print(line + (f"; held out: {held}" if held else ""))

    report = train_spans(read.items, chosen, output, settings, model_folder(), read.sha256, shown, ranks)
    if not ranks.main:
        return
    facts = {"model_dir": str(output), "skipped": len(read.problems), "processes": ranks.world, **asdict(report)}
    (output / "training.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
    members = [{k: v for k, v in m.items() if k != "history"} for m in facts["members"]]
    typer.echo(json.dumps(facts | {"members": members}))


def _settings(**values: Any) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TaggerError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from exc


def _check_gguf_type(kind: str) -> None:
    if kind not in ("f16", "q8_0"):
        raise TaggerError(f"--gguf-type must be f16 or q8_0, not {kind!r}")


def _launch(job: functools.partial[None], processes: int) -> None:
    from tagger.train.parallel import spawn, torchrun_ranks

    ranks = torchrun_ranks()
    if ranks is not None:
        job(ranks)
    elif processes > 1:
        spawn(processes, job)
    else:
        job(Ranks())


def _train_job(
    pool: Path,
    output: Path,
    settings: Settings,
    spec: TaggerSpec,
    base: Path | None,
    gguf_type: str,
    fresh: bool,
    quiet: bool,
    export: bool,
    ranks: Ranks,
) -> None:
    from tagger.train.run import train_student

    with _Bar(quiet or not ranks.main) as bar:
        trained = train_student(pool, output, settings, spec, base, ranks, gguf_type, bar.update, fresh, export)
    if not ranks.main:
        return
    for problem in trained.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(str(problem))}", highlight=False)
    state = trained.state
    resumed = f", resumed at step {trained.resumed_from}" if trained.resumed_from is not None else ""
    best = f", best validation loss {state.best_loss:.4f} (step {state.best_step})" if state.best_loss else ""
    err.print(
        f"trained on {trained.train} products ({trained.validation} held out, {len(trained.skipped)} skipped):"
        f" {state.step} steps{resumed}{best}{' (stopped early)' if state.stopped_early else ''}"
    )
    typer.echo(json.dumps({"model_dir": str(output), "files": [str(f) for f in trained.files]}))


class _Bar:
    """A progress bar with the last loss and the ETA (none when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.progress: Progress | None = None
        if not quiet:
            self.progress = Progress(
                TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                TextColumn("val {task.fields[val]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=err,
            )  # fmt: skip
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, state: State, total: int, loss: float | None) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task("train", total=total, completed=0, loss="-", val="-")
        val = next((h["validation_loss"] for h in reversed(state.history) if "validation_loss" in h), None)
        self.progress.update(
            self.task,
            completed=state.step,
            loss=f"{loss:.4f}" if loss is not None else "-",
            val=f"{val:.4f}" if val is not None else "-",
        )
