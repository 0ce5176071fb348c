"""An eval is a versioned YAML file in evals/: dataset and gold mapping, taxonomy, template, backend, sample, metrics,
and the gate (floors, and tolerances against a committed baseline results file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tagger.build import DEFAULT_EXAMPLE_K, DEFAULT_SHORTLIST

DATA_ROOT_ENV = "TAGGER_DATA_ROOT"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CategoryGold(_Strict):
    field: str  # a key of the row; dots walk into objects (gold.category)
    kind: Literal["id", "path", "shopify"]  # a taxonomy id, a list of names, or {gid, path, fit}


class AttributeGold(_Strict):
    field: str = "attributes"  # {name: [accepted values]}
    map: dict[str, str] | None = None  # dataset name -> taxonomy handle; None: matched as `by` says
    by: Literal["handle", "name"] = "handle"  # without a map: dataset names are handles, or attribute names
    values: dict[str, dict[str, str]] = Field(default_factory=dict)  # handle -> {dataset value: taxonomy value}


class DatasetConfig(_Strict):
    path: str  # relative to the data root, or absolute
    fields: list[str] = Field(default_factory=lambda: ["brand"])
    category: CategoryGold | None = None
    attributes: AttributeGold | None = None


class BackendConfig(_Strict):
    name: str = "llamacpp"  # a tagger backend (tagger.backends.BACKENDS), or "minilm": the retrieval baseline alone
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # the backend's typed options


class ExamplesConfig(_Strict):
    k: int = DEFAULT_EXAMPLE_K
    pool: str | None = None  # a labeled JSONL (see tagger.retrieval.examples); None: every row of this dataset


class PipelineConfig(_Strict):
    """How the category is narrowed before the model chooses (issue 6's variants)."""

    shortlist: int = DEFAULT_SHORTLIST  # as tagger.build.Narrowing: 1 retrieval decides, 0 the flat enum, K the model
    examples: ExamplesConfig | None = None  # few-shot examples retrieved from a labeled pool
    tree: bool = False  # choose level by level down the taxonomy (alone: not with a shortlist or examples)
    attributes: Literal["evidence", "model"] = "evidence"  # as tagger.build.TaggerSpec.attributes
    judge: bool = True  # as tagger.build.TaggerSpec.judge: with a pool, its judge decides the values
    spans: str | None = None  # as --spans: a span student's folder ("{data_root}" replaced; relative to this YAML)


class SampleConfig(_Strict):
    size: int | None = None  # None: every row
    seed: int = 0


class Threshold(_Strict):
    min: float | None = None  # fail below this (above it for lower-is-better metrics: use max)
    max: float | None = None
    tolerance: float | None = None  # fail when worse than the baseline by more than this


class EvalConfig(_Strict):
    name: str
    version: int
    description: str = ""
    dataset: DatasetConfig
    taxonomy: str | None = None  # as --taxonomy; "{data_root}" is replaced; a relative file is read beside this YAML
    template: str | None = None
    backend: BackendConfig = Field(default_factory=BackendConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    given_category: bool = False  # attributes are generated for the gold category (attribute extraction evals)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    metrics: list[str]
    gate: dict[str, Threshold] = Field(default_factory=dict)
    baseline: str | None = None  # a results.json beside this YAML
    compare_minilm: bool = False  # also run the MiniLM nearest-category baseline on the same sample
    source: Path | None = Field(default=None, exclude=True)

    def resolve(self, text: str, data_root: Path) -> str:
        """A path option of this eval: {data_root} filled in, relative files taken beside the YAML file."""
        text = text.replace("{data_root}", str(data_root))
        kind, sep, _ = text.partition(":")
        if sep and kind in ("shopify", "google"):
            return text
        path = Path(text)
        if not path.is_absolute() and self.source is not None and (self.source.parent / path).exists():
            return str(self.source.parent / path)
        return text


def load_config(path: Path) -> EvalConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = EvalConfig.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"eval config {path}: {exc}") from exc
    config.source = path
    unmeasured = [name for name in config.gate if name not in config.metrics]
    if unmeasured:
        raise ValueError(f"eval config {path}: the gate names metrics that `metrics` does not list: {unmeasured}")
    from tagger.evals.metrics import compute

    try:
        compute(config.metrics, [])
    except KeyError as exc:
        raise ValueError(f"eval config {path}: {exc.args[0]}") from exc
    return config


def default_data_root() -> Path:
    """$TAGGER_DATA_ROOT, else ../shared/data from the working directory, else beside this checkout."""
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    candidates = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])
