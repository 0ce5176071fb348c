"""Output records: one JSON line per input product, a tag record or an error record."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CategoryRef(BaseModel):
    id: str
    path: list[str]


class Provenance(BaseModel):
    """What made a record, so that any tag can be traced and reproduced."""

    model: str
    backend: str
    template: str
    template_hash: str
    taxonomy: str
    taxonomy_version: str
    tagger_version: str
    decoding: dict[str, float | int]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.seconds = round(self.seconds + seconds, 4)


class TagRecord(BaseModel):
    id: str
    category: CategoryRef
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    provenance: Provenance


class ErrorInfo(BaseModel):
    kind: str
    message: str


class ErrorRecord(BaseModel):
    id: str | None
    row: int | None = None
    error: ErrorInfo


Record = TagRecord | ErrorRecord


def to_json_line(record: Record) -> str:
    return record.model_dump_json() + "\n"
