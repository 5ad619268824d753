"""Fine-tuning the entity-image matcher, paper §3.4.1: (entity, Table 8 text, image, has-box) pairs.

Examples are grouped by image: one step takes `images_per_batch` images with *all* their entities,
so each image is encoded once per step (the same sharing as at inference). The label is whether the
entity has a gold box in that image; the loss is cross-entropy on BLIP's two ITM logits.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import ImageError, check_image, load_image
from ..data.issues import IssueLog
from ..data.types import Post
from .config import GrounderTrainConfig
from .itm import MATCH, EntityImageMatcher, itm_text


@dataclass
class TrainingImage:
    """One image and every (entity, category, has_box) asked about it."""

    key: str  # post id, or a scene number
    image: Image.Image | Path
    queries: list[tuple[str, str, bool]]

    def load(self) -> Image.Image:
        return self.image if isinstance(self.image, Image.Image) else load_image(self.image)


def examples_from_posts(posts: Iterable[Post], category_field: str = "type",
                        log: IssueLog | None = None) -> list[TrainingImage]:
    """Training images from benchmark posts: an entity with gold boxes is a match, one without is not.

    Posts without an image file, or whose image cannot be read, are reported by id and skipped.
    """
    log = log if log is not None else IssueLog()
    items = []
    for post in posts:
        if not post.entities:
            continue
        if post.image is None:
            log.report("no image for this post", "skipped post", post_id=post.id)
            continue
        try:
            check_image(post.image)  # header and size only; decoding happens per step
        except ImageError as err:
            log.report(str(err), "skipped post", post_id=post.id)
            continue
        queries = [(e.text, getattr(e, category_field), e.boxes is not None) for e in post.entities]
        items.append(TrainingImage(post.id, Path(post.image), queries))
    return items


def with_absent_negatives(items: Sequence[TrainingImage], count: int, seed: int = 0) -> list[TrainingImage]:
    """`items` with, per image, up to `count` entities that other images show and this one does not
    (label: no box). Matching pairs alone let an ITM trained from scratch answer from the entity's name
    (a name that is drawn once is drawn always); an absent drawn entity can only be told from the image."""
    if count <= 0:
        return list(items)
    rng = random.Random(seed)
    drawn = sorted({(entity, category) for item in items for entity, category, has_box in item.queries if has_box})
    result = []
    for item in items:
        here = {(entity, category) for entity, category, _ in item.queries}
        absent = [pair for pair in drawn if pair not in here]
        extra = [(entity, category, False) for entity, category in rng.sample(absent, min(count, len(absent)))]
        result.append(TrainingImage(item.key, item.image, [*item.queries, *extra]))
    return result


@dataclass
class MatcherTrainReport:
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # keys of images that failed to load mid-run


def linear_schedule(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup` steps, then linear decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def batches(items: Sequence[TrainingImage], size: int, rng: random.Random) -> list[list[TrainingImage]]:
    order = list(items)
    rng.shuffle(order)
    return [order[i: i + size] for i in range(0, len(order), size)]


def train_matcher(matcher: EntityImageMatcher, items: Sequence[TrainingImage],
                  config: GrounderTrainConfig = GrounderTrainConfig(),
                  on_step: Callable[[int, float], None] | None = None) -> MatcherTrainReport:
    """AdamW with a linear schedule (paper Appendix C) over `config.epochs` passes of `items`."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = matcher.model
    steps_per_epoch = math.ceil(len(items) / config.images_per_batch)
    total = max(1, steps_per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(config.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: linear_schedule(step, warmup, total))
    class_weight = torch.tensor([1.0, config.positive_weight], device=matcher.device)
    report = MatcherTrainReport()
    start = time.perf_counter()
    model.train()
    try:
        for _ in range(config.epochs):
            for batch in batches(items, config.images_per_batch, rng):
                loss = _step(matcher, batch, class_weight, report)
                if loss is None:
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                report.steps += 1
                report.losses.append(loss.item())
                if on_step is not None:
                    on_step(report.steps, report.losses[-1])
    finally:
        model.eval()
        report.seconds = time.perf_counter() - start
    return report


def _step(matcher: EntityImageMatcher, batch: Sequence[TrainingImage], class_weight: torch.Tensor,
          report: MatcherTrainReport) -> torch.Tensor | None:
    images, texts, rows, labels = [], [], [], []
    for item in batch:
        try:
            image = item.load()
        except ImageError:
            report.skipped.append(item.key)
            continue
        for entity, category, has_box in item.queries:
            texts.append(itm_text(entity, category))
            rows.append(len(images))
            labels.append(MATCH if has_box else 1 - MATCH)
        images.append(image)
    if not texts:
        return None
    report.images += len(images)
    image_embeds = matcher.encode_images(matcher.pixel_values(images))
    logits = matcher.itm_logits(image_embeds, torch.tensor(rows, device=matcher.device), matcher.tokenize(texts))
    return F.cross_entropy(logits.float(), torch.tensor(labels, device=matcher.device), weight=class_weight)


@torch.no_grad()
def match_probabilities(matcher: EntityImageMatcher, items: Sequence[TrainingImage],
                        images_per_batch: int = 8) -> tuple[list[float], list[bool]]:
    """P_T and the gold label of every query of `items` (for threshold tuning and accuracy)."""
    p_true: list[float] = []
    gold: list[bool] = []
    for start in range(0, len(items), images_per_batch):
        chunk = items[start: start + images_per_batch]
        images = [item.load() for item in chunk]
        texts = [itm_text(e, c) for item in chunk for e, c, _ in item.queries]
        rows = [k for k, item in enumerate(chunk) for _ in item.queries]
        if not texts:
            continue
        embeds = matcher.encode_images(matcher.pixel_values(images))
        p_true += matcher.match(embeds, torch.tensor(rows, device=matcher.device), texts).p_true.tolist()
        gold += [has_box for item in chunk for _, _, has_box in item.queries]
    return p_true, gold


def tune_threshold(p_true: Sequence[float], gold: Sequence[bool]) -> tuple[float, float]:
    """(threshold, accuracy): the cut on P_T that classifies the most dev examples correctly.

    Candidates are the midpoints between sorted distinct P_T values (and 0.5 itself), so the result
    does not depend on a grid; ties go to the candidate closest to the paper's 0.5.
    """
    if not p_true:
        return 0.5, 0.0
    values = sorted(set(p_true))
    midpoints = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    candidates = [0.5, *midpoints, values[0] - 1e-9, values[-1] + 1e-9]
    pairs = list(zip(p_true, gold, strict=True))

    def accuracy(threshold: float) -> float:
        return sum((p >= threshold) == g for p, g in pairs) / len(pairs)

    best = max(candidates, key=lambda t: (accuracy(t), -abs(t - 0.5)))
    return float(min(1.0, max(0.0, best))), accuracy(best)
