"""Catalog files in and out: JSONL, CSV and Parquet sources, a crash-safe JSONL journal, Parquet output, rejects."""

from tagger.io.sinks import ForeignOutputError, Journal, RejectsFile, finish_output, prepare_output
from tagger.io.sources import FORMATS, STDIN, Row, count_rows, detect_format, read_rows

__all__ = [
    "FORMATS",
    "STDIN",
    "ForeignOutputError",
    "Journal",
    "RejectsFile",
    "Row",
    "count_rows",
    "detect_format",
    "finish_output",
    "prepare_output",
    "read_rows",
]
