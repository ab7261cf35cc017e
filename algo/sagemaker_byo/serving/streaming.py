"""Large CSV and JSON Lines bodies, scored in chunks of whole lines (asynchronous inference).

An asynchronous endpoint sends bodies up to 1 GB to the same /invocations. Read whole, such a
body costs a worker many times its size (the bytes, the decoded rows, the predictions, the
answer). Instead, the body is read from the socket a chunk of lines at a time, each chunk goes
through the same hooks as a small request (input_fn, predict_fn, output_fn, with the same
counting), and the answers are written to a temporary file. Only when every chunk is answered is
the file sent, so the request is still answered whole or refused whole (a 400 naming the row,
counted from the start of the body) and never half. A worker's memory grows by what one chunk
needs, whatever the size of the body.

A cut falls only at a line end, never inside a quoted CSV field (which may hold line ends), and
leaves a non-blank line on both sides, so a chunk is never a body of only blank lines (which a
whole body may not be either) while blank lines stay rows wherever they fall.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import BadRequest

READ_BYTES = 1024 * 1024
STREAMED_TYPES = ("text/csv", "application/jsonlines", "application/x-jsonlines")
_TEXT = re.compile(rb"[^ \t\r\n]")  # a byte that makes a line not blank
_ROW_NUMBER = re.compile(r"\b(row|rows|line|Row|Line) (\d+)")


def _cut(buffer: bytearray, at_least: int, csv: bool) -> int | None:
    """The end of the first chunk of `buffer` of `at_least` bytes or more that ends at a line end
    outside quotes and leaves text on both sides; None if the buffer holds no such place yet."""
    first_text = _TEXT.search(buffer)
    if first_text is None:
        return None
    start = at_least - 1  # a line end at or after this index makes a chunk of at_least bytes
    quotes = buffer.count(b'"', 0, start) if csv else 0
    while (newline := buffer.find(b"\n", start)) >= 0:
        end = newline + 1
        if csv:
            quotes += buffer.count(b'"', start, end)
        if quotes % 2 == 0 and first_text.start() < end and _TEXT.search(buffer, end):
            return end
        start = end
    return None


def chunks(stream: BinaryIO, length: int, chunk_bytes: int, csv: bool) -> Iterator[bytes]:
    """The `length` bytes of `stream` as chunks of whole lines of about `chunk_bytes` each."""
    buffer = bytearray()
    remaining = length
    while remaining > 0:
        block = stream.read(min(READ_BYTES, remaining))
        if not block:
            raise BadRequest(f"the body ended after {length - remaining} of its {length} bytes")
        remaining -= len(block)
        buffer += block
        while len(buffer) > chunk_bytes:
            end = _cut(buffer, chunk_bytes, csv)
            if end is None:
                break
            yield bytes(buffer[:end])
            del buffer[:end]
    if buffer:
        yield bytes(buffer)


def renumber(message: str, first_row: int) -> str:
    """A chunk's message with its row numbers counted from the start of the body."""
    if not first_row:
        return message
    return _ROW_NUMBER.sub(lambda m: f"{m.group(1)} {int(m.group(2)) + first_row}", message)


class Answers:
    """The answers of every chunk, in order, in a temporary file (in memory up to a few MB)."""

    def __init__(self, spool_bytes: int = 4 * 1024 * 1024) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=spool_bytes)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(0)
        try:
            while block := self.file.read(READ_BYTES):
                yield block
        finally:
            self.file.close()

    def close(self) -> None:
        self.file.close()
