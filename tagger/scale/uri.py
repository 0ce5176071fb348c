"""Catalogs in object stores (s3://, gs://, abfs://, hdfs://, file://...): opened through pyarrow's filesystems, the
ones Ray Data reads with, and read by tagger's own readers, so that every row is parsed, numbered and rejected as in a
local file. Credentials come from the environment, as for pyarrow (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from tagger.io import Row, detect_format
from tagger.io.sources import InputError, parquet_rows, stream_rows
from tagger.product import Columns


def is_uri(source: str | Path) -> bool:
    return "://" in str(source)


def read_uri_rows(uri: str, fmt: str | None = None, columns: Columns | None = None) -> Iterator[Row]:
    """Every row of the catalog at `uri`, in order, as `tagger.io.read_rows` reads a local file."""
    import pyarrow.fs

    fmt = detect_format(uri, fmt)
    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
        # Parquet needs random access; the text formats are streamed.
        opened = filesystem.open_input_file(path) if fmt == "parquet" else filesystem.open_input_stream(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors for a missing object, a bad scheme, no credentials
        raise InputError(f"cannot open {uri}: {exc}") from exc
    with opened:
        if fmt == "parquet":
            yield from parquet_rows(uri, columns or Columns(), opened)
        else:
            yield from stream_rows(io.BufferedReader(opened), fmt, columns or Columns())
