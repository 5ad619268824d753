"""One line of a JSONL file from outside: its JSON object, or why it is unusable, and the post id even of a
broken line when the id itself is intact (so the post can still get its own error record). The record
models that check a line's fields are in `gemner.data.records`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .issues import DataError


def valid_unicode(value: str) -> str:
    # json.loads turns "\ud800" into a lone surrogate, which no UTF-8 file can hold: refused where read.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (lone surrogate)") from None
    return value


def post_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("an id must be a string or an integer")
    text = valid_unicode(str(value))
    if not text.strip():
        raise ValueError("is empty")
    if "\x00" in text:  # ids name files and cache rows
        raise ValueError("contains a NUL character")
    return text



_ID_IN_BROKEN_LINE = re.compile(r'[{,]\s*"id"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.){1,200}"|-?\d{1,30})')


@dataclass(frozen=True)
class JsonLine:
    """A line of a JSONL file: its object, or the problem and (when one can be read) the post id."""

    number: int
    data: dict[str, Any] | None
    problem: str | None = None
    id: str | None = None


def parse_json_line(number: int, raw: bytes) -> JsonLine | None:
    """The line's JSON object, or why it is unusable; None for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return JsonLine(number, None, "not valid UTF-8", _salvage_id(raw))
    if not text.strip():
        return None
    if "\x00" in text:
        return JsonLine(number, None, "contains a NUL byte", _salvage_id(raw))
    try:
        data = json.loads(text)
    except RecursionError:
        return JsonLine(number, None, "JSON nested too deeply", _salvage_id(raw))
    except json.JSONDecodeError as err:
        return JsonLine(number, None, f"not valid JSON ({err.msg})", _salvage_id(raw))
    except ValueError as err:  # e.g. an integer beyond Python's digit limit
        return JsonLine(number, None, f"not valid JSON ({err})", _salvage_id(raw))
    if not isinstance(data, dict):
        return JsonLine(number, None, "not a JSON object")
    return JsonLine(number, data)


def _salvage_id(raw: bytes) -> str | None:
    """The post id of a line that cannot be parsed, when it is itself intact: so the post can still get
    its own error record instead of vanishing."""
    match = _ID_IN_BROKEN_LINE.search(raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd"))
    if match is None or "\ufffd" in match.group(1):
        return None
    try:
        value = json.loads(match.group(1))
        return post_id(value)
    except (ValueError, RecursionError):
        return None



def read_json_lines(path: Path | str) -> Iterator[JsonLine]:
    """Each non-blank line of a JSONL file (gunzipped when `*.gz`; a path, `-` for standard input, or a URI
    that `gemner.data.remote` reads), parsed; a missing file is a `DataError`."""
    from .conll import raw_lines
    from .remote import is_uri

    if str(path) != "-" and not is_uri(path) and not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    for number, raw in enumerate(raw_lines(path), start=1):
        line = parse_json_line(number, raw)
        if line is not None:
            yield line


def readable_id(data: Mapping[str, Any]) -> str | None:
    """The record's id when it is usable, else None (to name a post whose other fields are invalid)."""
    try:
        return post_id(data.get("id"))
    except ValueError:
        return None
