"""The counts every converter reports (its outputs go through `gemner.data.files.atomic_output`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counts:
    """What one conversion wrote; every item left out is also named in the run's `IssueLog`."""

    posts: int = 0
    entities: int = 0
    boxes: int = 0
    skipped_posts: int = 0
    skipped_entities: int = 0
    skipped_boxes: int = 0

    def summary(self) -> str:
        left_out = [f"{n} {what}" for n, what in ((self.skipped_posts, "posts"), (self.skipped_entities, "entities"),
                                                   (self.skipped_boxes, "boxes")) if n]
        text = f"{self.posts} posts, {self.entities} entities, {self.boxes} boxes"
        return text + (f" ({', '.join(left_out)} left out)" if left_out else "")
