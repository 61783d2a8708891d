"""The bounds at the edge, value by value."""

from __future__ import annotations

import io

import pytest

from campaigns import bounds
from campaigns.bounds import RowInvalid


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [("499.00", "EUR", "499.00"), ("499", "EUR", "499"), (499, "EUR", "499"), ("007", "EUR", "7"),
     ("1.5000", "EUR", "1.5000"), ("1000", "JPY", "1000"), ("1.250", "BHD", "1.250"),
     ("1e3", "EUR", "1E+3"), ("999999999.99", "EUR", "999999999.99")],
)  # fmt: skip
def test_amounts_in_bounds(value: object, currency: str, expected: str) -> None:
    assert bounds.amount(value, "price", currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [("", "EUR"), (".", "EUR"), ("-1", "EUR"), ("1.999", "EUR"), ("1.5", "JPY"), ("NaN", "EUR"),
     ("Infinity", "EUR"), ("1000000000.01", "EUR"), (True, "EUR"), ([1], "EUR"), ("9" * 50, "EUR")],
)  # fmt: skip
def test_amounts_out_of_bounds(value: object, currency: str) -> None:
    with pytest.raises(RowInvalid) as caught:
        bounds.amount(value, "price", currency)
    assert caught.value.field == "price" and len(caught.value.reason) < 120


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00", "1969-12-31T23:59:59Z",
              "2201-01-01T00:00:00Z", "2026-01-05T10:00:00", "yesterday", 20260105, "9" * 100],
)  # fmt: skip
def test_moments_out_of_bounds(value: object) -> None:
    with pytest.raises(RowInvalid):
        bounds.moment(value)


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), ("12", True), (0, False), (601, False), (10**30, False),
                      ("1" * 30, False), (1.5, False), (True, False), ("x", False)],
)  # fmt: skip
def test_whole_numbers(value: object, ok: bool) -> None:
    if ok:
        assert 1 <= bounds.whole(value, "n", minimum=1, maximum=600) <= 600
    else:
        with pytest.raises(RowInvalid):
            bounds.whole(value, "n", minimum=1, maximum=600)


def test_countries_and_currencies() -> None:
    assert bounds.country(" de-by ") == "DE-BY" and bounds.country("") is None
    for bad in ("XX", "DEU", "DE-XX", "D"):
        with pytest.raises(RowInvalid):
            bounds.country(bad)
    assert bounds.currency("eur") == "EUR"
    with pytest.raises(RowInvalid):
        bounds.currency("XQZ")


def test_json_depth_and_nul() -> None:
    assert bounds.json_value("[" * 32 + "]" * 32) is not None
    assert bounds.json_value('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')["a"].startswith("[")
    with pytest.raises(RowInvalid, match="nested deeper"):
        bounds.json_value("[" * 33 + "]" * 33)
    with pytest.raises(RowInvalid) as caught:
        bounds.json_value('{"a": [{"b": "x\\u0000"}]}')
    assert caught.value.field == "a[0].b"


def test_json_strings_with_a_lone_surrogate_are_refused_with_their_path() -> None:
    """Python's JSON decoder leaves a lone ``\\ud800`` in its string, which no database or
    encoder takes; a pair is one character (an emoji) and is fine."""
    assert bounds.json_value('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}
    for text, field in [
        ('{"a": ["ok", "x\\ud800"]}', "a[1]"),
        ('{"a": "\\udfff"}', "a"),
        ('{"a": {"k\\udc00": 1}}', "a.k\\udc00"),  # the key shown escaped, storable
        ('{"a\\u0000": 1}', "a\\x00"),
    ]:
        with pytest.raises(RowInvalid) as caught:
            bounds.json_value(text)
        assert caught.value.field == field, text
        caught.value.field.encode("utf-8")  # the path itself can be printed and stored


def test_a_number_too_long_for_python_is_named_plainly() -> None:
    with pytest.raises(RowInvalid, match="a number with more than 4,300 digits"):
        bounds.json_value('{"n": ' + "9" * 5000 + "}")


def test_lines_are_decoded_one_by_one() -> None:
    data = b"\xef\xbb\xbfone\nK\xf6ln\nnul\x00\n" + b"x" * (bounds.MAX_LINE_BYTES + 5) + b"\nlast"
    found = list(bounds.lines(io.BytesIO(data)))
    assert [n for n, _ in found] == [1, 2, 3, 4, 5]
    assert found[0][1] == "one\n" and found[4][1] == "last"
    assert [type(line).__name__ for _, line in found[1:4]] == ["RowInvalid"] * 3
