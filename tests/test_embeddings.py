"""MiniLM embeddings from tagger's own numpy encoder: the same vectors as sentence-transformers, without torch."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tagger.retrieval.embeddings import RUNTIME, CategoryIndex, Embedder, model_folder
from tagger.retrieval.minilm import BertEncoder, UnsupportedModel, read_safetensors
from tagger.taxonomy import Taxonomy
from tests.conftest import ROOT

# Vectors sentence-transformers computed for these texts from the same weights (tests/fixtures/README.md).
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_vectors_match_sentence_transformers(embedder: Embedder) -> None:
    vectors = embedder.encode(REFERENCE["texts"])
    reference = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape == (len(REFERENCE["texts"]), 384)
    cosine = np.sum(vectors * reference, axis=1)
    assert cosine.min() >= 0.9999, cosine  # the long text is cut at 256 tokens, as sentence-transformers cuts it
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_a_vector(embedder: Embedder) -> None:
    """Texts are sorted by length and padded per batch: a text's vector must not depend on its neighbours."""
    alone = np.concatenate([embedder.encode([t]) for t in REFERENCE["texts"]])
    together = embedder.encode(REFERENCE["texts"])
    assert np.abs(alone - together).max() < 1e-5
    assert embedder.encode([]).shape == (0, 384)


def test_the_runtime_imports_neither_torch_nor_sentence_transformers() -> None:
    code = (
        "import sys; from tagger.retrieval import Embedder; Embedder().encode(['a kettle']); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""  # no load chatter or progress bar


def test_cached_category_vectors_are_keyed_by_the_runtime(
    embedder: Embedder, default_taxonomy: Taxonomy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index written by another runtime (sentence-transformers before) is not read back as this one's."""
    monkeypatch.setenv("TAGGER_CACHE_DIR", str(tmp_path))
    first = CategoryIndex(default_taxonomy, embedder)
    files = sorted((tmp_path / "embeddings").glob("*.npy"))
    assert len(files) == 1 and np.array_equal(np.load(files[0]), first.vectors)
    assert CategoryIndex(default_taxonomy, embedder).vectors.shape == first.vectors.shape  # read back, not re-made
    assert sorted((tmp_path / "embeddings").glob("*.npy")) == files
    monkeypatch.setattr("tagger.retrieval.embeddings.RUNTIME", RUNTIME + "-other")
    CategoryIndex(default_taxonomy, embedder)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[array.dtype]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def test_safetensors_are_read_exactly(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    b = np.array([0.5, -1.25, 3.0], dtype=np.float16)
    _write_safetensors(tmp_path / "t.safetensors", {"a": a, "b": b})
    read = read_safetensors(tmp_path / "t.safetensors")
    assert np.array_equal(read["a"], a)
    assert read["b"].dtype == np.float32 and np.array_equal(read["b"], b.astype(np.float32))


def test_a_model_it_cannot_compute_is_refused_by_name(tmp_path: Path) -> None:
    source = model_folder()
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_text((source / name).read_text())
    config = json.loads((source / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"hidden_act": "relu"}))
    with pytest.raises(UnsupportedModel, match="hidden_act 'relu'"):
        BertEncoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(UnsupportedModel, match="only mean pooling"):
        BertEncoder(tmp_path)
