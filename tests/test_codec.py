"""JSON on the wire: what is stored reads back unchanged, and what cannot is refused by path."""

from __future__ import annotations

import pytest

from hitl_bus.bus import codec
from hitl_bus.errors import PayloadTooLarge


def test_a_value_round_trips() -> None:
    value = {"name": "Ada", "n": 2**63 - 1, "xs": [1.5, None, True], "nested": {"é": "ü"}}
    assert codec.loads(codec.dumps(value)) == value
    assert codec.loads_strict(codec.dumps(value)) == value


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (b'{"a": NaN}', "a"),
        (b'{"a": [1, Infinity]}', "a.1"),
        (b'{"big": 1e400}', "big"),
        (b'{"n": 18446744073709551616}', "n"),
        (b'{"s": "\\ud800"}', "s"),
    ],
)
def test_what_cannot_be_stored_unchanged_is_refused_by_path(document: bytes, path: str) -> None:
    with pytest.raises(codec.JSONRefused) as refused:
        codec.loads_strict(document)
    assert [".".join(map(str, where)) for where, _ in refused.value.problems] == [path]


def test_bad_syntax_is_refused() -> None:
    with pytest.raises(codec.JSONRefused):
        codec.loads_strict(b'{"a": ')


def test_the_payload_limit() -> None:
    assert codec.check_size(b"12345", 5) == b"12345"
    with pytest.raises(PayloadTooLarge):
        codec.check_size(b"123456", 5)


def test_text_of_a_reply_field() -> None:
    assert codec.text(b"abc") == "abc"
    assert codec.text("abc") == "abc"
    assert codec.text(None) is None
