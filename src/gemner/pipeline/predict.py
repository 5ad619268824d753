"""Predict a file of posts with the pipeline: streamed, batched, resumable, with per-post errors.

Every finished post is one flushed JSONL line (`gemner.data.writer.PredictionWriter`: locked, never
the input file), so a killed run (kill -9, Ctrl-C, a crash) keeps it and a rerun of the same command
skips it; posts that ended in an error are redone unless `retry_errors=False`. A post that fails
(unusable image, a stage error) is written with its `"error"` and the run goes on. `visualize` draws
each post that has an image: boxes, labels, traced heat maps, one file per post id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..data.images import ImageError, load_image, to_loaded
from ..data.types import Box, Post
from ..data.writer import PredictionWriter, WriteCounts
from ..progress import progress_bar
from .gem import GEM
from .stages import PostResult

_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def picture_name(post_id: str) -> str:
    """A file name for the post's picture, unique per id and safe on every file system: an id of
    letters, digits, `-` and `_` (up to 100 characters) is used as it is; any other id is written
    with its unsafe characters replaced and a hash of the whole id appended (`x/1` and `x:1` differ)."""
    if post_id and len(post_id) <= 100 and set(post_id) <= _SAFE:
        return f"{post_id}.png"
    stem = "".join(c if c in _SAFE else "_" for c in post_id[:60])
    digest = hashlib.sha256(post_id.encode("utf-8")).hexdigest()[:12]
    return f"{stem}~{digest}.png"


def draw_result(result: PostResult, folder: str | Path) -> Path | None:
    """Save the post's picture in `folder`; None when the post has no usable image."""
    from .visualize import save_picture

    image = result.image
    if image is None and result.post.image is not None:
        try:
            image = load_image(result.post.image)
        except ImageError:
            return None
    if image is None:
        return None
    entities = [replace(e, box=Box(*to_loaded(image, e.box)) if e.box is not None else None,
                        scores={**e.scores, "peak": to_loaded(image, e.scores["peak"])} if "peak" in e.scores
                        else e.scores)
                for e in result.entities]  # boxes are in the file's pixels; draw them on the loaded image
    return save_picture(Path(folder) / picture_name(result.post.id), image, entities, result.heatmaps)


def predict_to_file(gem: GEM, posts: Sequence[Post], output: str | Path, *, resume: bool = True,
                    batch_size: int = 16, visualize: str | Path | None = None,
                    rejected: Sequence[tuple[str, str]] = (), inputs: Sequence[str | Path | None] = (),
                    retry_errors: bool = True, progress: bool = False,
                    on_post: Callable[[int], None] | None = None) -> tuple[WriteCounts, int]:
    """Write one prediction line per post; returns the writer's counts and the number of pictures.

    `rejected`: (post id, reason) of input posts that could not be read, written as error records so
    that nothing silently disappears. `inputs`: the files the posts came from (never overwritten).
    `on_post` is called with the number of posts written so far."""
    pictures = 0
    folder = Path(visualize) if visualize else None
    with PredictionWriter(output, resume=resume, inputs=inputs, retry_errors=retry_errors) as writer:
        for post_id, reason in writer.pending(rejected, key=lambda item: item[0]):
            writer.write_error(post_id, reason)
        todo = list(writer.pending(posts))
        with progress_bar(len(todo), "predict", enabled=progress) as bar:
            for result in gem.predict_batch(todo, batch_size=batch_size, keep_heatmaps=folder is not None):
                writer.write(result.record())
                if folder is not None and draw_result(result, folder) is not None:
                    pictures += 1
                result.image = None  # the batch's images are freed as their posts are written
                bar.update(1)
                if on_post is not None:
                    on_post(writer.counts.written)
    return writer.counts, pictures
