"""Large bodies cut into chunks of whole lines: every byte in exactly one chunk, in order; cuts
only at line ends outside quotes, never leaving a chunk (or the rest) of only blank lines."""

from __future__ import annotations

import csv
import io
import random

import pytest

from sagemaker_byo.errors import BadRequest
from sagemaker_byo.serving import streaming


def cut(body: bytes, chunk_bytes: int, csv_quotes: bool = True, read: int | None = None) -> list[bytes]:
    stream = io.BytesIO(body)
    if read is not None:  # a socket gives fewer bytes than asked for
        original = stream.read
        stream.read = lambda n=-1: original(min(n, read))
    return list(streaming.chunks(stream, len(body), chunk_bytes, csv_quotes))


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def random_body(rng: random.Random, rows: int) -> bytes:
    lines = []
    for _ in range(rows):
        kind = rng.random()
        if kind < 0.1:
            lines.append("")
        elif kind < 0.15:
            lines.append(",,,")
        elif kind < 0.3:
            lines.append(f'"a, ""quoted""\nline {rng.randint(0, 9)}",1')
        else:
            lines.append(",".join(f"{rng.random():.3f}" for _ in range(4)))
    return ("\n".join(lines) + ("\n" if rng.random() < 0.5 else "")).encode()


@pytest.mark.parametrize("seed", range(30))
def test_chunks_join_to_the_body_and_each_is_whole_csv_rows_with_text(seed):
    rng = random.Random(seed)
    body = random_body(rng, rng.randint(1, 400))
    chunk_bytes = rng.choice([16, 64, 200, 1000])
    chunks = cut(body, chunk_bytes, read=rng.choice([None, 7, 100]))
    assert b"".join(chunks) == body
    assert sum(len(csv_rows(c)) for c in chunks) == len(csv_rows(body))
    for chunk in chunks:
        assert chunk.strip(b" \t\r\n"), "a chunk of only blank lines"
    for chunk in chunks[:-1]:
        assert chunk.endswith(b"\n") and len(chunk) >= chunk_bytes
        assert chunk.count(b'"') % 2 == 0


def test_a_quoted_line_end_is_never_a_cut():
    body = b'"one\ntwo\nthree\nfour",1\n' * 50
    for chunk in cut(body, 10):
        assert chunk.count(b'"') % 2 == 0
        assert all(len(row) == 2 for row in csv_rows(chunk))


def test_json_lines_quotes_do_not_hold_a_cut_back():
    body = b'["a \\" b", 1]\n' * 100
    chunks = cut(body, 50, csv_quotes=False)
    assert len(chunks) > 10
    assert all(c.count(b"\n") >= 1 for c in chunks)


def test_blank_lines_at_the_end_stay_with_the_last_rows():
    body = b"1,2\n" * 20 + b"\n" * 100
    chunks = cut(body, 8)
    assert b"".join(chunks) == body
    assert chunks[-1].strip()


def test_a_run_of_blank_lines_longer_than_a_chunk_is_not_a_chunk_of_its_own():
    body = b"1,2\n" + b"\n" * 1000 + b"3,4\n"
    chunks = cut(body, 100)
    assert all(c.strip() for c in chunks)
    assert b"".join(chunks) == body


def test_a_body_shorter_than_its_length_is_a_400():
    with pytest.raises(BadRequest, match="ended after 4 of its 10 bytes"):
        list(streaming.chunks(io.BytesIO(b"1,2\n"), 10, 2, True))


@pytest.mark.parametrize(("message", "first_row", "expected"), [
    ("row 3, column 2 is missing; this model needs a value there", 1000,
     "row 1003, column 2 is missing; this model needs a value there"),
    ("CSV row 4 has 5 values but row 1 has 4", 10, "CSV row 14 has 5 values but row 11 has 4"),
    ("JSON Lines line 2 is not JSON", 5, "JSON Lines line 7 is not JSON"),
    ("row 3 is bad", 0, "row 3 is bad"),
])
def test_row_numbers_are_counted_from_the_start_of_the_body(message, first_row, expected):
    assert streaming.renumber(message, first_row) == expected


def test_answers_come_back_in_order_and_say_their_size():
    answers = streaming.Answers(spool_bytes=10)
    for part in (b"a\n", b"b\nc\n", b"d" * 100 + b"\n"):
        answers.write(part)
    assert answers.size == 107
    assert b"".join(answers) == b"a\nb\nc\n" + b"d" * 100 + b"\n"
