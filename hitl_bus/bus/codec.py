"""JSON on the wire: orjson in, orjson out, a size limit, and no pickle anywhere."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
import pydantic_core

from hitl_bus.errors import PayloadTooLarge

Path = list[str | int]

# A run of 19 digits may be an integer beyond 64 bits, a 3-digit exponent may overflow a
# double: only a document with one of these needs its numbers looked at one by one.
_SUSPECT_NUMBER = re.compile(rb"\d{19}|[eE][+-]?\d{3}")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_PROBLEMS = 10


def dumps(value: Any) -> bytes:
    """Encode plain data (already JSON-compatible) to bytes."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on garbage."""
    return orjson.loads(data)


class JSONRefused(ValueError):
    """A document :func:`loads_strict` will not take; ``problems`` are (path, what is wrong)."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(p)}: {msg}" for p, msg in problems))


def loads_strict(data: bytes) -> Any:
    """Decode JSON that can be stored and read back unchanged, else raise :class:`JSONRefused`.

    Refused: bad syntax, NaN and Infinity, numbers that overflow to infinity, integers beyond
    64 bits, text that is not valid Unicode (bad UTF-8, lone surrogates), nesting deeper than
    the decoders allow. The lenient decoders of other libraries turn these into ``null``,
    floats or server errors later on; each problem here names its path in the document.
    """
    try:
        value = pydantic_core.from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise JSONRefused(_locate(data) or [([], f"not valid JSON: {exc}")]) from None
    if _SUSPECT_NUMBER.search(data):
        problems = _problems(value)
        if problems:
            raise JSONRefused(problems)
    return value


class _Refused:
    """Stands in for a value the lenient decoder accepted and JSON does not allow."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _lenient_int(text: str) -> int | _Refused:
    return int(text) if len(text) <= 40 else _Refused("is an integer beyond 64 bits")


def _locate(data: bytes) -> list[tuple[Path, str]]:
    """Where a refused document goes wrong, read by a decoder that accepts more."""
    try:
        value = json.loads(
            data.decode("utf-8", "surrogateescape"),  # a bad byte becomes a lone surrogate
            parse_constant=lambda name: _Refused(f"{name} is not a JSON number"),
            parse_int=_lenient_int,
        )
    except (ValueError, RecursionError):
        return []
    return _problems(value)


def _problems(value: Any) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [([], value)]
    while stack and len(found) < _MAX_PROBLEMS:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if _not_unicode(key):
                    found.append(([*path, _shown(key)], "the name is not valid Unicode text"))
                else:
                    stack.append(([*path, key], child))
        elif isinstance(item, list):
            stack.extend(([*path, i], item[i]) for i in reversed(range(len(item))))
        elif isinstance(item, _Refused):
            found.append((path, item.why))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int) and not _INT_MIN <= item <= _INT_MAX:
            found.append((path, "is an integer beyond 64 bits"))
        elif isinstance(item, float) and not math.isfinite(item):
            found.append((path, "is a number too large to store (it overflows to infinity)"))
        elif isinstance(item, str) and _not_unicode(item):
            found.append((path, "is not valid Unicode text (bad UTF-8 or a lone surrogate)"))
    return found


def _not_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def _dotted(path: Path) -> str:
    return ".".join(map(str, path)) or "document"


def check_size(data: bytes, limit: int) -> bytes:
    """Return ``data`` if it fits the payload limit, else raise :class:`PayloadTooLarge`."""
    if len(data) > limit:
        raise PayloadTooLarge(len(data), limit)
    return data


def text(value: bytes | str | None) -> str | None:
    """A reply field as ``str`` (Redis hands back bytes)."""
    if value is None or isinstance(value, str):
        return value
    return value.decode()


def pairs(flat: list[Any] | None) -> dict[Any, Any]:
    """A hash or stream entry as Redis answers it (field, value, field, value...) as a dict;
    ``None`` (a pending entry deleted since) as an empty one."""
    if flat is None:
        return {}
    return dict(zip(flat[::2], flat[1::2], strict=True))
