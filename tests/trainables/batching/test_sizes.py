from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainables.batching import sizes
from trainables.batching.sizes import format_size, parse_memory_size, parse_size
from trainables.errors import UserError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GiB", 4 * 2**30),
        ("4gib", 4 * 2**30),
        ("4 GIB", 4 * 2**30),
        ("512MB", 512 * 10**6),
        ("512MiB", 512 * 2**20),
        ("1.5GiB", 3 * 2**29),
        ("2TB", 2 * 10**12),
        ("1TiB", 2**40),
        ("64KiB", 64 * 1024),
        ("64kb", 64_000),
        ("100B", 100),
        ("1048576", 1048576),
        (" 7 ", 7),
        ("0", 0),
        (2048, 2048),
    ],
)
def test_parse_size_reads_units_case_insensitively(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["4GX", "GiB", "", "-1GiB", "4 G iB", "1e9", "four"])
def test_parse_size_rejects_text_that_is_not_a_size(text: str) -> None:
    with pytest.raises(UserError, match=rf"--memory-budget: cannot read '{text}' as a size"):
        parse_size(text, option="--memory-budget")


def test_parse_size_rejects_fractions_of_a_byte() -> None:
    with pytest.raises(UserError, match=r"size: '1.5B' is not a whole number of bytes"):
        parse_size("1.5B")


def test_parse_size_rejects_negative_ints() -> None:
    with pytest.raises(UserError, match="budget: a size cannot be negative, got -5"):
        parse_size(-5, option="budget")


def test_parse_size_rejects_bools() -> None:
    with pytest.raises(UserError, match="size: expected a size, got True"):
        parse_size(True)


@pytest.mark.parametrize(
    ("num_bytes", "expected"),
    [
        (0, "0B"),
        (100, "100B"),
        (1024, "1KiB"),
        (1536 * 2**20, "1.5GiB"),
        (4 * 2**30, "4GiB"),
        (2**40 + 2**38, "1.25TiB"),
        (1000, "1000B"),
        (10**9, "953.67MiB"),
    ],
)
def test_format_size_uses_the_largest_binary_unit(num_bytes: int, expected: str) -> None:
    assert format_size(num_bytes) == expected


def test_format_size_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError, match="num_bytes must be >= 0"):
        format_size(-1)


@given(
    count=st.integers(min_value=1, max_value=1023),
    scale=st.sampled_from([1, 2**10, 2**20, 2**30, 2**40]),
)
def test_format_size_round_trips_multiples_of_a_unit(count: int, scale: int) -> None:
    assert parse_size(format_size(count * scale)) == count * scale


def test_sizes_docstring_examples_run() -> None:
    assert doctest.testmod(sizes).failed == 0


def test_a_memory_size_without_a_unit_below_1mib_is_taken_for_a_missing_unit() -> None:
    with pytest.raises(UserError, match=r"^--memory-budget 64: 64 bytes, too little for any"):
        parse_memory_size("64", option="--memory-budget")
    with pytest.raises(UserError, match=r"a unit is missing\? e\.g\. 512MiB or 512GiB$"):
        parse_memory_size(" 512 ", option="--gpu-memory")
    # Written with a unit, or large enough to be bytes on purpose, or 0 (the callers' "> 0").
    assert parse_memory_size("1KiB", option="--memory-budget") == 1024
    assert parse_memory_size("1048576", option="--memory-budget") == 1 << 20
    assert parse_memory_size("0", option="--memory-budget") == 0
