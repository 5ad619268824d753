"""Reader for the CoNLL txt files of GMNER (`token<TAB>tag`) and FMNERG (`token<TAB>coarse<TAB>fine`).

A post starts at `IMGID:<id>`; one token per line follows; blank lines separate posts. Rules for bad
input (each reported with file and line, see `issues.py`):

* a token line before any `IMGID:` line is ignored;
* a post with a line of the wrong number of columns, an empty token or an empty/duplicate id is dropped;
* a post with no tokens is dropped.

Label checks (unknown labels, stray `I-` tags) happen in `posts.py`, which knows the schema.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .issues import DataError, IssueLog

IMGID_PREFIX = "IMGID:"


def raw_lines(path: str | Path) -> list[bytes]:
    """The lines of a file as bytes (gunzipped when `*.gz`; `-` is standard input; a URI such as
    `s3://bucket/posts.jsonl` is read through `remote`); a file that cannot be read is a `DataError`."""
    from .remote import is_uri, read_uri

    name = str(path)
    try:
        if name == "-":  # standard input (`--input -`)
            return sys.stdin.buffer.read().split(b"\n")
        raw = read_uri(name) if is_uri(name) else Path(path).read_bytes()
        raw = gzip.decompress(raw) if name.split("?")[0].endswith(".gz") else raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read ({err})") from err
    return raw.split(b"\n")


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line of a UTF-8 file, gunzipping `*.gz`. The text is None for a
    line that is not valid UTF-8, so a reader can name that line instead of failing on the file."""
    for number, line in enumerate(raw_lines(path), start=1):
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


@dataclass
class ConllRecord:
    """One post as written in the file: tokens and their label columns, with line numbers."""

    id: str
    line: int
    tokens: list[str] = field(default_factory=list)
    columns: list[list[str]] = field(default_factory=list)  # one list of tags per label column
    token_lines: list[int] = field(default_factory=list)


def read_conll(path: str | Path, n_label_columns: int, log: IssueLog) -> list[ConllRecord]:
    """Read every well-formed post of `path`; problems go to `log` (raised when it is strict)."""
    return list(_parse(numbered_lines(path), str(path), n_label_columns, log))


def _parse(
    lines: Iterator[tuple[int, str | None]], path: str, n_cols: int, log: IssueLog
) -> Iterator[ConllRecord]:
    current: ConllRecord | None = None
    broken = False
    seen: set[str] = set()

    def finish() -> Iterator[ConllRecord]:
        if current is None or broken:
            return
        if not current.tokens:
            log.report("post has no tokens", "dropped post", path=path, line=current.line,
                       post_id=current.id)
            return
        yield current

    for number, raw in lines:
        if raw is None:
            log.report("not valid UTF-8", "dropped post" if current else "ignored line", path=path,
                       line=number, post_id=current.id if current else None)
            broken = current is not None
            continue
        line = raw.rstrip("\r\n")
        if line.startswith(IMGID_PREFIX):
            yield from finish()
            post_id = line[len(IMGID_PREFIX):].strip()
            current, broken = ConllRecord(post_id, number, columns=[[] for _ in range(n_cols)]), False
            if not post_id:
                log.report("empty post id after IMGID:", "dropped post", path=path, line=number)
                broken = True
            elif post_id in seen:
                log.report(f"duplicate post id {post_id!r}", "dropped post", path=path, line=number,
                           post_id=post_id)
                broken = True
            seen.add(post_id)
            continue
        if not line.strip():
            continue
        if current is None:
            log.report("token line before any IMGID: line", "ignored line", path=path, line=number)
            continue
        if broken:
            continue
        fields = line.split("\t")
        if len(fields) != 1 + n_cols:
            log.report(f"expected {1 + n_cols} tab-separated fields, found {len(fields)}: {line[:60]!r}",
                       "dropped post", path=path, line=number, post_id=current.id)
            broken = True
            continue
        token = fields[0].strip()
        if not token:
            log.report("empty token", "dropped post", path=path, line=number, post_id=current.id)
            broken = True
            continue
        current.tokens.append(token)
        current.token_lines.append(number)
        for column, tag in zip(current.columns, fields[1:], strict=True):
            column.append(tag.strip())
    yield from finish()
