"""Files a person edits are read as UTF-8; the first byte that is not is found by line and
column, counted in characters as an editor shows them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from templates.textfiles import NotText, decode, read_text

# No byte-order mark at the start: one there is dropped, as the next test shows.
text = st.text().filter(lambda s: not s.startswith("\ufeff"))
not_utf8 = st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\xe4 ", b"\xed\xa0\x80", b"\x80"])


@given(before=text, bad=not_utf8, after=st.binary(max_size=20))
def test_the_first_bad_byte_is_found_where_an_editor_shows_it(before: str, bad: bytes, after):
    with pytest.raises(NotText) as caught:
        decode(before.encode("utf-8") + bad + after)
    lines = before.split("\n")
    assert (caught.value.line, caught.value.column) == (len(lines), len(lines[-1]) + 1)
    assert f"byte 0x{bad[0]:02x} at column {len(lines[-1]) + 1};" in str(caught.value)


@given(text)
def test_utf8_text_reads_as_written_with_or_without_a_byte_order_mark(written: str):
    assert decode(written.encode("utf-8")) == written
    assert decode(b"\xef\xbb\xbf" + written.encode("utf-8")) == written


def test_an_unreadable_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        read_text(tmp_path / "nowhere.yaml")
