"""`train_student`: pool -> checked rows -> rendered pairs -> tokens -> training -> HF folder + GGUF + model card."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger import __version__
from tagger._threads import threads
from tagger.build import TaggerSpec
from tagger.errors import TaggerError
from tagger.taxonomy import load_taxonomy
from tagger.train.card import write_card
from tagger.train.loop import BEST, CHECKPOINT, Ranks, Settings, State, Trainer, split
from tagger.train.pairs import render_pairs, render_tagger
from tagger.train.pool import Problem, read_pool
from tagger.train.tokens import ChatTokenizer, Encoded

RUN_JSON = "run.json"  # what a checkpoint belongs to: a resume with other data or settings is refused


@dataclass
class Trained:
    out: Path
    train: int
    validation: int
    skipped: list[Problem]
    state: State
    resumed_from: int | None
    files: list[Path] = field(default_factory=list)


def base_models(gguf: Path | None) -> tuple[Path, Path]:
    """The GGUF the student's tokenizer, metadata and export come from, and its HF folder (converted once)."""
    from tagger.backends.convert import convert_gguf, embedded_hf_model
    from tagger.backends.llamacpp import embedded_model_path, model_file

    if gguf is None:
        return embedded_model_path(), embedded_hf_model()
    from tagger._paths import cache_dir

    path = model_file(gguf)  # a file, or a packaged model's name (gemma3-270m)
    return path, convert_gguf(path, cache_dir("models") / (path.stem + "-hf"))


def encode(
    pool_path: Path, spec: TaggerSpec, gguf: Path, settings: Settings
) -> tuple[list[Encoded], list[Problem], str]:
    """The pool's trainable rows as token ids, the rows skipped (with why), the pool's sha256."""
    taxonomy = load_taxonomy(spec.taxonomy)
    pool = read_pool(pool_path, taxonomy)
    pairs, problems = render_pairs(render_tagger(spec, taxonomy, str(gguf)), pool.items)
    rows = {item.product.id: item.row for item in pool.items}
    tokenizer = ChatTokenizer(gguf)
    encoded = []
    for pair in pairs:
        example = tokenizer.encode(pair)
        if len(example.ids) > settings.max_length:
            why = f"{len(example.ids)} tokens, over --max-length {settings.max_length} (never cut: it would be a call"
            problems.append(Problem(rows[pair.product_id], pair.product_id, why + " tagging never makes)"))
        else:
            encoded.append(example)
    tokenizer.close()
    return encoded, sorted(pool.problems + problems, key=lambda p: p.row), pool.sha256


def train_student(
    pool_path: Path,
    out: Path,
    settings: Settings,
    spec: TaggerSpec | None = None,
    base_gguf: Path | None = None,
    ranks: Ranks | None = None,
    gguf_type: str = "f16",
    progress: Callable[[State, int, float | None], None] | None = None,
    fresh: bool = False,
    export: bool = True,
) -> Trained:
    """Train a student on the pool into `out`, resuming a checkpoint of the same run there. `export=False` stops after
    training (the checkpoint holds the weights): tests that compare runs need no model files."""
    import torch

    ranks = ranks or Ranks()
    torch.set_num_threads(threads())
    spec = spec or TaggerSpec()
    gguf, hf = base_models(base_gguf)
    examples, skipped, data_sha = encode(pool_path, spec, gguf, settings)
    if len(examples) < 1:
        raise TaggerError(f"training pool {pool_path}: no row can be trained on ({len(skipped)} skipped)")
    train, validation = split(examples, settings.validation, settings.seed)
    out.mkdir(parents=True, exist_ok=True)
    if ranks.main:
        run = {"data": data_sha, "settings": settings.model_dump(), "spec": spec.describe(), "base": str(gguf)}
        _claim(out, run, fresh)
    trainer = Trainer(hf, out, settings, train, validation, ranks, progress)
    state = trainer.run()
    trained = Trained(out, len(train), len(validation), skipped, state, trainer.resumed_from)
    if not ranks.main or not export:
        return trained
    trainer.load_best()
    from tagger.train.export import merged, save_gguf, save_hf

    model = merged(trainer.model)
    kind: Any = gguf_type
    model = model.to("cpu")
    # The GGUF first: the HF folder is written in bfloat16, and the GGUF's weights must not be rounded through it.
    trained.files = [save_gguf(model, gguf, out, kind), save_hf(model, hf, out)]
    taxonomy = load_taxonomy(spec.taxonomy)
    facts = {
        "name": out.name,
        "tagger_version": __version__,
        "base": {"gguf": str(gguf), "hf": str(hf)},
        "export": {"gguf_type": gguf_type},
        "taxonomy": {"name": taxonomy.name, "version": taxonomy.version, "fingerprint": taxonomy.fingerprint},
        "template": _template(spec),
        "spec": json.loads(spec.describe()),
        "data": {
            "path": str(pool_path),
            "sha256": data_sha,
            "train": len(train),
            "validation": len(validation),
            "answer_tokens": sum(e.answer_tokens for e in train),
            "skipped": [{"row": p.row, "id": p.product_id, "problem": p.message} for p in skipped],
        },
        "settings": settings.model_dump(),
        "run": {
            "processes": ranks.world,
            "threads": threads(),
            "steps": state.step,
            "planned_steps": trainer.total_steps,
            "epoch_steps": trainer.steps_per_epoch * settings.epochs,  # what the epochs alone would take
            "stopped_early": state.stopped_early,
            "best_loss": state.best_loss,
            "best_step": state.best_step,
            "seconds": round(state.seconds, 1),
            "history": state.history,
        },
    }
    write_card(out, facts)
    for name in (CHECKPOINT, BEST):  # the run is done: a rerun starts over (MODEL_DIR keeps the model files only)
        target = out / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    return trained


def _template(spec: TaggerSpec) -> dict[str, str]:
    from tagger.prompt import load_template

    template = load_template(spec.template)
    return {"name": template.name, "hash": template.hash}


def _claim(out: Path, run: dict[str, Any], fresh: bool) -> None:
    """Mark the folder as this run's; a checkpoint of another run (other data, settings or base) is refused, or
    with `fresh` thrown away. The same run stopped where its checkpoint is (`--max-steps` the checkpoint's step:
    nothing left to train) is this run: its weights (the best validation's) are exported as they are."""
    path = out / RUN_JSON
    if path.is_file() and not fresh:
        old = json.loads(path.read_text())
        if old != run and not _stopped_at_checkpoint(out, old, run):
            raise TaggerError(
                f"{out} holds a checkpoint of another run (other data, settings or base model): "
                "choose another folder, or pass --fresh to start over"
            )
    if fresh:
        for name in (CHECKPOINT, CHECKPOINT + ".partial", BEST):
            target = out / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    path.write_text(json.dumps(run, indent=1, sort_keys=True))


def _stopped_at_checkpoint(out: Path, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The new run is the old one with `max_steps` the step its checkpoint is at: the steps taken are the old run's
    (a limit reached later would change the schedule of the steps left, so that is another run)."""
    stop = new["settings"].get("max_steps")
    state = out / CHECKPOINT / "state.json"
    if stop is None or not state.is_file() or json.loads(state.read_text())["step"] != stop:
        return False
    unlimited = {**new, "settings": {**new["settings"], "max_steps": old["settings"].get("max_steps")}}
    return bool(unlimited == old)
