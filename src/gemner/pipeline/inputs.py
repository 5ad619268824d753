"""What `GEM.pipe` and `GEM(...)` accept, turned into posts: strings, dicts and `Post`s, with images
as paths, bytes or PIL images.

A string is a post's raw text (its id: its position in the stream). A dict is a record of a posts
JSONL (`{"id"?, "text" | "tokens", "image"?}`), checked by the same validator (`records.PostRecord`),
except that its image may also be bytes or a PIL image. A raw text keeps its characters, so entities
carry offsets into it. What cannot be a post becomes that item's error; the stream goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from ..data.folders import load_split
from ..data.issues import DataError, IssueLog
from ..data.records import PostRecord, problem
from ..data.types import Post
from ..data.userposts import RejectedPost, iter_posts, post_from_record

InMemoryImage = bytes | bytearray | memoryview | Image.Image


@dataclass
class PostInput:
    """One item made a post: `image` holds an image given in memory (decoded by `data.images.load_image`
    with the pipeline's other images); a path stays in `post.image`. `error`: why the item is no post."""

    post: Post
    image: Any = None
    error: str | None = None


def _attach(post_input: PostInput, image: Any) -> PostInput:
    if image is None:
        return post_input
    if isinstance(image, InMemoryImage):
        post_input.image = image
    elif isinstance(image, str | Path):
        post_input.post = replace(post_input.post, image=Path(image))  # never the caller's Post changed
    else:
        post_input.error = f"an image is a path, bytes or a PIL image, got {type(image).__name__}"
    return post_input


def _from_dict(data: Mapping[str, Any], position: int) -> PostInput:
    fields = dict(data)
    image = fields.pop("image", None)
    fields.setdefault("id", str(position))
    try:
        record = PostRecord.model_validate(fields)
    except ValidationError as err:
        post_id = fields["id"] if isinstance(fields["id"], str | int) and not isinstance(fields["id"], bool) \
            else str(position)
        return PostInput(Post(str(post_id), []), error=problem(err))
    post = post_from_record(record)
    if not post.tokens:
        return PostInput(post, error='empty post: no "text" or "tokens"')
    return _attach(PostInput(post), image)


def to_input(item: Any, position: int, image: Any = None) -> PostInput:
    """The post of one item (`position`: its place in the stream, the id of a post that names none)."""
    if isinstance(item, str):
        return _attach(PostInput(Post.from_text(str(position), item)), image)
    if isinstance(item, Post):
        return _attach(PostInput(item), image)
    if isinstance(item, Mapping):
        given = _from_dict(item, position)
        return _attach(given, image) if given.error is None else given
    return PostInput(Post(str(position), []), error=f"a post is a string, a dict or a Post, got {type(item).__name__}")


@dataclass
class InputPosts:
    """The posts of one `gemner predict` run: the valid ones, the input problems, and the invalid posts that
    name an id (`RejectedPost`: each gets an error record, so every input id has its line)."""

    posts: list[Post]
    log: IssueLog
    rejected: list[RejectedPost]


def input_posts(*, dataset: str | None = None, split: str = "test", posts_file: str | Path | None = None,
                text: str | None = None, image: Path | None = None, images: Path | None = None,
                max_posts: int | None = None) -> InputPosts:
    """Exactly one source: a benchmark split (a name or an upstream folder), a posts JSONL (`-`: standard
    input), or one raw text with its optional image. `max_posts` keeps the first N."""
    sources = [s for s in (dataset, posts_file, text) if s is not None]
    if len(sources) != 1:
        raise DataError("give exactly one of --input, --dataset (with --split) or --text")
    log = IssueLog()
    if text is not None:
        return InputPosts([Post.from_text("post", text, image=image)], log, [])
    if dataset is not None:
        return InputPosts(load_split(dataset, split, images_dir=images).posts[:max_posts], log, [])
    items = list(islice(iter_posts(posts_file, images_dir=images, log=log), max_posts))
    return InputPosts([p for p in items if isinstance(p, Post)], log, [p for p in items if not isinstance(p, Post)])
