"""`tagger train-spans`: fine-tunes MiniLM as a token tagger on a labeled pool (the span student,
tagger.evidence.spans, which reads the result without torch).

Each product is the pair (category path, the student's text: title and the start of the description), cleaned as a
run cleans it; each word's first piece is labeled B-/I- with the extractive attribute whose gold value covers it (the
value's first occurrence in the text), or O. A value the text does not hold is left unlabeled: the student should not
mark what the text does not say. A seeded share of the pool is held out; the weights of the epoch with the best
held-out F1 are kept, and training stops after `patience` epochs without improvement.

The student is an ensemble: `members` encoders trained alike with seeds seed, seed+1, ... (each its own order and
initialisation; one held-out share for all, drawn with `seed`), whose label probabilities tagging averages. Three
members measured 0.019 F1 above one on OA-Mine's held-apart products and 0.013 on WDC-PAVE's (README, "The span
student"). The ensemble's values on the held-out share fit its confidence (`calibrate_student`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger._threads import threads
from tagger.calibrate import Curve
from tagger.calibrate.fit import fitted_curve
from tagger.clean import Cleaner
from tagger.errors import TaggerError
from tagger.evals.samples import normalize
from tagger.evidence.spans import (
    CALIBRATION_KEY,
    HEAD_FILE,
    LABELS_FILE,
    SpanStudent,
    bio_labels,
    category_text,
    label_probabilities,
    most_probable,
    read_runs,
    student_text,
    word_pieces,
)
from tagger.taxonomy import Taxonomy
from tagger.train.loop import Ranks
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
    members: int = 3  # encoders trained with seeds seed, seed + 1, ...; tagging averages their probabilities
    # The student decides a category's attribute when the pool has at least this many values of it; the evidence
    # and the judge decide rarer ones, of which it learns little (README, "The span student").
    min_labels: int = 10


@dataclass
class MemberReport:
    folder: str
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    # With several processes: the largest difference between the processes' kept label layers (0 when the
    # gradients were summed and every process took the same steps).
    processes_apart: float = 0.0


@dataclass
class SpanReport:
    train: int  # products each member trains on
    validation: int  # products held out of every member (one seeded share)
    values_marked: int  # gold extractive values found in the student's text and labeled
    values_unmarked: int  # gold values the text does not hold (left as O)
    members: list[MemberReport] = field(default_factory=list)
    seconds: float = 0.0
    # The values the ensemble wrote on the held-out products, that its confidence is fitted on, and the share of
    # them that were right.
    calibration_values: int = 0
    calibration_precision: float | None = None


@dataclass(frozen=True)
class _Example:
    ids: list[int]
    type_ids: list[int]
    labels: list[int]  # -100 where no loss is taken: the category's pieces, later pieces of a word
    allowed: list[str]  # the labels its category allows (O and its known attributes' B-/I-)
    multi: frozenset[str]  # its category's multi-valued attributes


def label_names(items: Sequence[Labeled], taxonomy: Taxonomy) -> tuple[list[str], dict[str, dict[str, int]]]:
    """O, then B-/I- for every extractive attribute the pool labels; and per category, how many of its products
    have a value of each one."""
    counts: dict[str, Counter[str]] = {}
    for item in items:
        extractive = {a.handle for a in taxonomy.attributes_for(item.category.id) if a.extractive}
        valued = {handle for handle, values in item.attributes.items() if values}
        counts.setdefault(item.category.id, Counter()).update(extractive & valued)
    handles = sorted(set().union(*counts.values())) if counts else []
    labels = ["O"] + [f"{kind}-{handle}" for handle in handles for kind in "BI"]
    return labels, {category: dict(sorted(found.items())) for category, found in counts.items()}


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
    ranks: Ranks | None = None,
) -> SpanReport:
    """Trains the members one after another into output/member-N; labels.json, written last, names them. Under
    torch.distributed (`ranks`) every process runs this with the same arguments: each takes its share of every batch
    and of the held-out products, and the main process writes the folder."""
    import torch
    from tokenizers import Tokenizer

    ranks = ranks or Ranks()
    labels, known = label_names(items, taxonomy)
    if len(labels) == 1:
        raise TaggerError("the pool labels no extractive attribute: there is nothing for a span student to learn")
    torch.set_num_threads(threads())
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(settings.max_tokens, strategy="only_second")
    examples, marked, unmarked = _examples(items, taxonomy, known, labels, tokenizer)
    held = max(1, round(len(examples) * settings.validation)) if len(examples) > 1 and settings.validation > 0 else 0
    order = shuffled_order(len(examples), settings.seed)
    parts = [examples[i] for i in order[held:]], [examples[i] for i in order[:held]]
    report = SpanReport(len(examples) - held, held, marked, unmarked)
    start = time.perf_counter()
    for member in range(settings.members):
        own = dataclasses.replace(settings, seed=settings.seed + member)
        folder = output / f"member-{member}"
        report.members.append(_train_member(parts, labels, own, base, folder, progress, ranks))
    if ranks.main:
        facts = {"base": base.name, "members": [m.folder for m in report.members], "pool_sha256": pool_sha256}
        _save_facts(output, labels, known, settings, facts)
        curve = calibrate_student(output, [items[i] for i in order[:held]], taxonomy)
        if curve is not None:
            report.calibration_values, report.calibration_precision = curve.n, round(curve.rate, 4)
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def _train_member(
    parts: tuple[list[_Example], list[_Example]],
    labels: list[str],
    settings: SpanSettings,
    base: Path,
    folder: Path,
    progress: Callable[[int, int, dict[str, float]], None] | None,
    ranks: Ranks,
) -> MemberReport:
    """One member on the (training, held-out) products, seeded by settings.seed: its order and label layer (the
    same in every process)."""
    import torch

    torch.manual_seed(settings.seed)
    member = MemberReport(folder.name, settings.seed)
    model, head = _model(base, len(labels))
    best = _fit(model, head, parts, labels, settings, member, progress, ranks)
    member.processes_apart = _apart(best[1]["weight"], ranks)
    if ranks.main:
        model.load_state_dict(best[0])
        head.load_state_dict(best[1])
        _save_member(folder, base, model, head)
    return member


def shuffled_order(count: int, seed: int) -> list[int]:
    """The pool's products in the student's seeded order: the first `held` are held out of every member."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order


def calibrate_student(folder: Path, held_out: Sequence[Labeled], taxonomy: Taxonomy) -> Curve | None:
    """Fits the student's confidence on the products held out of its training and writes it into its labels.json:
    isotonic regression, over the value's score, of whether each value the student writes there is right (one of
    the product's gold values for its attribute). Nothing is written (None) where it wrote none, or none was held
    out."""
    student = SpanStudent(folder)
    cleaner = Cleaner()
    points: list[tuple[float, bool]] = []
    for item in held_out:
        product = cleaner.clean(item.product).product
        for evidence in student.find(product, item.category, taxonomy.attributes_for(item.category.id)):
            gold = {normalize(value) for value in item.attributes.get(evidence.attribute, [])}
            points.append((evidence.score or 0.0, normalize(evidence.value) in gold))
    if not points:
        return None
    curve = fitted_curve(points)
    facts = json.loads((folder / LABELS_FILE).read_text(encoding="utf-8"))
    facts[CALIBRATION_KEY] = curve.model_dump()
    (folder / LABELS_FILE).write_text(json.dumps(facts, indent=1, ensure_ascii=False), encoding="utf-8")
    return curve


def _examples(
    items: Sequence[Labeled], taxonomy: Taxonomy, known: dict[str, dict[str, int]], labels: list[str], tokenizer: Any
) -> tuple[list[_Example], int, int]:
    cleaner = Cleaner()
    index = {label: i for i, label in enumerate(labels)}
    examples: list[_Example] = []
    marked = unmarked = 0
    for item in items:
        product = cleaner.clean(item.product).product
        text = student_text(product)
        handles = list(known.get(item.category.id, {}))
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
    report: MemberReport,
    progress: Callable[[int, int, dict[str, float]], None] | None,
    ranks: Ranks,
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
            batch = shuffled[first : first + settings.batch_size]
            optimizer.zero_grad()
            losses.append(_train_step(model, head, batch, parameters, ranks))
            optimizer.step()
            schedule.step()
        figures = {"seed": settings.seed, "epoch": epoch, "loss": round(sum(losses) / len(losses), 4)}
        if held_out:
            figures |= _held_out(model, head, held_out, labels, settings.threshold, ranks)
        report.history.append(figures)
        if progress is not None and ranks.main:
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


def _train_step(model: Any, head: Any, batch: list[_Example], parameters: list[Any], ranks: Ranks) -> float:
    """The batch's gradients, this process taking every world-th product: each loss is divided by the whole batch's
    labeled words and the gradients are summed over the processes, so the update is one process's. Returns the
    batch's mean loss."""
    import torch

    words = _labeled_words(batch)
    mine = batch[ranks.rank :: ranks.world]
    loss = torch.zeros(())
    if mine:
        summed, _ = _forward(model, head, mine)
        loss = summed / max(words, 1)
        loss.backward()
    return _all_sum([float(loss.detach())], ranks, parameters)[0]


def _labeled_words(batch: list[_Example]) -> int:
    """The words the loss is taken on (each word's first piece)."""
    return sum(sum(label != -100 for label in e.labels) for e in batch)


def _all_sum(figures: list[float], ranks: Ranks, parameters: Sequence[Any] = ()) -> list[float]:
    """Sums the figures (and the parameters' gradients) over the processes; as they are with one process."""
    if ranks.world == 1:
        return figures
    import torch
    import torch.distributed as dist

    for parameter in parameters:
        if parameter.grad is None:  # a process without products this batch adds nothing
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
    summed = torch.tensor(figures, dtype=torch.float64)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return [float(x) for x in summed.tolist()]


def _apart(weight: Any, ranks: Ranks) -> float:
    """How far the processes' copies of `weight` are apart (the largest elementwise difference)."""
    if ranks.world == 1:
        return 0.0
    import torch.distributed as dist

    highest, lowest = weight.detach().clone(), weight.detach().clone()
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    return float((highest - lowest).max())


def _forward(model: Any, head: Any, batch: list[_Example]) -> tuple[Any, Any]:
    """The summed loss over the batch's labeled words, and the logits."""
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
    flat = logits.reshape(-1, logits.shape[-1])
    loss = torch.nn.functional.cross_entropy(flat, labels.reshape(-1), reduction="sum")
    return loss, logits


def _held_out(
    model: Any, head: Any, held_out: list[_Example], labels: list[str], threshold: float, ranks: Ranks
) -> dict[str, float]:
    """The held-out loss, and the F1 of the runs a tagging run would write (per attribute its best run at or above
    the threshold, every run of a multi-valued one) against the gold runs, both read off the words' labels. Each
    process scores its share; the counts are summed, so every process takes the same decision."""
    import torch

    model.eval()
    mine = held_out[ranks.rank :: ranks.world]
    loss = words = right = written = gold = 0.0
    with torch.no_grad():
        for first in range(0, len(mine), 32):
            batch = mine[first : first + 32]
            summed, logits = _forward(model, head, batch)
            loss += float(summed)
            words += _labeled_words(batch)
            for example, row in zip(batch, logits, strict=False):
                wanted, found = _runs(example, row.numpy(), labels, threshold)
                right += len(wanted & found)
                written += len(found)
                gold += len(wanted)
    loss, words, right, written, gold = _all_sum([loss, words, right, written, gold], ranks)
    precision, recall = right / max(written, 1), right / max(gold, 1)
    f1 = 2 * precision * recall / (precision + recall) if right else 0.0
    return {"validation_loss": round(loss / max(words, 1), 4), "validation_f1": round(f1, 4)}


def _runs(
    example: _Example, logits: Any, labels: list[str], threshold: float
) -> tuple[set[tuple[int, int, str]], set[tuple[int, int, str]]]:
    """Gold and written runs of one held-out product, as (first word, last word, attribute)."""
    import numpy as np

    allowed = np.array([label in example.allowed for label in labels])
    positions = [i for i, label in enumerate(example.labels) if label != -100]
    gold_words = [(n, n, labels[example.labels[i]], 1.0) for n, i in enumerate(positions)]
    probabilities = label_probabilities(logits[positions].astype(np.float32), allowed)
    best = bio_labels(probabilities, labels)
    words = [(n, n, labels[k], float(probabilities[n, k])) for n, k in enumerate(best)]
    written = most_probable(read_runs(words), example.multi, threshold)
    return {(r.start, r.end, r.attribute) for r in read_runs(gold_words)}, {
        (r.start, r.end, r.attribute) for r in written
    }


def _save_member(folder: Path, base: Path, model: Any, head: Any) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(base / name, folder / name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / HEAD_FILE))


def _save_facts(
    output: Path,
    labels: list[str],
    known: dict[str, dict[str, int]],
    settings: SpanSettings,
    facts: dict[str, Any],
) -> None:
    every = {
        "labels": labels,
        "categories": {category: sorted(counts) for category, counts in known.items()},
        "counts": known,  # per category, the pool's products with a value of each attribute
        "min_labels": settings.min_labels,
        "threshold": settings.threshold,
        "max_tokens": settings.max_tokens,
    }
    (output / LABELS_FILE).write_text(json.dumps(every | facts, indent=1, ensure_ascii=False), encoding="utf-8")
