"""`tagger train-spans`: fine-tunes MiniLM as a token tagger on a labeled pool (the span student,
tagger.evidence.spans, which reads the result without torch).

Each product is the pair (category path, the student's text: title and the start of the description), cleaned as a
run cleans it; each word's first piece is labeled B-/I- with the extractive attribute whose gold value covers it (the
value's first occurrence in the text), or O. A value the text does not hold is left unlabeled: the student should not
mark what the text does not say. A seeded share of the pool is held out; the weights of the epoch with the lowest
held-out loss are kept, and training stops after `patience` epochs without improvement.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger._threads import threads
from tagger.clean import Cleaner
from tagger.errors import TaggerError
from tagger.evidence.spans import (
    HEAD_FILE,
    LABELS_FILE,
    category_text,
    label_probabilities,
    most_probable,
    read_runs,
    student_text,
    word_pieces,
)
from tagger.taxonomy import Taxonomy
from tagger.train.pool import Labeled
from tagger.validate import find_spans


@dataclass(frozen=True)
class SpanSettings:
    epochs: int = 15
    learning_rate: float = 3e-4
    batch_size: int = 16
    validation: float = 0.1
    patience: int = 3
    seed: int = 0
    max_tokens: int = 128
    threshold: float = 0.5  # a run of words below this mean probability is not written


@dataclass
class SpanReport:
    train: int
    validation: int
    values_marked: int  # gold extractive values found in the student's text and labeled
    values_unmarked: int  # gold values the text does not hold (left as O)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Example:
    ids: list[int]
    type_ids: list[int]
    labels: list[int]  # -100 where no loss is taken: the category's pieces, later pieces of a word
    allowed: list[str]  # the labels its category allows (O and its known attributes' B-/I-)
    multi: frozenset[str]  # its category's multi-valued attributes


def label_names(items: Sequence[Labeled], taxonomy: Taxonomy) -> tuple[list[str], dict[str, list[str]]]:
    """O, then B-/I- for every extractive attribute the pool labels; and per category, those it labels."""
    per_category: dict[str, set[str]] = {}
    for item in items:
        extractive = {a.handle for a in taxonomy.attributes_for(item.category.id) if a.extractive}
        per_category.setdefault(item.category.id, set()).update(extractive & item.attributes.keys())
    handles = sorted(set().union(*per_category.values())) if per_category else []
    labels = ["O"] + [f"{kind}-{handle}" for handle in handles for kind in "BI"]
    return labels, {category: sorted(found) for category, found in per_category.items()}


def gold_ranges(item: Labeled, text: str, known: Sequence[str]) -> tuple[list[tuple[int, int, str]], int]:
    """Where each gold value of a known attribute stands in the text (its first occurrence), and how many are not
    in the text."""
    ranges: list[tuple[int, int, str]] = []
    missing = 0
    for handle in known:
        for value in item.attributes.get(handle, []):
            found = find_spans(value, text, 1)
            if found:
                ranges.append((found[0][0], found[0][1], handle))
            else:
                missing += 1
    return ranges, missing


def word_labels(encoding: Any, ranges: Sequence[tuple[int, int, str]], index: dict[str, int]) -> list[int]:
    """One label per piece: the word's label on its first piece (covered when that piece lies in a gold range),
    -100 elsewhere."""
    labels = [-100] * len(encoding.ids)
    previous: tuple[int, int, str] | None = None
    for position, _, _ in word_pieces(encoding):
        start, end = encoding.offsets[position]
        covering = next((r for r in ranges if r[0] <= start and end <= r[1]), None)
        if covering is None:
            labels[position], previous = index["O"], None
            continue
        kind = "I" if covering == previous else "B"
        labels[position], previous = index[f"{kind}-{covering[2]}"], covering
    return labels


def train_spans(
    items: Sequence[Labeled],
    taxonomy: Taxonomy,
    output: Path,
    settings: SpanSettings,
    base: Path,
    pool_sha256: str,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> SpanReport:
    import torch
    from tokenizers import Tokenizer

    labels, known = label_names(items, taxonomy)
    if len(labels) == 1:
        raise TaggerError("the pool labels no extractive attribute: there is nothing for a span student to learn")
    torch.manual_seed(settings.seed)
    torch.set_num_threads(threads())
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(settings.max_tokens, strategy="only_second")
    examples, marked, unmarked = _examples(items, taxonomy, known, labels, tokenizer)
    order = list(range(len(examples)))
    random.Random(settings.seed).shuffle(order)
    held = max(1, round(len(order) * settings.validation)) if len(order) > 1 and settings.validation > 0 else 0
    held_out, train = [examples[i] for i in order[:held]], [examples[i] for i in order[held:]]
    report = SpanReport(len(train), len(held_out), marked, unmarked)
    model, head = _model(base, len(labels))
    best = _fit(model, head, (train, held_out), labels, settings, report, progress)
    model.load_state_dict(best[0])
    head.load_state_dict(best[1])
    _save(output, base, model, head, labels, known, settings, pool_sha256)
    return report


def _examples(
    items: Sequence[Labeled], taxonomy: Taxonomy, known: dict[str, list[str]], labels: list[str], tokenizer: Any
) -> tuple[list[_Example], int, int]:
    cleaner = Cleaner()
    index = {label: i for i, label in enumerate(labels)}
    examples: list[_Example] = []
    marked = unmarked = 0
    for item in items:
        product = cleaner.clean(item.product).product
        text = student_text(product)
        handles = known.get(item.category.id, [])
        ranges, missing = gold_ranges(item, text, handles)
        marked, unmarked = marked + len(ranges), unmarked + missing
        encoding = tokenizer.encode(category_text(item.category), text)
        allowed = ["O"] + [f"{kind}-{handle}" for handle in handles for kind in "BI"]
        multi = frozenset(a.handle for a in taxonomy.attributes_for(item.category.id) if a.multi)
        labeled = word_labels(encoding, ranges, index)
        examples.append(_Example(encoding.ids, encoding.type_ids, labeled, allowed, multi))
    return examples, marked, unmarked


def _model(base: Path, count: int) -> tuple[Any, Any]:
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(str(base), add_pooling_layer=False)
    head = torch.nn.Linear(model.config.hidden_size, count)
    return model, head


def _fit(
    model: Any,
    head: Any,
    parts: tuple[list[_Example], list[_Example]],
    labels: list[str],
    settings: SpanSettings,
    report: SpanReport,
    progress: Callable[[int, int, dict[str, float]], None] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trains; returns the weights of the epoch with the best held-out F1 (the values it would write, decoded as a
    run decodes them), or the last epoch's without a held-out part. Held-out loss was tried as the criterion: on
    OA-Mine it was lowest at epoch 7 and rose after, while the values kept improving to epoch 11."""
    import torch

    train, held_out = parts
    parameters = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=0.01)
    per_epoch = (len(train) + settings.batch_size - 1) // settings.batch_size
    total = max(1, settings.epochs * per_epoch)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / total)
    )
    best = (copy.deepcopy(model.state_dict()), copy.deepcopy(head.state_dict()))
    best_f1, waited, start = -1.0, 0, time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        shuffled = list(train)
        random.Random(settings.seed * 1000 + epoch).shuffle(shuffled)
        losses = []
        for first in range(0, len(shuffled), settings.batch_size):
            loss, _ = _forward(model, head, shuffled[first : first + settings.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        figures = {"epoch": epoch, "loss": round(sum(losses) / len(losses), 4)}
        if held_out:
            figures |= _held_out(model, head, held_out, labels, settings.threshold)
        report.history.append(figures)
        if progress is not None:
            progress(epoch, settings.epochs, figures)
        f1 = figures.get("validation_f1", float(epoch))  # without a held-out part the last epoch is kept
        if f1 > best_f1:
            best_f1, waited, report.best_epoch = f1, 0, epoch
            best = (copy.deepcopy(model.state_dict()), copy.deepcopy(head.state_dict()))
        else:
            waited += 1
            if waited >= settings.patience:
                break
    report.seconds = round(time.perf_counter() - start, 1)
    return best


def _forward(model: Any, head: Any, batch: list[_Example]) -> tuple[Any, Any]:
    import torch

    width = max(len(e.ids) for e in batch)

    def padded(rows: list[list[int]], fill: int) -> Any:
        return torch.tensor([row + [fill] * (width - len(row)) for row in rows])

    ids = padded([e.ids for e in batch], 0)
    types = padded([e.type_ids for e in batch], 0)
    mask = padded([[1] * len(e.ids) for e in batch], 0)
    labels = padded([e.labels for e in batch], -100)
    states = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    logits = head(states)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return loss, logits


def _held_out(model: Any, head: Any, held_out: list[_Example], labels: list[str], threshold: float) -> dict[str, float]:
    """The held-out loss, and the F1 of the runs a tagging run would write (per attribute its best run at or above
    the threshold, every run of a multi-valued one) against the gold runs, both read off the words' labels."""
    import torch

    model.eval()
    losses: list[float] = []
    right = written = gold = 0
    with torch.no_grad():
        for first in range(0, len(held_out), 32):
            batch = held_out[first : first + 32]
            loss, logits = _forward(model, head, batch)
            losses.append(loss.item())
            for example, row in zip(batch, logits, strict=False):
                wanted, found = _runs(example, row.numpy(), labels, threshold)
                right += len(wanted & found)
                written += len(found)
                gold += len(wanted)
    precision, recall = right / max(written, 1), right / max(gold, 1)
    f1 = 2 * precision * recall / (precision + recall) if right else 0.0
    return {"validation_loss": round(sum(losses) / len(losses), 4), "validation_f1": round(f1, 4)}


def _runs(
    example: _Example, logits: Any, labels: list[str], threshold: float
) -> tuple[set[tuple[int, int, str]], set[tuple[int, int, str]]]:
    """Gold and written runs of one held-out product, as (first word, last word, attribute)."""
    import numpy as np

    allowed = np.array([label in example.allowed for label in labels])
    positions = [i for i, label in enumerate(example.labels) if label != -100]
    gold_words = [(n, n, labels[example.labels[i]], 1.0) for n, i in enumerate(positions)]
    probabilities = label_probabilities(logits[positions].astype(np.float32), allowed)
    best = probabilities.argmax(axis=-1)
    words = [(n, n, labels[int(k)], float(probabilities[n, k])) for n, k in enumerate(best)]
    written = most_probable(read_runs(words), example.multi, threshold)
    return {(r.start, r.end, r.attribute) for r in read_runs(gold_words)}, {
        (r.start, r.end, r.attribute) for r in written
    }


def _save(
    output: Path,
    base: Path,
    model: Any,
    head: Any,
    labels: list[str],
    known: dict[str, list[str]],
    settings: SpanSettings,
    pool_sha256: str,
) -> None:
    from safetensors.torch import save_file

    output.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(base / name, output / name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(output / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(output / HEAD_FILE))
    facts = {
        "labels": labels,
        "categories": known,
        "threshold": settings.threshold,
        "max_tokens": settings.max_tokens,
        "base": base.name,
        "pool_sha256": pool_sha256,
    }
    (output / LABELS_FILE).write_text(json.dumps(facts, indent=1, ensure_ascii=False), encoding="utf-8")
