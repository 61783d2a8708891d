"""What a viewer sees of addresses in free text: masked, however long the text."""

from __future__ import annotations

import pytest

from aftersale.admin.masking import mask_addresses, masked
from tests.hostile import through_a_megabyte_of_each_shape


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("bounce: anna.m@example.org (550)", "bounce: a***@example.org (550)"),
        ("x foo.bar+tag@mail.example.com, +4915112345678",
         "x f***@mail.example.com, +49151*****678"),
        ("guest-'o.neil'@shop.example", "g***@shop.example"),
        ("no address: a@b, @example.org, 12345", "no address: a@b, @example.org, 12345"),
    ],
)  # fmt: skip
def test_addresses_in_text_are_masked(text: str, shown: str) -> None:
    assert mask_addresses(text) == shown


def test_keys_and_nested_values_are_masked() -> None:
    data = {"anna@example.org": ["call +4915112345678", {"n": 1}]}
    assert masked(data) == {"a***@example.org": ["call +49151*****678", {"n": 1}]}


def test_a_megabyte_string_of_any_shape_is_masked() -> None:
    """An event's data may hold a string of a megabyte; an address was tried at each of its
    characters, each try scanning to the end of the run."""
    through_a_megabyte_of_each_shape("aftersale.admin.masking.mask_addresses")
