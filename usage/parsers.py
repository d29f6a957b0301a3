"""Streaming readers of usage batches: JSON array, NDJSON and CSV.

Each reader takes a binary file-like object (``read(n)``) and yields ``(row, line, fields)``
one record at a time: ``row`` is the 1-based ordinal of the record, ``line`` its physical line
in the body (None in a JSON array, where a record may span lines) and ``fields`` a mapping of
field name to the raw value. Nothing reads the whole body: memory stays flat as it grows.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from itertools import count, repeat
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


# --- CSV straight into COPY -------------------------------------------------------------------
#
# The CSV reader above costs a Python call per field. ``CsvCopyFeed`` instead hands the body to
# PostgreSQL's COPY (FORMAT csv) almost as it came: it only cuts the stream at record
# boundaries and puts two columns in front of each record, its row number and its physical line
# (for the error report). A stretch of records with no quote, no stray carriage return and the
# header's number of commas on every line goes through in a few C-level operations (split,
# count, one formatted join); anything else (quoted fields, blank lines, a short line) goes
# through the ``csv`` module for that stretch only, with the very rules and messages of
# ``read_csv``.

UTF8_BOM = b"\xef\xbb\xbf"
# A quoted field may hold line breaks, so a record can span chunks; one that never closes its
# quote would otherwise make the feed hold the rest of the body.
MAX_RECORD_BYTES = 1024 * 1024
_PREFIXED = b"%d,%d,%b\n"


class CsvCopyFeed:
    """A CSV body as COPY ``FORMAT csv`` data: ``row_no,line_no,`` then the record's fields.

    ``header`` (the stripped column names, None for an empty body) is read on creation;
    iterating yields the data as bytes, one chunk per chunk of the body; ``rows`` counts the
    records so far. Raises ``BatchFormatError`` for a malformed body, like ``read_csv``.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.rows = 0
        self.lines = 0  # physical lines before the pending bytes
        self.pending = b""
        self.eof = False
        self.header: list[str] | None = None
        self._read_header()

    def _fill(self) -> bool:
        chunk = self.stream.read(CHUNK_SIZE)
        if not chunk:
            self.eof = True
            return False
        if not self.lines and not self.pending and chunk.startswith(UTF8_BOM):
            chunk = chunk[len(UTF8_BOM) :]
        self.pending += chunk
        return True

    def _read_header(self) -> None:
        while True:
            segment = self._take(final=self.eof)
            if segment is None:
                if self.eof:
                    return
                self._fill()
                continue
            lines = _decode(segment, first_line=self.lines + 1).split("\n")
            reader = csv.reader(lines)
            try:
                values = next(reader, None)
            except csv.Error as exc:
                raise BatchFormatError(f"The CSV header is malformed: {exc}.", line=1) from None
            if values is None:  # only blank lines so far
                self.lines += len(lines)
                continue
            self.header = [name.strip() for name in values]
            consumed = reader.line_num
            self.lines += consumed
            if consumed < len(lines):
                self.pending = "\n".join(lines[consumed:]).encode() + b"\n" + self.pending
            return

    def _take(self, *, final: bool) -> bytes | None:
        """The longest run of complete records at the start of the pending bytes (without its
        last newline), or None when no record is complete yet."""
        data = self.pending
        if final:
            self.pending = b""
            return data or None
        cut = data.rfind(b"\n")
        if cut < 0:
            self._bound(data)
            return None
        segment = data[:cut]
        if b'"' in segment and segment.count(b'"') % 2:
            # The last newline is inside a quoted field: cut at the last one outside quotes.
            cut = _last_newline_outside_quotes(segment)
            if cut < 0:
                self._bound(data)
                return None
            segment = data[:cut]
        self.pending = data[cut + 1 :]
        return segment

    def _bound(self, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise BatchFormatError(
                f"The record after line {self.lines} runs over {MAX_RECORD_BYTES} bytes "
                "(a quote that is never closed?).",
                line=self.lines + 1,
            )

    def __iter__(self) -> Iterator[bytes]:
        if self.header is None:
            return
        while True:
            more = not self.eof and self._fill()
            segment = self._take(final=not more)
            if segment is not None:
                data = self._convert(segment)
                if data:
                    yield data
            if not more:
                return

    def _convert(self, segment: bytes) -> bytes:
        if b"\r" in segment:
            segment = segment.replace(b"\r\n", b"\n")
            if segment.endswith(b"\r"):
                segment = segment[:-1]
        if not segment.isascii():
            _decode(segment, first_line=self.lines + 1)  # PostgreSQL's error would name no line
        lines = segment.split(b"\n")
        commas = len(self.header) - 1
        if (
            commas
            and b'"' not in segment
            and b"\x00" not in segment
            and b"\r" not in segment
            and segment.count(b",") == commas * len(lines)
            and min(map(bytes.count, lines, repeat(b","))) == commas
        ):
            first_row, first_line = self.rows + 1, self.lines + 1
            self.rows += len(lines)
            self.lines += len(lines)
            return b"".join(map(_PREFIXED.__mod__, zip(count(first_row), count(first_line), lines)))
        return self._convert_slowly(segment, lines)

    def _convert_slowly(self, segment: bytes, lines: list[bytes]) -> bytes:
        """The stretch through the csv module: the rules and messages of ``read_csv``."""
        text_lines = _decode(segment, first_line=self.lines + 1).split("\n")
        reader = csv.reader(text_lines)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        base = self.lines
        try:
            for values in reader:
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue
                line_no = base + reader.line_num
                if len(values) != len(self.header):
                    raise BatchFormatError(
                        f"Line {line_no} has {len(values)} columns, the header {len(self.header)}.",
                        line=line_no,
                    )
                self.rows += 1
                writer.writerow([self.rows, line_no, *values])
        except csv.Error as exc:
            line_no = base + reader.line_num
            raise BatchFormatError(f"Line {line_no}: {exc}.", line=line_no) from None
        self.lines = base + len(text_lines)
        return out.getvalue().encode()


def _decode(data: bytes, *, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise BatchFormatError(f"The body is not UTF-8 (line {line}).", line=line) from None


def _last_newline_outside_quotes(segment: bytes) -> int:
    quotes = 0
    last = -1
    start = 0
    while True:
        end = segment.find(b"\n", start)
        if end < 0:
            return last
        quotes += segment.count(b'"', start, end)
        if not quotes % 2:
            last = end
        start = end + 1
