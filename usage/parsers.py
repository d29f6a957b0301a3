"""Streaming readers of usage batches: JSON array, NDJSON and CSV.

Each reader takes a binary file-like object (``read(n)``) and yields ``(row, line, fields)``
one record at a time: ``row`` is the 1-based ordinal of the record, ``line`` its physical line
in the body (None in a JSON array, where a record may span lines) and ``fields`` a mapping of
field name to the raw value. Nothing reads the whole body: memory stays flat as it grows.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, BinaryIO

import ijson

CHUNK_SIZE = 64 * 1024

CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}
FORMATS = ("json", "ndjson", "csv")

Row = tuple[int, int | None, Mapping[str, Any]]


class BatchFormatError(ValueError):
    """The body is not a well-formed batch in the declared format."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def format_for(content_type: str) -> str | None:
    """``json`` / ``ndjson`` / ``csv`` for a Content-Type (parameters ignored), or None."""
    media = content_type.split(";", 1)[0].strip().lower()
    return CONTENT_TYPES.get(media) or (media if media in FORMATS else None)


def iter_text_lines(stream: BinaryIO) -> Iterator[str]:
    """UTF-8 lines of a byte stream, read in chunks (a line is held, never the body)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            break
        try:
            text = pending + decoder.decode(chunk)
        except UnicodeDecodeError:
            raise BatchFormatError("The body is not UTF-8.") from None
        lines = text.split("\n")
        pending = lines.pop()
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def read_ndjson(stream: BinaryIO) -> Iterator[Row]:
    row = 0
    for line_no, line in enumerate(iter_text_lines(stream), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_float=Decimal)
        except ValueError:
            raise BatchFormatError(f"Line {line_no} is not JSON.", line=line_no) from None
        if not isinstance(value, dict):
            raise BatchFormatError(f"Line {line_no} is not a JSON object.", line=line_no)
        row += 1
        yield row, line_no, value


def read_csv(stream: BinaryIO) -> Iterator[Row]:
    reader = csv.reader(iter_text_lines(stream))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise BatchFormatError(f"The CSV header is malformed: {exc}.", line=1) from None
    row = 0
    try:
        for values in reader:
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            line_no = reader.line_num
            if len(values) != len(header):
                raise BatchFormatError(
                    f"Line {line_no} has {len(values)} columns, the header {len(header)}.",
                    line=line_no,
                )
            row += 1
            yield row, line_no, {k: v for k, v in zip(header, values, strict=True) if v != ""}
    except csv.Error as exc:
        raise BatchFormatError(f"Line {reader.line_num}: {exc}.", line=reader.line_num) from None


def read_json_array(stream: BinaryIO) -> Iterator[Row]:
    row = 0
    try:
        for value in ijson.items(stream, "item", use_float=False):
            row += 1
            if not isinstance(value, dict):
                raise BatchFormatError(f"Item {row} of the array is not a JSON object.")
            yield row, None, value
    except ijson.JSONError as exc:
        raise BatchFormatError(
            f"The body is not a JSON array of objects ({str(exc).splitlines()[0]})."
        ) from None


READERS = {"json": read_json_array, "ndjson": read_ndjson, "csv": read_csv}


def read_rows(stream: BinaryIO, fmt: str) -> Iterator[Row]:
    return READERS[fmt](stream)


class IterStream:
    """A read-only binary stream over an iterator of byte chunks (bodies generated on the
    fly: the demo data, tests that must not hold a body in memory)."""

    def __init__(self, chunks) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readline(self, size: int = -1) -> bytes:
        while b"\n" not in self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        end = self._pending.find(b"\n") + 1 or len(self._pending)
        if size >= 0:
            end = min(end, size)
        line, self._pending = self._pending[:end], self._pending[end:]
        return line
