"""The span student (`tagger train-spans`, tagger.evidence.spans): a real MiniLM fine-tuned for a few seconds on the
OA-Mine fixture rows, read back by the numpy encoder, run inside the default pipeline; its decoding and label
alignment on their own."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")

from tagger.build import Narrowing, TaggerSpec, build_tagger
from tagger.clean import Cleaner
from tagger.errors import TaggerError
from tagger.evals.samples import normalize
from tagger.evidence.spans import (
    JOIN,
    Marked,
    SpanStudent,
    best_runs,
    bio_labels,
    read_runs,
    student_text,
    to_evidence,
)
from tagger.product import Product
from tagger.records import TagRecord
from tagger.retrieval.embeddings import model_folder
from tagger.taxonomy import Attribute, load_taxonomy
from tagger.train.pool import read_pool
from tagger.train.spans import shuffled_order, word_labels

ROOT = Path(__file__).resolve().parents[1]
OA_MINE = ROOT / "tests" / "fixtures" / "oa-mine.jsonl"
OA_TAXONOMY = str(ROOT / "evals" / "taxonomies" / "oa-mine.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A span student of two members trained on the 30 fixture rows plus two bad ones (no validation share: they
    learn them all)."""
    work = tmp_path_factory.mktemp("spans")
    pool = work / "pool.jsonl"
    bad = [
        {"id": "lost", "title": "A thing", "category_path": ["No Such Type"]},
        {"id": "outside", "title": "Tea", "category_path": ["Tea"], "attributes": {"Wingspan": ["3 m"]}},
    ]
    pool.write_text(OA_MINE.read_text() + "".join(json.dumps(row) + "\n" for row in bad))
    out = work / "student"
    command = [sys.executable, "-m", "tagger", "train-spans", str(pool), "-o", str(out), "-t", OA_TAXONOMY]
    command += ["--epochs", "25", "--validation", "0", "--lr", "1e-3", "--batch-size", "8", "--members", "2"]
    command += ["--min-labels", "2"]  # the fixture has 3 products a category
    env = {**os.environ, "TAGGER_THREADS": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=900)
    return out, done


def test_bad_rows_are_reported_and_skipped(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = trained
    assert "lost" in done.stderr and "not in taxonomy" in done.stderr
    assert "outside" in done.stderr and "'Wingspan' is not one of its category's" in done.stderr
    facts = json.loads((out / "training.json").read_text())
    assert facts["skipped"] == 2 and facts["train"] == 30
    assert facts["values_marked"] > 100  # the fixture's gold values found in the text and labeled


def test_the_student_marks_the_values_it_learned(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """On the products it trained on, the student finds most gold values, each a checkable span of the text."""
    out, _ = trained
    taxonomy = load_taxonomy(OA_TAXONOMY)
    student = SpanStudent(out)
    pool = read_pool(OA_MINE, taxonomy)
    cleaner = Cleaner()
    right = total = 0
    for item in pool.items:
        product = cleaner.clean(item.product).product
        found = student.find(product, item.category, taxonomy.attributes_for(item.category.id))
        for evidence in found:
            span = evidence.spans[0]
            field = product.title if span.field == "title" else product.description
            assert field[span.start : span.end] == span.text == evidence.value
            assert evidence.decided == "student" and evidence.score is not None and evidence.score >= 0.5
        got = {(e.attribute, e.value.casefold()) for e in found}
        gold = {(h, v.casefold()) for h, vs in item.attributes.items() for v in vs}
        right += len(got & gold)
        total += len(gold)
    assert right / total > 0.6, (right, total)


def test_the_numpy_encoder_computes_the_trained_models_states(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Tagging reads the student with numpy: its token states are torch's, sentence pair and token types included."""
    import numpy as np
    import torch
    from transformers import BertModel

    out, _ = trained
    student = SpanStudent(out)
    encoding = student.tokenizer.encode("Tea > Green Tea", "Acme Organic Green Tea, 20 Bags | Sencha leaves")
    ours = student.members[1].encoder.states(encoding.ids, encoding.type_ids)
    model = BertModel.from_pretrained(str(out / "member-1"), add_pooling_layer=False).eval()
    with torch.no_grad():
        ids, types = torch.tensor([encoding.ids]), torch.tensor([encoding.type_ids])
        theirs = model(input_ids=ids, token_type_ids=types).last_hidden_state[0].numpy()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-3
    assert set(encoding.type_ids) == {0, 1}


def _first_member(student: Path, folder: Path, **changed: Any) -> Path:
    """A student folder of the given student's first member alone, its labels.json otherwise the same."""
    folder.mkdir()
    (folder / "member-0").symlink_to(student / "member-0")
    labels = json.loads((student / "labels.json").read_text())
    (folder / "labels.json").write_text(json.dumps(labels | {"members": ["member-0"], **changed}))
    return folder


def test_the_members_are_seeded_apart_and_averaged(
    trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Two members trained with seeds 0 and 1 differ; tagging averages their label probabilities, and a student of
    other members is another student (its name keys the result cache)."""
    import numpy as np

    out, _ = trained
    facts = json.loads((out / "training.json").read_text())
    assert [m["seed"] for m in facts["members"]] == [0, 1]
    assert all(m["history"] and m["best_epoch"] == 25 for m in facts["members"])  # no held-out share: the last
    student = SpanStudent(out)
    first, second = student.members
    assert not np.allclose(first.weight, second.weight)
    taxonomy = load_taxonomy(OA_TAXONOMY)
    item = read_pool(OA_MINE, taxonomy).items[0]
    product = Cleaner().clean(item.product).product
    encoding = student.tokenizer.encode(" > ".join(item.category.path), student_text(product))
    allowed = np.ones(len(student.labels), dtype=bool)
    each = [member.probabilities(encoding, allowed) for member in student.members]
    assert np.allclose(each[0].sum(axis=-1), 1, atol=1e-5) and not np.allclose(each[0], each[1], atol=1e-3)
    # One member alone, in a folder of its own: another name, and values of its own.
    single = SpanStudent(_first_member(out, tmp_path / "alone"))
    assert single.name.split("@")[1] != student.name.split("@")[1]
    attributes = taxonomy.attributes_for(item.category.id)
    assert single.find(product, item.category, attributes) and student.find(product, item.category, attributes)


def test_the_student_decides_what_the_pool_labeled_often_enough(
    trained: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """An attribute the pool labels fewer than min_labels times in a category is left to the evidence and the judge."""
    out, _ = trained
    labels = json.loads((out / "labels.json").read_text())
    assert labels["min_labels"] == 2
    taxonomy = load_taxonomy(OA_TAXONOMY)
    student = SpanStudent(out)
    rare = often = 0
    for category_id, counts in labels["counts"].items():
        category = taxonomy.categories[category_id]
        decided = {a.handle for a in student.learned(category, taxonomy.attributes_for(category_id))}
        assert decided == {handle for handle, n in counts.items() if n >= 2}
        rare += len(counts) - len(decided)
        often += len(decided)
    assert rare and often  # the fixture has both
    # Raised past every count, the student decides nothing: the pipeline writes the matcher's and judge's values.
    strict = _first_member(out, tmp_path / "strict", min_labels=1000)
    spec = TaggerSpec(taxonomy=OA_TAXONOMY, narrowing=Narrowing(shortlist=0), spans=strict)
    tagger = build_tagger(spec, taxonomy=taxonomy)
    items = read_pool(OA_MINE, taxonomy).items[:4]
    records = tagger.tag_batch([i.product for i in items], [i.category for i in items])
    tagger.close()
    assert all(isinstance(r, TagRecord) for r in records)
    written = [e for r in records if isinstance(r, TagRecord) for e in r.evidence]
    assert written and not [e for e in written if e.decided == "student"]


def test_two_processes_train_one_student(tmp_path: Path) -> None:
    """`train-spans --processes 2`: two gloo processes each take half of every batch and of the held-out products;
    the gradients are summed, so both end with the same weights, and the student they write tags."""
    out = tmp_path / "student"
    command = [sys.executable, "-m", "tagger", "train-spans", str(OA_MINE), "-o", str(out), "-t", OA_TAXONOMY]
    command += ["--epochs", "4", "--validation", "0.2", "--lr", "1e-3", "--batch-size", "8", "--members", "1"]
    command += ["--min-labels", "1", "--processes", "2", "-q"]
    env = {**os.environ, "TAGGER_THREADS": "2", "PYTHONPATH": str(ROOT)}
    subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
    facts = json.loads((out / "training.json").read_text())
    assert facts["processes"] == 2 and (facts["train"], facts["validation"]) == (24, 6)
    (member,) = facts["members"]
    assert len(member["history"]) == 4 and all(0 <= h["validation_f1"] <= 1 for h in member["history"])
    assert member["processes_apart"] < 1e-5
    taxonomy = load_taxonomy(OA_TAXONOMY)
    item = read_pool(OA_MINE, taxonomy).items[0]
    product = Cleaner().clean(item.product).product
    student = SpanStudent(out)
    attributes = taxonomy.attributes_for(item.category.id)
    assert student.learned(item.category, attributes)
    assert all(e.decided == "student" for e in student.find(product, item.category, attributes))


def test_the_pipeline_writes_the_students_values(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = trained
    taxonomy = load_taxonomy(OA_TAXONOMY)
    spec = TaggerSpec(taxonomy=OA_TAXONOMY, narrowing=Narrowing(shortlist=0), spans=out)
    tagger = build_tagger(spec, taxonomy=taxonomy)
    pool = read_pool(OA_MINE, taxonomy)
    items = pool.items[:6]
    records = tagger.tag_batch([i.product for i in items], [i.category for i in items])
    tagger.close()
    students = 0
    for record, item in zip(records, items, strict=True):
        assert isinstance(record, TagRecord)
        assert f"spans={out.name}@" in record.provenance.strategy
        for evidence in record.evidence:
            assert evidence.value in record.attributes[evidence.attribute]
            students += evidence.decided == "student"
            if evidence.decided == "student":
                assert evidence.value.casefold() in item.product.title.casefold()
    assert students >= 6  # a brand at least on each


def test_a_folder_that_is_no_student_is_refused(tmp_path: Path) -> None:
    spec = TaggerSpec(taxonomy=OA_TAXONOMY, narrowing=Narrowing(shortlist=0), spans=tmp_path)
    with pytest.raises(TaggerError, match="not a span student's folder"):
        build_tagger(spec, load_model=False)


def test_runs_are_read_from_bio_labels() -> None:
    words = [
        (0, 5, "B-brand", 0.9),
        (6, 10, "I-brand", 0.7),
        (11, 14, "I-flavor", 0.8),  # an I- of another attribute starts its own run
        (15, 17, "O", 0.99),
        (18, 22, "B-flavor", 0.6),
        (23, 27, "B-flavor", 0.4),  # B- after B- of the same attribute: a new run
    ]
    runs = read_runs(words)
    assert [(r.attribute, r.start, r.end) for r in runs] == [
        ("brand", 0, 10),
        ("flavor", 11, 14),
        ("flavor", 18, 22),
        ("flavor", 23, 27),
    ]
    assert runs[0].score == pytest.approx(0.8)


def _best_valid_sequence(probabilities: np.ndarray, labels: list[str]) -> list[int]:
    """By enumeration: the most probable label sequence in which every I- continues its own attribute's run."""

    def valid(sequence: tuple[int, ...]) -> bool:
        previous = "O"
        for k in sequence:
            if labels[k].startswith("I-") and (previous == "O" or previous[2:] != labels[k][2:]):
                return False
            previous = labels[k]
        return True

    sequences = [s for s in itertools.product(range(len(labels)), repeat=len(probabilities)) if valid(s)]
    return list(max(sequences, key=lambda s: math.prod(float(probabilities[n, k]) for n, k in enumerate(s))))


def test_bio_labels_keep_a_value_whole_where_each_words_own_label_breaks_it() -> None:
    labels = ["O", "B-brand", "I-brand", "B-flavor", "I-flavor"]
    probabilities = np.array(
        [
            [0.05, 0.90, 0.03, 0.01, 0.01],  # Acme
            [0.45, 0.02, 0.40, 0.03, 0.10],  # Farms: O by a little over I-brand
            [0.25, 0.05, 0.60, 0.05, 0.05],  # Bakery: I-brand
            [0.15, 0.05, 0.05, 0.30, 0.45],  # Lime: I-flavor, with no flavor run before it
        ],
        dtype=np.float32,
    )
    greedy = [labels[int(k)] for k in probabilities.argmax(axis=-1)]
    # read_runs on these writes brands "Acme" and "Bakery" (an I- after O starts a run) and flavor "Lime"
    assert greedy == ["B-brand", "O", "I-brand", "I-flavor"]
    decoded = bio_labels(probabilities, labels)
    assert decoded == _best_valid_sequence(probabilities, labels)
    assert [labels[k] for k in decoded] == ["B-brand", "I-brand", "I-brand", "B-flavor"]  # "Acme Farms Bakery"
    assert bio_labels(probabilities[:0], labels) == []


def test_bio_labels_are_the_best_valid_sequence_and_each_words_own_where_that_is_valid() -> None:
    labels = ["O", "B-brand", "I-brand", "B-flavor", "I-flavor"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        probabilities = rng.dirichlet(np.ones(len(labels)), size=5).astype(np.float32)
        assert bio_labels(probabilities, labels) == _best_valid_sequence(probabilities, labels)
    probabilities[:, [2, 4]] = 0.0  # no I- at all: the words' own labels are a valid sequence, and the best
    assert bio_labels(probabilities, labels) == [int(k) for k in probabilities.argmax(axis=-1)]


def test_best_runs_keep_one_value_of_a_single_valued_attribute() -> None:
    text = "Acme Cola, Lime (12 Pack)"
    brand = Attribute(handle="brand", name="Brand", extractive=True)
    tags = Attribute(handle="tags", name="Tags", extractive=True, multi=True)
    runs = [
        Marked("brand", 0, 4, (0.9,)),
        Marked("brand", 5, 9, (0.95,)),
        Marked("tags", 11, 15, (0.6,)),
        Marked("tags", 17, 24, (0.7,)),
        Marked("tags", 9, 10, (0.99,)),  # ",": no letter or digit
        Marked("flavor", 11, 15, (0.9,)),  # not asked
        Marked("tags", 0, 4, (0.3,)),  # below the threshold
    ]
    kept = best_runs(runs, [brand, tags], text, 0.5)
    assert sorted((r.attribute, text[r.start : r.end]) for r in kept) == [
        ("brand", "Cola"),
        ("tags", "12 Pack"),
        ("tags", "Lime"),
    ]


def test_evidence_lands_on_its_field() -> None:
    product = Product(id="p", title="Acme Tea", description="Green tea, 20 bags")
    text = student_text(product)
    assert text == "Acme Tea" + JOIN + "Green tea, 20 bags"
    start = text.index("20 bags")
    found = to_evidence(Marked("count", start, start + 7, (0.8,)), product)
    assert found is not None and found.spans[0].field == "description"
    assert product.description[found.spans[0].start : found.spans[0].end] == "20 bags" == found.value
    across = to_evidence(Marked("name", 5, start, (0.9,)), product)  # from the title into the description
    assert across is None
    title = to_evidence(Marked("brand", 0, 4, (0.9,)), product)
    assert title is not None and title.spans[0].field == "title" and title.value == "Acme"


def test_word_labels_mark_each_words_first_piece() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    text = "Crocs Women's Kadeeflat Flat, Raspberry"
    encoding = tokenizer.encode("Shoes", text)
    index = {"O": 0, "B-brand": 1, "I-brand": 2, "B-model": 3, "I-model": 4}
    ranges = [(0, 5, "brand"), (14, 28, "model")]
    labels = word_labels(encoding, ranges, index)
    pieces = [
        (text[start:end], label)
        for (start, end), label, sequence in zip(encoding.offsets, labels, encoding.sequence_ids, strict=True)
        if sequence == 1
    ]
    # "Crocs" is the pieces Cr, oc, s: the first carries the word's label, the others take no loss (-100).
    assert pieces[:3] == [("Cr", 1), ("oc", -100), ("s", -100)]
    assert [label for _, label in pieces if label != -100] == [1, 0, 0, 0, 3, 4, 0, 0]
    assert pieces[6:10] == [("Kade", 3), ("ef", -100), ("lat", -100), ("Flat", 4)]  # B- then I- of one value


def test_tag_takes_a_span_student(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """`tagger tag --spans DIR`: retrieval picks the category, the student marks the values."""
    out, _ = trained
    title = "Crocs Women's Kadee Flat,Black,7 M US"
    command = [sys.executable, "-m", "tagger", "tag", "--title", title, "-t", OA_TAXONOMY, "--spans", str(out)]
    env = {**os.environ, "TAGGER_THREADS": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=300)
    record = json.loads(done.stdout)
    assert record["category"]["id"] == "shoes"
    marked = {e["attribute"]: e for e in record["evidence"] if e["decided"] == "student"}
    assert marked["brand"]["value"] == "Crocs" == record["attributes"]["brand"][0]
    assert marked["brand"]["spans"] == [{"field": "title", "start": 0, "end": 5, "text": "Crocs"}]


def test_the_epoch_with_the_best_held_out_f1_is_kept(tmp_path: Path) -> None:
    """With a held-out share, each epoch's values there are decoded and scored; the best epoch's weights are saved."""
    from tagger.train.spans import SpanSettings, train_spans

    taxonomy = load_taxonomy(OA_TAXONOMY)
    pool = read_pool(OA_MINE, taxonomy)
    settings = SpanSettings(
        epochs=4, learning_rate=1e-3, batch_size=8, validation=0.3, patience=4, members=1, min_labels=1
    )
    report = train_spans(pool.items, taxonomy, tmp_path / "s", settings, model_folder(), pool.sha256)
    assert (report.train, report.validation) == (21, 9)
    (member,) = report.members
    f1s = [epoch["validation_f1"] for epoch in member.history]
    assert len(f1s) == 4 and all(0 <= f1 <= 1 for f1 in f1s)
    assert f1s[member.best_epoch - 1] == max(f1s) > 0  # it learns something in 4 epochs, and keeps the best
    student = SpanStudent(tmp_path / "s")
    assert student.threshold == 0.5
    # Its confidence is fitted on the values it writes on the 9 products held out of its training (the first 9 of
    # the seeded order), scored against their gold; every value it writes carries it.
    cleaner = Cleaner()
    points = []
    for index in shuffled_order(len(pool.items), settings.seed)[:9]:
        item = pool.items[index]
        product = cleaner.clean(item.product).product
        for evidence in student.find(product, item.category, taxonomy.attributes_for(item.category.id)):
            assert student.calibration is not None and evidence.score is not None
            assert evidence.confidence == round(student.calibration.probability(evidence.score), 4)
            gold = {normalize(v) for v in item.attributes.get(evidence.attribute, [])}
            points.append(normalize(evidence.value) in gold)
    assert student.calibration is not None and report.calibration_values == student.calibration.n == len(points) > 0
    assert report.calibration_precision == round(sum(points) / len(points), 4)
    # Without its calibration it is another student (the records' confidences differ), whose values have none.
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "s", bare)
    facts = json.loads((bare / "labels.json").read_text())
    del facts["calibration"]
    (bare / "labels.json").write_text(json.dumps(facts))
    uncalibrated = SpanStudent(bare)
    assert uncalibrated.calibration is None and uncalibrated.name.split("@")[1] != student.name.split("@")[1]
    item = pool.items[0]
    found = uncalibrated.find(
        cleaner.clean(item.product).product, item.category, taxonomy.attributes_for(item.category.id)
    )
    assert found and all(evidence.confidence is None for evidence in found)


def test_distill_can_train_a_span_student(tmp_path: Path) -> None:
    """`tagger distill --spans`: the teacher's evidenced labels train a span student instead of the chat model."""
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join((ROOT / "examples" / "catalog.jsonl").read_text().splitlines()[:6]) + "\n")
    out = tmp_path / "student"
    command = [sys.executable, "-m", "tagger", "distill", str(catalog), "-o", str(out), "--spans", "--validation", "0"]
    env = {**os.environ, "TAGGER_THREADS": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
    assert "teacher: 6 products labeled" in done.stderr
    pool = [json.loads(line) for line in (out / "teacher-pool.jsonl").read_text().splitlines()]
    facts = json.loads((out / "training.json").read_text())
    assert facts["train"] == len(pool) == 6 and facts["values_marked"] > 0
    student = SpanStudent(out)
    assert student.pool_sha256 and "brand" in {label[2:] for label in student.labels if label != "O"}
