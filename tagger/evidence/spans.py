"""The span student: an encoder trained on a catalog's labeled pool to mark where each extractive attribute's value
stands in a product's text (`tagger train-spans`, tagger.train.spans).

A token tagger (BIO labels per attribute over MiniLM's words, the category's path as the first sentence) is the
classic way to extract attribute values, and on OA-Mine's held-apart products it measured above string matching with
the pool's dictionary and far above the fine-tuned 135M chat model (README, "The span student"). It runs
on tagger's numpy encoder (tagger.retrieval.minilm): no torch at tagging time. Every value it writes is a run of
whole words of the cleaned text, with its span, so the validation and the evidence checker read it back. A student
is an ensemble of members trained alike with other seeds; each word's label probabilities are their mean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tagger.calibrate import Curve
from tagger.product import Product
from tagger.records import Evidence, Span
from tagger.retrieval.minilm import Array, BertEncoder, read_safetensors
from tagger.taxonomy import Attribute, Category

LABELS_FILE = "labels.json"
CALIBRATION_KEY = "calibration"  # in labels.json
HEAD_FILE = "head.safetensors"
JOIN = " | "  # between the title and the description in the student's text
DESCRIPTION_CHARS = 600  # of the description read: values beyond stand in specification tables the title repeats


def student_text(product: Product) -> str:
    """What the student reads: the title, then the start of the description."""
    description = product.description[:DESCRIPTION_CHARS]
    return product.title + (JOIN + description if description else "")


def category_text(category: Category) -> str:
    return " > ".join(category.path)


@dataclass(frozen=True)
class Marked:
    """A run of words the student labeled as one attribute's value: text[start:end], with its words' probabilities."""

    attribute: str
    start: int
    end: int
    probabilities: tuple[float, ...]

    @property
    def score(self) -> float:
        return float(np.mean(self.probabilities))


def read_runs(words: Sequence[tuple[int, int, str, float]]) -> list[Marked]:
    """BIO decoding: words as (start, end, label, probability), labels "O", "B-handle" or "I-handle"; an I- label
    that does not continue its attribute's run starts one."""
    runs: list[Marked] = []
    current: list[Any] | None = None
    for start, end, label, probability in words:
        kind, _, handle = label.partition("-")
        if kind == "I" and current is not None and current[0] == handle:
            current[2] = end
            current[3].append(probability)
            continue
        if current is not None:
            runs.append(Marked(current[0], current[1], current[2], tuple(current[3])))
            current = None
        if kind in ("B", "I"):
            current = [handle, start, end, [probability]]
    if current is not None:
        runs.append(Marked(current[0], current[1], current[2], tuple(current[3])))
    return runs


def most_probable(runs: Sequence[Marked], multi: Collection[str], threshold: float) -> list[Marked]:
    """Per attribute its most probable run at or above `threshold`; every such run of a multi-valued one."""
    kept: dict[str, list[Marked]] = {}
    for run in sorted(runs, key=lambda r: -r.score):
        if run.score >= threshold and (run.attribute in multi or run.attribute not in kept):
            kept.setdefault(run.attribute, []).append(run)
    return [run for found in kept.values() for run in found]


def best_runs(runs: Sequence[Marked], attributes: Sequence[Attribute], text: str, threshold: float) -> list[Marked]:
    """The runs written for the asked attributes (`most_probable`); a run without a letter or digit is no value."""
    asked = {a.handle for a in attributes}
    valued = [r for r in runs if r.attribute in asked and any(ch.isalnum() for ch in text[r.start : r.end])]
    return most_probable(valued, {a.handle for a in attributes if a.multi}, threshold)


def to_evidence(run: Marked, product: Product, calibration: Curve | None = None) -> Evidence | None:
    """The run as evidence on the field it stands in, its confidence from the student's calibration (None without
    one); None for a run across the join of title and description."""
    title_end = len(product.title)
    if run.end <= title_end:
        field, offset = "title", 0
    elif run.start >= title_end + len(JOIN):
        field, offset = "description", title_end + len(JOIN)
    else:
        return None
    start, end = run.start - offset, run.end - offset
    value = (product.title if field == "title" else product.description)[start:end]
    return Evidence(
        attribute=run.attribute,
        value=value,
        source="text",
        spans=[Span(field=field, start=start, end=end, text=value)],
        matched="student",
        decided="student",
        score=round(run.score, 4),
        confidence=None if calibration is None else round(calibration.probability(run.score), 4),
    )


@dataclass(frozen=True)
class Member:
    """One trained encoder of the student and its label layer."""

    encoder: BertEncoder
    weight: Array  # hidden size x labels
    bias: Array

    @classmethod
    def read(cls, folder: Path) -> Member:
        head = read_safetensors(folder / HEAD_FILE)
        weight = np.ascontiguousarray(head["weight"].T, dtype=np.float32)
        return cls(BertEncoder(folder), weight, np.asarray(head["bias"], dtype=np.float32))

    def probabilities(self, encoding: Any, allowed: npt.NDArray[np.bool_]) -> Array:
        logits = self.encoder.states(encoding.ids, encoding.type_ids) @ self.weight + self.bias
        return label_probabilities(logits, allowed)


class SpanStudent:
    """A trained span student read from its folder: labels.json and its members' folders (a BERT encoder's files
    and head.safetensors each; a folder from before ensembles is its own one member)."""

    def __init__(self, folder: Path) -> None:
        facts = json.loads((folder / LABELS_FILE).read_text(encoding="utf-8"))
        self.folder = folder
        self.labels: list[str] = facts["labels"]
        # Per category, the pool's products with a value of each attribute it labels (a folder from before the
        # counts were kept has only the attributes: each counts once, and once is enough).
        known: dict[str, list[str]] = facts["categories"]
        self.counts: dict[str, dict[str, int]] = facts.get("counts") or {
            c: dict.fromkeys(h, 1) for c, h in known.items()
        }
        self.min_labels = int(facts.get("min_labels", 1))
        self.threshold = float(facts["threshold"])
        self.pool_sha256: str = facts.get("pool_sha256", "")
        self.members = [Member.read(folder / name) for name in facts.get("members", ["."])]
        # Its values' confidence: how often its values were right at each score on the products held out of its
        # training (tagger.train.spans.calibrate_student); a folder without one leaves its values to the run's
        # calibration.
        curve = facts.get(CALIBRATION_KEY)
        self.calibration = Curve.model_validate(curve) if curve else None
        # The members were trained from one base: one tokenizer reads the text for all of them.
        self.tokenizer = self.members[0].encoder.tokenizer
        self.tokenizer.enable_truncation(int(facts["max_tokens"]), strategy="only_second")
        # In the records' strategy (and so the result cache's key): which student, trained on which pool, with
        # which weights (a retrained student is another student).
        heads = hashlib.sha256(f"{self.pool_sha256} {self.min_labels} {self.threshold}".encode())
        for member in self.members:
            heads.update(member.weight.tobytes())
        if curve:  # another calibration writes other confidences
            heads.update(json.dumps(curve, sort_keys=True).encode())
        self.name = f"{folder.name}@{heads.hexdigest()[:16]}"

    def learned(self, category: Category, attributes: Sequence[Attribute]) -> list[Attribute]:
        """The category's extractive attributes the pool labeled at least `min_labels` times: those the student
        decides. It learns little of one labeled a few times, where the pool's dictionary and the judge do better."""
        counts = self.counts.get(category.id, {})
        return [a for a in attributes if a.extractive and counts.get(a.handle, 0) >= self.min_labels]

    def find(self, product: Product, category: Category, attributes: Sequence[Attribute]) -> list[Evidence]:
        """The values the student marks in the (cleaned) product for the attributes it learned."""
        asked = self.learned(category, attributes)
        if not asked:
            return []
        text = student_text(product)
        encoding = self.tokenizer.encode(category_text(category), text)
        handles = {a.handle for a in asked}
        allowed = np.array([label == "O" or label[2:] in handles for label in self.labels])
        probabilities = np.mean([member.probabilities(encoding, allowed) for member in self.members], axis=0)
        words = _words(encoding, probabilities, self.labels)
        runs = best_runs(read_runs(words), asked, text, self.threshold)
        found = (to_evidence(run, product, self.calibration) for run in runs)
        return [evidence for evidence in found if evidence is not None]

    def decide(
        self,
        product: Product,
        category: Category,
        attributes: Sequence[Attribute],
        candidates: dict[str, list[Evidence]],
    ) -> dict[str, list[Evidence]]:
        """The student decides the extractive attributes it learned for the category: its values, or none where it
        marks none (OA-Mine held apart: F1 0.726, against 0.715 where the matcher's candidates fill what it leaves
        and 0.708 where they stand and it only fills; README, "The span student"). The matcher's (or the judge's)
        candidates stand for every other attribute."""
        decided = {a.handle for a in self.learned(category, attributes)}
        kept = {handle: found for handle, found in candidates.items() if handle not in decided}
        for evidence in self.find(product, category, attributes):
            kept.setdefault(evidence.attribute, []).append(evidence)
        return kept


def label_probabilities(logits: Array, allowed: npt.NDArray[np.bool_]) -> Array:
    """Each token's softmax over the labels its category allows (the others get none)."""
    masked = np.where(allowed, logits, np.float32(-1e30))
    masked -= masked.max(axis=-1, keepdims=True)
    exp = np.exp(masked)
    result: Array = exp / exp.sum(axis=-1, keepdims=True)
    return result


def word_pieces(encoding: Any) -> list[tuple[int, int, int]]:
    """Each word of the second sentence (the product's text): the position of its first piece and the word's
    character range [start, end)."""
    words: dict[int, list[int]] = {}
    for position, (sequence, (start, end), word) in enumerate(
        zip(encoding.sequence_ids, encoding.offsets, encoding.word_ids, strict=True)
    ):
        if sequence != 1 or word is None or start == end:
            continue
        if word in words:
            words[word][2] = end
        else:
            words[word] = [position, start, end]
    return [(position, start, end) for position, start, end in words.values()]


def _words(encoding: Any, probabilities: Array, labels: Sequence[str]) -> list[tuple[int, int, str, float]]:
    """Each word of the product's text: its character range and the label of its first piece in the most probable
    BIO sequence (`bio_labels`), with that label's probability."""
    pieces = word_pieces(encoding)
    firsts = probabilities[[position for position, _, _ in pieces]]
    return [
        (start, end, labels[label], float(firsts[n, label]))
        for n, ((_, start, end), label) in enumerate(zip(pieces, bio_labels(firsts, labels), strict=True))
    ]


# Below any label's log-probability (they are floored at log 1e-12): a transition or a start BIO forbids.
_FORBIDDEN = -1e9


def bio_labels(probabilities: Array, labels: Sequence[str]) -> list[int]:
    """Per word (rows of `probabilities`), its label in the most probable label sequence in which every I- label
    continues a run of its own attribute (Viterbi over the words' log-probabilities). Each word's own most probable
    label breaks a value where one inner word's I- is a little less probable than O, and starts one at a stray I-;
    on the held-apart products this decoding wrote fewer wrong values at the same recall (README, "The span
    student")."""
    count = len(probabilities)
    if count == 0:
        return []
    logp = np.log(probabilities.astype(np.float64) + 1e-12)
    inner = np.array([label.startswith("I-") for label in labels])
    in_run = np.array([label != "O" for label in labels])
    handles = np.array([label[2:] for label in labels])
    # allowed[i, j]: label j may follow label i; an I- label only after B- or I- of its own attribute
    allowed = ~inner[None, :] | (in_run[:, None] & (handles[:, None] == handles[None, :]))
    step = np.where(allowed, 0.0, _FORBIDDEN)
    best = np.where(inner, _FORBIDDEN, 0.0) + logp[0]
    back = np.zeros((count, len(labels)), dtype=np.int64)
    for word in range(1, count):
        reach = best[:, None] + step
        back[word] = reach.argmax(axis=0)
        best = reach[back[word], np.arange(len(labels))] + logp[word]
    path = [int(best.argmax())]
    for word in range(count - 1, 0, -1):
        path.append(int(back[word, path[-1]]))
    return path[::-1]
