"""A model's identity in provenance and the result cache is its file's content, not its file name: another GGUF under
the same name misses the cache, the same file (wherever it lies) hits it."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest

from tagger.backends.llamacpp import EMBEDDED_MODEL_FILE, LlamaCppBackend, embedded_model_path, model_identity
from tagger.cache import ResultCache, file_sha256
from tagger.pipeline import Tagger
from tagger.run import tag_catalog
from tagger.taxonomy import Taxonomy
from tests.conftest import SAMPLE_CATALOG

GGUF_STRING = 8  # the GGUF metadata value type of a string


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The digest memo lives under $TAGGER_CACHE_DIR: each test starts without one."""
    folder = tmp_path / "cache-dir"
    monkeypatch.setenv("TAGGER_CACHE_DIR", str(folder))
    monkeypatch.setenv("TAGGER_THREADS", "1")
    return folder


def _renamed_model(source: Path, target: Path) -> Path:
    """A second, distinct GGUF: the embedded one with one byte changed in its `general.name` metadata string."""
    data = bytearray(source.read_bytes())
    key = b"general.name"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    kind, length = struct.unpack_from("<IQ", data, at)
    assert kind == GGUF_STRING and length > 0
    data[at + 12] ^= 0x01  # the first character of the model's name, e.g. "S" -> "R"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    original = embedded_model_path()
    same = folder / "copy" / EMBEDDED_MODEL_FILE
    same.parent.mkdir()
    shutil.copyfile(original, same)
    return {
        "original": original,
        "same": same,
        "other": _renamed_model(original, folder / "other" / EMBEDDED_MODEL_FILE),
    }


def test_the_identity_is_the_name_and_the_content_digest(models: dict[str, Path]) -> None:
    digest = hashlib.sha256(models["original"].read_bytes()).hexdigest()  # independent of tagger's memo
    assert model_identity(models["original"]) == f"{EMBEDDED_MODEL_FILE}@sha256:{digest[:16]}"
    assert model_identity(models["same"]) == model_identity(models["original"])
    other = model_identity(models["other"])
    assert other.startswith(f"{EMBEDDED_MODEL_FILE}@sha256:") and other != model_identity(models["original"])


def test_the_digest_is_remembered_by_path_size_and_time(
    tmp_path: Path, private_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "weights.gguf"
    path.write_bytes(b"first content")
    reads: list[str] = []
    real = hashlib.file_digest

    def counting(handle: object, digest: str) -> object:
        reads.append(digest)
        return real(handle, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "file_digest", counting)
    first = file_sha256(path)
    assert first == hashlib.sha256(b"first content").hexdigest()
    assert file_sha256(path) == first and len(reads) == 1  # remembered: the file is not read again
    memo = json.loads((private_cache_dir / "digests" / "sha256.json").read_text())
    assert memo[str(path.resolve())]["sha256"] == first
    path.write_bytes(b"other content")  # a new size and a new modification time
    assert file_sha256(path) == hashlib.sha256(b"other content").hexdigest() and len(reads) == 2
    (private_cache_dir / "digests" / "sha256.json").write_text("not json")  # a broken memo is recomputed, not fatal
    assert file_sha256(path) == hashlib.sha256(b"other content").hexdigest() and len(reads) == 3


def test_a_different_file_with_the_same_name_misses_the_cache(
    tmp_path: Path, models: dict[str, Path], default_taxonomy: Taxonomy
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(SAMPLE_CATALOG.read_text().splitlines(keepends=True)[:1]))
    cache = ResultCache(tmp_path / "cache.sqlite")
    counts = {}
    try:
        for run, model in enumerate(["original", "same", "other", "original"]):
            backend = LlamaCppBackend(models[model])
            try:
                tagger = Tagger(default_taxonomy, backend)
                assert tagger.provenance.model == model_identity(models[model])
                summary = tag_catalog(tagger, source, tmp_path / f"out-{run}.jsonl", cache=cache)
            finally:
                backend.close()
            counts[run] = (model, summary.tagged, summary.generated)
    finally:
        cache.close()
    assert counts == {
        0: ("original", 1, 1),  # a cold cache: the model tags it
        1: ("same", 1, 0),  # the same content elsewhere: served from the cache
        2: ("other", 1, 1),  # same file name, other content: another model, so a miss
        3: ("original", 1, 0),  # the first model's entries are still there
    }
    scopes = ResultCache(tmp_path / "cache.sqlite")
    assert sorted(s.description["model"] for s in scopes.stats()) == sorted(
        {model_identity(models["original"]), model_identity(models["other"])}
    )
    scopes.close()


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model file not found: .*nope\.gguf"):
        LlamaCppBackend(tmp_path / "nope.gguf")


def test_without_a_writable_cache_folder_the_digest_is_still_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TAGGER_CACHE_DIR", str(blocker))  # cache_dir() cannot make folders under a file
    path = tmp_path / "weights.gguf"
    path.write_bytes(b"content")
    assert file_sha256(path) == hashlib.sha256(b"content").hexdigest()
