"""Content-Type parsing and Accept negotiation with q-values."""

from __future__ import annotations

import pytest

from sagemaker_byo.errors import NotAcceptable
from sagemaker_byo.serving import media

CSV = ("text/csv",)
CSV_JSON = ("text/csv", "application/json")


@pytest.mark.parametrize(("header", "expected"), [
    ("text/csv", ("text/csv", {})),
    ("Text/CSV", ("text/csv", {})),
    ("text/csv; charset=utf-8", ("text/csv", {"charset": "utf-8"})),
    ("text/csv;charset=latin-1", ("text/csv", {"charset": "latin-1"})),
    ('text/csv; Charset="UTF-8"', ("text/csv", {"charset": "UTF-8"})),
    ("text/csv; charset=utf-8; header=absent", ("text/csv", {"charset": "utf-8", "header": "absent"})),
    ("  text/csv  ;  ", ("text/csv", {})),
    ("text/csv; charset", ("text/csv", {})),  # a parameter without a value is dropped
    ("", ("", {})),
])
def test_parse_splits_media_type_and_parameters(header, expected):
    assert media.parse(header) == expected


@pytest.mark.parametrize(("accept", "offered", "expected"), [
    (None, CSV, "text/csv"),
    ("", CSV, "text/csv"),
    ("   ", CSV, "text/csv"),
    ("*/*", CSV, "text/csv"),
    ("*", CSV, "text/csv"),
    ("*; q=.2", CSV, "text/csv"),  # what Java's HttpURLConnection sends
    ("text/*", CSV, "text/csv"),
    ("text/csv", CSV, "text/csv"),
    ("TEXT/CSV", CSV, "text/csv"),
    ("text/csv; charset=utf-8", CSV, "text/csv"),
    ("application/json, text/csv;q=0.5", CSV, "text/csv"),
    ("text/csv;q=2", CSV, "text/csv"),  # q above 1 is clamped, not refused
    ("application/json;q=0.5, text/csv", CSV_JSON, "text/csv"),
    ("text/csv;q=0.5, application/json", CSV_JSON, "application/json"),
    ("text/csv;q=0.5, application/json;q=0.5", CSV_JSON, "text/csv"),  # a tie keeps header order
    ("application/json;q=0.5, text/csv;q=0.5", CSV_JSON, "application/json"),
    ("*/*;q=0.9, application/json", CSV_JSON, "application/json"),
    ("*/*, application/json;q=0.9", CSV_JSON, "text/csv"),
    ("*/*", CSV_JSON, "text/csv"),  # a wildcard gets the default first
    ("application/*", CSV_JSON, "application/json"),
    ("text/csv;q=0, application/json;q=0.1", CSV_JSON, "application/json"),
    ("*/*;q=0.1, text/csv;q=0", CSV_JSON, "application/json"),  # q=0 refuses even under a wildcard
])
def test_negotiate_picks_the_most_preferred_offered_type(accept, offered, expected):
    assert media.negotiate(accept, offered, "text/csv") == expected


@pytest.mark.parametrize("accept", [
    "application/json",
    "application/json, application/x-npy",
    "application/*",
    "text/csv;q=0",
    "text/csv;q=0.000",
    "text/csv;q=0, */*",  # refused explicitly; the wildcard does not bring it back
    "*/*;q=0",
    "text/csv;q=abc",  # an unreadable q counts as 0
    "text/csv;q=-1, */*",
])
def test_unacceptable_accept_raises_406_naming_what_is_offered(accept):
    with pytest.raises(NotAcceptable) as raised:
        media.negotiate(accept, CSV, "text/csv")
    assert raised.value.status == 406
    assert str(raised.value) == f"cannot answer in {accept!r}; this model answers in text/csv"


def test_wildcard_with_q_zero_refuses_the_types_it_covers():
    with pytest.raises(NotAcceptable):
        media.negotiate("text/*;q=0, */*", CSV, "text/csv")


def test_missing_accept_gets_the_configured_default():
    assert media.negotiate(None, CSV_JSON, "application/json") == "application/json"
    assert media.negotiate("*/*", CSV_JSON, "application/json") == "application/json"
