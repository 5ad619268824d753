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
from ..distributed import DataParallel, describe_batch
from .config import GrounderTrainConfig
from .itm import MATCH, EntityImageMatcher, itm_text
from .train_state import load_matcher_state, save_matcher_state


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
    (a name that is drawn once is drawn always); an absent drawn entity can only be told from the image.
    Never one of a category this image shows: two entities of a category may look alike (two companies'
    emblems of the same colour), and "no" to a name the image cannot tell apart would teach the ITM noise.
    (Names that are written in the image, as on logos, could be told apart; that negative is given up too.)"""
    if count <= 0:
        return list(items)
    rng = random.Random(seed)
    drawn = sorted({(entity, category) for item in items for entity, category, has_box in item.queries if has_box})
    result = []
    for item in items:
        shown = {category for _, category, has_box in item.queries if has_box}
        here = {(entity, category) for entity, category, _ in item.queries}
        absent = [(entity, category) for entity, category in drawn
                  if (entity, category) not in here and category not in shown]
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
                  on_step: Callable[[int, float], None] | None = None, state_dir: Path | None = None,
                  log: Callable[[str], None] | None = None) -> MatcherTrainReport:
    """AdamW with a linear schedule (paper Appendix C) over `config.epochs` passes of `items`.

    Each step takes `images_per_batch` images (the effective batch); started as several processes
    (`gemner.distributed`), each takes its share, in `config.accumulate` micro-batches, and the gradients
    are averaged: the same training as one process. With `state_dir`, the run resumes from the state
    there and the main process saves it (`train_state`)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    parallel = DataParallel.from_env(str(matcher.device))
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = matcher.model
    parallel.broadcast_parameters(model)
    steps_per_epoch = math.ceil(len(items) / config.images_per_batch)
    total = max(1, steps_per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(config.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: linear_schedule(step, warmup, total))
    class_weight = torch.tensor([1.0, config.positive_weight], device=matcher.device)
    report = MatcherTrainReport()
    settings = config.model_dump()
    progress = {"position": 0, "steps": 0}  # position: batches consumed (one whose images all fail: no step)
    if state_dir is not None:
        progress.update(load_matcher_state(state_dir, model, optimizer, schedule, settings) or {})
    report.steps = progress["steps"]
    say = parallel.main_only(log or (lambda _line: None))
    say(describe_batch(config.images_per_batch, parallel.world, config.accumulate, "images"))
    if progress["position"]:
        say(f"resuming after {progress['position']} of {total} batches ({state_dir})")

    def save() -> None:
        if state_dir is not None and parallel.is_main:
            save_matcher_state(state_dir, model, optimizer, schedule, {**progress, "settings": settings})

    start = time.perf_counter()
    model.train()
    try:
        for epoch in range(config.epochs):
            for index, batch in enumerate(batches(items, config.images_per_batch, rng)):  # drawn on resume too
                if epoch * steps_per_epoch + index < progress["position"]:
                    continue
                loss = _step(matcher, batch, class_weight, report, parallel, config.accumulate)
                progress["position"] += 1
                if loss is None:
                    continue
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                report.steps = progress["steps"] = report.steps + 1
                report.losses.append(loss)
                if config.save_every_steps and report.steps % config.save_every_steps == 0:
                    save()
                if on_step is not None:
                    on_step(report.steps, loss)
        save()
    except KeyboardInterrupt:
        save()
        raise
    finally:
        model.eval()
        report.seconds = time.perf_counter() - start
    return report


def _step(matcher: EntityImageMatcher, batch: Sequence[TrainingImage], class_weight: torch.Tensor,
          report: MatcherTrainReport, parallel: DataParallel, accumulate: int) -> float | None:
    """Gradients of the batch's class-weighted mean cross-entropy through this process's micro-batches
    and the all-reduce; the batch's loss, or None when none of its images could be read (no step). Each
    micro-batch's summed loss is divided by the whole batch's total weight, summed over the processes."""
    micro_batches = []
    for micro in parallel.micro_batches(batch, accumulate):
        loaded = []
        for item in micro:
            try:
                loaded.append((item, item.load()))
            except ImageError:
                report.skipped.append(item.key)
        micro_batches.append(loaded)
    weights = class_weight.tolist()
    weight = sum(weights[MATCH if has_box else 1 - MATCH] for loaded in micro_batches for item, _ in loaded
                 for _, _, has_box in item.queries)
    images = sum(len(loaded) for loaded in micro_batches)
    total, images = parallel.all_sum([weight, images], matcher.device)
    if total == 0:
        return None
    report.images += int(images)
    local = 0.0
    for loaded in micro_batches:
        texts, rows, labels = [], [], []
        for row, (item, _) in enumerate(loaded):
            for entity, category, has_box in item.queries:
                texts.append(itm_text(entity, category))
                rows.append(row)
                labels.append(MATCH if has_box else 1 - MATCH)
        if not texts:
            continue
        image_embeds = matcher.encode_images(matcher.pixel_values([image for _, image in loaded]))
        logits = matcher.itm_logits(image_embeds, torch.tensor(rows, device=matcher.device), matcher.tokenize(texts))
        nll = F.cross_entropy(logits.float(), torch.tensor(labels, device=matcher.device), weight=class_weight,
                              reduction="sum")
        (nll * (parallel.world / total)).backward()
        local += float(nll.detach())
    parallel.average_gradients([p for p in matcher.model.parameters() if p.requires_grad])
    return parallel.all_sum([local], matcher.device)[0] / total


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
