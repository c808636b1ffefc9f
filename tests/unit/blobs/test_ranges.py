from __future__ import annotations

import pytest

from otahub.blobs.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_allows,
    none_match,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=0-99", (0, 100)),
        ("bytes=99-99", (99, 100)),
        ("bytes=10-", (10, 100)),
        ("bytes=-1", (99, 100)),
        ("bytes=-30", (70, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=50-5000", (50, 100)),
        ("BYTES = 1-2", (1, 3)),
        ("bytes=1-2,", (1, 3)),
    ],
)
def test_single_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 100) == ByteRange(*expected, 100)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "items=0-1",
        "bytes=5-2",
        "bytes=a-b",
        "bytes=-",
        "bytes=1-2,4-5",
        "bytes=0-0,-1",
        "bytes=1",
        "bytes=+1-2",
        "bytes=" + "9" * 30 + "-",
    ],
)
def test_ignored_ranges_mean_whole_body(header: str | None) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_content_range() -> None:
    assert ByteRange(0, 1, 100).content_range() == "bytes 0-0/100"
    assert ByteRange(70, 100, 100).content_range() == "bytes 70-99/100"
    assert ByteRange(70, 100, 100).length == 30


def test_if_range_is_a_strong_comparison() -> None:
    assert if_range_allows(None, '"abc"')
    assert if_range_allows('"abc"', '"abc"')
    assert not if_range_allows('W/"abc"', '"abc"')
    assert not if_range_allows('"abd"', '"abc"')
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", '"abc"')


def test_if_none_match_is_a_weak_comparison() -> None:
    assert not none_match(None, '"abc"')
    assert none_match('"abc"', '"abc"')
    assert none_match('W/"abc"', '"abc"')
    assert none_match('"x", "abc"', '"abc"')
    assert none_match("*", '"abc"')
    assert not none_match('"abd"', '"abc"')
