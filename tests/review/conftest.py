"""Review fixtures: a catalog (the sample catalog, an XSS product) and a tagger output for it, whose records carry
the gold tags of examples/catalog.jsonl with one wrong value planted, varied confidences and evidence, warnings, and
two unreadable lines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tagger.records import CategoryRef, Evidence, Provenance, Span, TagRecord, to_json_line
from tagger.review.store import ReviewStore, store_path
from tagger.taxonomy import Taxonomy, load_taxonomy

ROOT = Path(__file__).resolve().parents[2]
XSS_ID = "xss-<script>window.pwned=1</script>"
XSS_TITLE = "<script>window.pwned=2</script> Steel kettle <img src=x onerror=window.pwned=3>"


@dataclass(frozen=True)
class ReviewFiles:
    catalog: Path
    output: Path
    taxonomy: Taxonomy

    @property
    def store(self) -> Path:
        return store_path(self.output)


def write_review_files(folder: Path, taxonomy: Taxonomy) -> ReviewFiles:
    rows = [json.loads(line) for line in (ROOT / "examples" / "catalog.jsonl").read_text().splitlines() if line]
    rows.append(
        {"id": XSS_ID, "title": XSS_TITLE, "description": "<b>bold</b> & more", "brand": "Brew<i>master</i>",
         "gold": {"category": "kitchen-appliances", "attributes": {}}}
    )  # fmt: skip
    provenance = Provenance(
        model="m", backend="llamacpp", template="default", template_hash="h", taxonomy=taxonomy.name,
        taxonomy_version=taxonomy.version, tagger_version="0.1.0", decoding={}, cleaning="off",
    )  # fmt: skip
    catalog, output = folder / "catalog.jsonl", folder / "tagged.jsonl"
    with catalog.open("w") as cat, output.open("w") as out:
        for i, row in enumerate(rows):
            cat.write(json.dumps(row) + "\n")
            out.write(to_json_line(_record(row, i, taxonomy, provenance)))
            if i == 4:
                out.write('{"id": "cut-off", "category": {"id": \n')  # a half-written line
                out.write("<script>window.pwned=4</script>\n")
    return ReviewFiles(catalog, output, taxonomy)


def _record(row: dict[str, Any], i: int, taxonomy: Taxonomy, provenance: Provenance) -> TagRecord:
    gold = row["gold"]
    attributes = {h: list(v) for h, v in gold["attributes"].items()}
    if row["id"] == "sku-001":
        attributes["color"] = ["Black"]  # the model's mistake a reviewer fixes (gold: Navy)
    evidence = []
    for handle, values in attributes.items():
        for value in values:
            at = row["title"].lower().find(value.lower())
            spans = [Span(field="title", start=at, end=at + len(value), text=row["title"][at : at + len(value)])]
            confidence = round(0.5 + (i % 5) / 10, 2) if i % 3 else None
            source = "text" if at >= 0 else "inferred"
            evidence.append(Evidence(attribute=handle, value=value, source=source, spans=spans if at >= 0 else [],
                                     confidence=confidence))  # fmt: skip
    category = taxonomy.categories[gold["category"]]
    confidence = None if i % 2 else round(0.2 + i / 50, 2)
    return TagRecord(
        id=row["id"],
        category=CategoryRef(id=category.id, path=list(category.path), confidence=confidence),
        attributes=attributes,
        evidence=evidence,
        warnings=["color: 'Teal' is not allowed"] if i % 4 == 0 else [],
        provenance=provenance,
    )


class Server:
    """`tagger review` in its own process, on a free loopback port."""

    def __init__(self, files: ReviewFiles, *extra: str) -> None:
        command = [sys.executable, "-m", "tagger", "review", str(files.output), "--input", str(files.catalog),
                   "--no-clean", "--port", "0", "--reviewer", "ann", *extra]  # fmt: skip
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.url = self._address()

    def _address(self) -> str:
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(60)
        match = re.search(r"(http://\S+)", found[0] if found else "")
        if match is None:
            self.stop()
            raise RuntimeError(f"the server printed no address: {found} {self.process.stderr.read()}")  # type: ignore[union-attr]
        return match.group(1)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture
def files(tmp_path: Path, taxonomy: Taxonomy) -> ReviewFiles:
    return write_review_files(tmp_path, taxonomy)


@pytest.fixture
def store(files: ReviewFiles) -> Iterator[ReviewStore]:
    opened = ReviewStore(files.store)
    opened.load_output(files.output)
    yield opened
    opened.close()
