"""Predict a file of posts with the pipeline: streamed, batched, resumable, with per-post errors.

Every finished post is one flushed JSONL line, so a killed run (kill -9, Ctrl-C, a crash) keeps it and
a rerun of the same command skips it. A post that fails (unreadable image, empty text, a stage
error) is written with its `"error"` and the run goes on. `visualize` draws each post that has an
image: boxes, labels, traced heat maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.types import Post
from ..data.userio import PredictionWriter, prediction_record
from .gem import GEM


@dataclass
class PredictCounts:
    written: int = 0
    resumed: int = 0
    errors: int = 0
    pictures: int = 0


def _safe_name(post_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in post_id) or "post"


def draw_result(result, folder: Path) -> bool:
    from ..ground.train import load_image
    from .visualize import save_picture

    if result.post.image is None:
        return False
    try:
        image = load_image(result.post.image)
    except (OSError, ValueError):
        return False
    save_picture(folder / f"{_safe_name(result.post.id)}.png", image, result.entities, result.heatmaps)
    return True


def predict_to_file(gem: GEM, posts: Sequence[Post], output: str | Path, *, resume: bool = True,
                    batch_size: int = 16, visualize: str | Path | None = None,
                    skipped: Sequence[tuple[str, str]] = (),
                    on_post: Callable[[int], None] | None = None) -> PredictCounts:
    """Write one prediction line per post (`skipped`: (post id, reason) of unreadable input posts,
    written as errors so that nothing silently disappears)."""
    counts = PredictCounts()
    folder = Path(visualize) if visualize else None
    with PredictionWriter(output, resume=resume) as writer:
        for post_id, reason in skipped:
            if post_id not in writer.done_ids:
                writer.write(prediction_record(Post(post_id, []), [], error=reason))
                counts.errors += 1
        todo = [p for p in posts if p.id not in writer.done_ids]
        counts.resumed = len(posts) - len(todo)
        for result in gem.predict_batch(todo, batch_size=batch_size, keep_heatmaps=folder is not None):
            writer.write(result.record())
            counts.written += 1
            counts.errors += result.error is not None
            if folder is not None and draw_result(result, folder):
                counts.pictures += 1
            if on_post is not None:
                on_post(counts.written)
    return counts
