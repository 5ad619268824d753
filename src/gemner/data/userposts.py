"""Posts in: a JSONL of `{"id", "text" | "tokens", "image"?}`, one post per line.

Each line is checked once, by `records.PostRecord`. A line that is not a JSON object, has a field of
the wrong type, or has neither text nor tokens is reported (file and line); when it names a usable id
it is yielded as a `RejectedPost`, so the output still gets one record, with the error, for that id.
The first record of an id wins; a repeat is reported with both line numbers and skipped. A post
given as raw `text` keeps it, so its entities carry offsets into the user's own string.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .issues import IssueLog
from .jsonlines import JsonLine, read_json_lines, readable_id
from .records import PostRecord, problem
from .remote import is_uri
from .types import Post


@dataclass(frozen=True)
class RejectedPost:
    """An input post that cannot be predicted but names a usable id: it still gets its output record,
    carrying `error`, so the output keeps one record per input id."""

    id: str
    message: str
    path: str
    line: int

    @property
    def error(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def post_from_json(line: JsonLine, *, path: Path | str, images_dir: Path | None = None
                   ) -> Post | RejectedPost | str:
    """The post of one line; a `RejectedPost` when it is invalid but names an id; else the problem."""
    if line.data is None:
        message = line.problem or "unusable line"
        return RejectedPost(line.id, message, str(path), line.number) if line.id is not None else message
    try:
        record = PostRecord.model_validate(line.data)
    except ValidationError as err:
        post_id = readable_id(line.data)
        return RejectedPost(post_id, problem(err), str(path), line.number) if post_id is not None else problem(err)
    post = post_from_record(record)
    if not post.tokens:
        return RejectedPost(record.id, 'empty post: no "text" or "tokens"', str(path), line.number)
    if record.image:
        post.image = Path(record.image)
        if not post.image.is_absolute():  # relative to --images, else to the file (a URI's: this folder)
            post.image = (images_dir or (Path(path).parent if isinstance(path, Path) else Path())) / post.image
    return post


def post_from_record(record: PostRecord) -> Post:
    """The post of a checked record, without its image: raw `text` tokenised with each token's
    characters kept (`Post.from_text`); given `tokens` win over `text` and are taken as they are."""
    if record.tokens is not None:
        return Post(record.id, list(record.tokens))
    return Post.from_text(record.id, record.text or "")


def iter_posts(path: str | Path, images_dir: str | Path | None = None,
               log: IssueLog | None = None) -> Iterator[Post | RejectedPost]:
    """The posts of a posts JSONL in file order, each valid one as a `Post` and each invalid one that
    names an id as a `RejectedPost`; every problem is reported in `log` with file and line. The first
    record of an id wins: a later one with the same id is reported (both lines named) and skipped.
    `path` may be a URI (`s3://bucket/posts.jsonl`, `gemner.data.remote`); the relative image paths of a
    remote file are taken relative to `images_dir`, else to the current folder."""
    path = path if is_uri(path) else Path(path)
    log = log if log is not None else IssueLog()
    images = Path(images_dir) if images_dir is not None else None
    first_line: dict[str, int] = {}
    for line in read_json_lines(path):
        item = post_from_json(line, path=path, images_dir=images)
        if isinstance(item, str):
            log.report(item, "skipped line", path=path, line=line.number)
            continue
        if item.id in first_line:
            log.report(f"duplicate id {item.id!r} (first on line {first_line[item.id]})", "skipped post",
                       path=path, line=line.number, post_id=item.id)
            continue
        first_line[item.id] = line.number
        if isinstance(item, RejectedPost):
            log.report(item.message, "rejected post", path=path, line=line.number, post_id=item.id)
        yield item


def read_posts(path: str | Path, images_dir: str | Path | None = None,
               log: IssueLog | None = None) -> tuple[list[Post], IssueLog]:
    """The valid posts of a posts JSONL; every other line is reported in the returned log (`iter_posts`
    also yields the invalid posts that name an id)."""
    log = log if log is not None else IssueLog()
    return [p for p in iter_posts(path, images_dir, log) if isinstance(p, Post)], log
