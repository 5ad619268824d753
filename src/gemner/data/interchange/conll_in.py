"""CoNLL files written by people, read as training data.

Accepted beyond the benchmark layout (`IMGID:<id>` before each post, `token<TAB>tag` or
`token<TAB>coarse<TAB>fine`):

* without `IMGID:` lines, a blank line ends a post, and posts are named `<file stem>-<n>` (n from 1);
* columns separated by tabs, or else by spaces; `-DOCSTART-` lines are skipped;
* BIOES / BILOU tags (`S-`, `E-`, `U-`, `L-`) are read as the BIO tags they stand for.

The number of label columns (1: one label level, 2: coarse then fine) comes from the first token
line; the rest of the checks (field counts, empty tokens, duplicate ids, each reported with file and
line) are those of the benchmark reader, `gemner.data.conll`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..conll import IMGID_PREFIX, ConllRecord, numbered_lines
from ..conll import _parse as parse_conll_lines
from ..issues import DataError, IssueLog

DOCSTART = "-DOCSTART-"
_BIOES = re.compile(r"^([SEUL])-(.+)$")
_AS_BIO = {"S": "B", "U": "B", "E": "I", "L": "I"}


def _fields(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def as_bio(tag: str) -> str:
    match = _BIOES.match(tag.strip())
    return f"{_AS_BIO[match.group(1)]}-{match.group(2)}" if match else tag


def _skipped(line: str) -> bool:
    return not line.strip() or line.startswith(DOCSTART)


def label_columns(path: str | Path) -> int:
    """1 or 2: the label columns of the first token line; a `DataError` for any other count."""
    for number, line in numbered_lines(path):
        if line is None or _skipped(line) or line.startswith(IMGID_PREFIX):
            continue
        n = len(_fields(line.rstrip("\r\n"))) - 1
        if n not in (1, 2):
            raise DataError(f"{path}:{number}: expected `token TAG` or `token COARSE FINE`, found {n + 1} columns")
        return n
    raise DataError(f"{path}: no token lines")


def benchmark_lines(path: str | Path) -> Iterator[tuple[int, str | None]]:
    """The file's lines in the benchmark layout: tab-separated, BIO tags, an `IMGID:` line per post."""
    numbered = list(numbered_lines(path))
    has_ids = any(line is not None and line.startswith(IMGID_PREFIX) for _, line in numbered)
    stem, count, in_post = Path(path).name.split(".")[0], 0, False
    for number, line in numbered:
        if line is None:
            yield number, None
            continue
        line = line.rstrip("\r\n")
        if line.startswith(IMGID_PREFIX):
            yield number, line
            continue
        if _skipped(line):
            in_post = False
            yield number, ""
            continue
        if not has_ids and not in_post:
            count += 1
            yield number, f"{IMGID_PREFIX}{stem}-{count}"
        in_post = True
        token, *tags = _fields(line)
        yield number, "\t".join([token, *(as_bio(t) for t in tags)])


def read_user_conll(path: str | Path, log: IssueLog) -> tuple[list[ConllRecord], int]:
    """The well-formed posts of a user's CoNLL file and its number of label columns."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    columns = label_columns(path)
    return list(parse_conll_lines(benchmark_lines(path), str(path), columns, log)), columns
