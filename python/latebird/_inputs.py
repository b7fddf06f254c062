"""Streaming readers of the CLI's inputs: plain text, JSONL and Parquet.

Each source yields `(id, text)` pairs one at a time and never holds the whole input. A file
can be scanned first (`scan`): one pass that checks every record (so that bad input is an
error before any output is written) and returns the number of texts and the SHA-256 of the
file (the input's identity in a resumable output's manifest). Standard input (`-`) cannot
be read twice: it is checked as it is encoded.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


class InputError(Exception):
    """Bad input file or argument: exit code 2."""


PARQUET_EXTRA = "pip install 'latebird[parquet]'"


def require_pyarrow(why: str) -> Any:
    """Imports pyarrow (an optional extra), or says which extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise InputError(f"{why} needs pyarrow, which is not installed: {PARQUET_EXTRA}") from None
    return pyarrow


def check_column_texts(texts: list[Any], column: str) -> None:
    """A batch's `column` (Ray, Spark) holds strings only; else a TypeError naming the row."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"column {column!r}: row {i} of the batch is {type(text).__name__}; "
                "expected a string"
            )


@dataclass
class Scan:
    count: int
    sha256: str


def detect_format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    return "text"


def open_source(path: str, fmt: str, field: str, id_field: str) -> Source:
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return ParquetSource(path, field, id_field)
    return LineSource(path, fmt, field, id_field)


class Source:
    path: str

    def scan(self) -> Scan:
        raise NotImplementedError

    def records(self) -> Iterator[tuple[Any, str]]:
        raise NotImplementedError


def _check_unicode(text: str, where: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            f"{where}: field {field!r} has a lone surrogate at character {e.start}; "
            "expected valid Unicode text"
        ) from None


class LineSource(Source):
    """One text per line (blank lines skipped; ids 0, 1, ...) or one JSON object per line
    (the text in `field`, the id in `id_field` if present, else the text's index). Lines end
    at `\\n`; a text line is split further as `str.splitlines` splits it."""

    def __init__(self, path: str, fmt: str, field: str, id_field: str) -> None:
        self.path = path
        self.fmt = fmt
        self.field = field
        self.id_field = id_field

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except OSError as e:
            raise InputError(f"{self.path}: {e.strerror or e}") from None

    def _parse(self, digest: Any = None) -> Iterator[tuple[Any, str]]:
        f = self._open()
        offset = 0
        count = 0
        try:
            for number, raw in enumerate(f, start=1):
                if digest is not None:
                    digest.update(raw)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(
                        f"{self.path}: not UTF-8 text ({e.reason} at byte {offset + e.start})"
                    ) from None
                offset += len(raw)
                if self.fmt == "text":
                    for text in line.splitlines():
                        if text.strip():
                            yield count, text
                            count += 1
                    continue
                if not line.strip():
                    continue
                yield self._record(line, number, count)
                count += 1
        except OSError as e:
            raise InputError(f"{self.path}: {e.strerror or e}") from None
        finally:
            if f is not sys.stdin.buffer:
                f.close()
        if count == 0:
            raise InputError(f"{self.path}: no texts (empty file or only blank lines)")

    def _record(self, line: str, number: int, index: int) -> tuple[Any, str]:
        where = f"{self.path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: invalid JSON: {e.msg}") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if self.field not in record:
            keys = ", ".join(sorted(record)) or "none"
            raise InputError(f"{where}: no field {self.field!r} (fields: {keys}); see --field")
        text = record[self.field]
        if not isinstance(text, str):
            raise InputError(
                f"{where}: field {self.field!r} is {type(text).__name__}; expected a string"
            )
        _check_unicode(text, where, self.field)
        return record.get(self.id_field, index), text

    def scan(self) -> Scan:
        digest = hashlib.sha256()
        count = sum(1 for _ in self._parse(digest))
        return Scan(count, digest.hexdigest())

    def records(self) -> Iterator[tuple[Any, str]]:
        return self._parse()


class ParquetSource(Source):
    """A Parquet file: the texts in column `field` (strings, no nulls), the ids in column
    `id_field` if the file has one (a null id is the row's index), else the row's index."""

    BATCH_ROWS = 4096

    def __init__(self, path: str, field: str, id_field: str) -> None:
        self.path = path
        self.field = field
        self.id_field = id_field

    def _open(self) -> Any:
        pa = require_pyarrow("Parquet input")
        if self.path == "-":
            raise InputError("Parquet input cannot be read from stdin; give a file name")
        try:
            parquet = pa.parquet.ParquetFile(self.path)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{self.path}: not a readable Parquet file ({e})") from None
        names = parquet.schema_arrow.names
        if self.field not in names:
            raise InputError(
                f"{self.path}: no column {self.field!r} (columns: {', '.join(names) or 'none'}); "
                "see --field"
            )
        kind = parquet.schema_arrow.field(self.field).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InputError(f"{self.path}: column {self.field!r} is {kind}; expected strings")
        return parquet

    def _columns(self, parquet: Any) -> list[str]:
        names = parquet.schema_arrow.names
        if self.id_field in names and self.id_field != self.field:
            return [self.field, self.id_field]
        return [self.field]

    def _batches(self, columns: list[str]) -> Iterator[Any]:
        parquet = self._open()
        pa = sys.modules["pyarrow"]
        try:
            yield from parquet.iter_batches(batch_size=self.BATCH_ROWS, columns=columns)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{self.path}: unreadable Parquet data ({e})") from None
        finally:
            parquet.close()

    def _null_error(self, row: int) -> InputError:
        where = f"{self.path}: row {row}"
        return InputError(f"{where}: field {self.field!r} is null; expected a string")

    def scan(self) -> Scan:
        count = 0
        for batch in self._batches([self.field]):
            column = batch.column(0)
            if column.null_count:
                first = column.is_null().to_pylist().index(True)
                raise self._null_error(count + first + 1)
            count += batch.num_rows
        if count == 0:
            raise InputError(f"{self.path}: no texts (no rows)")
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return Scan(count, digest.hexdigest())

    def records(self) -> Iterator[tuple[Any, str]]:
        parquet = self._open()
        columns = self._columns(parquet)
        parquet.close()
        row = 0
        for batch in self._batches(columns):
            texts = batch.column(0).to_pylist()
            ids = batch.column(1).to_pylist() if len(columns) == 2 else [None] * len(texts)
            for i, text in zip(ids, texts):
                if text is None:
                    raise self._null_error(row + 1)
                _check_unicode(text, f"{self.path}: row {row + 1}", self.field)
                yield (row if i is None else i), text
                row += 1
        if row == 0:
            raise InputError(f"{self.path}: no texts (no rows)")
