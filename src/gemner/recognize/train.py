"""Training loop: AdamW + linear schedule, best-on-dev checkpoint, resumable after a kill.

Output folder:

    <output>/config.json, labels.json, model.safetensors | adapter+heads   best-on-dev checkpoint
    <output>/last/                    resumable state (every `save_every_steps` steps and each epoch)
    <output>/history.jsonl            one line per epoch: loss, dev scores, seconds, posts/s

Resuming restores model, optimizer, scheduler, RNG and the (epoch, batch) counters. Batch order is a
function of (seed, epoch) alone, so a resumed run skips exactly the batches already trained and
continues bit-for-bit as the uninterrupted run would have (tested).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.issues import DataError
from ..data.schema import LabelSchema
from ..data.types import Post, PredictedEntity
from ..distributed import DataParallel, describe_batch
from ..progress import progress_bar
from .checkpoint import find_training_state, load_training_state, read_checkpoint_config, save_training_state
from .config import RecognizerConfig
from .encoding import EncodedPost, batch_order, collate, encode_posts
from .model import Recognizer, training_pairs
from .predict import predict_batch
from .scoring import mner_scores

LAST = "last"
HISTORY = "history.jsonl"


@dataclass
class TrainResult:
    output: Path
    best_dev_f1: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name or "layernorm" in name


def make_optimizer(model: Recognizer, config: RecognizerConfig) -> torch.optim.AdamW:
    """AdamW; the encoder at `lr`, heads/CRFs/M at `head_lr` (or `lr`); no decay on biases and norms."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    head_lr = config.head_lr if config.head_lr is not None else config.lr
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = config.lr if name.startswith("encoder.") else head_lr
        decay = 0.0 if _no_decay(name) else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def evaluate(model: Recognizer, posts: Sequence[Post], items: Sequence[EncodedPost],
             batch_size: int) -> dict[str, float]:
    """MNER scores of the model on pre-encoded posts (`items[i].index` points into `posts`)."""
    model.eval()
    predictions: dict[str, list[PredictedEntity]] = {}
    for start in range(0, len(items), batch_size):
        chunk = list(items[start:start + batch_size])
        chunk_posts = [posts[it.index] for it in chunk]
        for post, entities in zip(chunk_posts, predict_batch(model, chunk_posts, chunk), strict=True):
            predictions[post.id] = entities
    return mner_scores(posts, predictions, model.schema)


def _encode(model: Recognizer, posts: Sequence[Post], knowledge: dict[str, str] | None) -> list[EncodedPost]:
    schema = model.schema
    fine_ids = {t: i for i, t in enumerate(schema.tags)}
    coarse_ids = {t: i for i, t in enumerate(schema.coarse_tags)} if model.multi_granularity else None
    return encode_posts(model.tokenizer, posts, knowledge, model.config.max_length, fine_ids, coarse_ids)


def _teacher_targets(config: RecognizerConfig, schema: LabelSchema, posts: Sequence[Post],
                     knowledge: dict[str, str] | None, output: Path, device: str, log: Callable[[str], None],
                     is_main: bool) -> list[torch.Tensor]:
    """The teachers' distributions of the training words (`distill`), read from the run folder when a
    resumed run made them already."""
    from .distill import TARGETS_FILE, load_targets, save_targets, teacher_targets

    path = output / TARGETS_FILE
    targets = load_targets(path, config.teachers, posts)
    if targets is not None:
        log(f"teacher distributions of {len(posts)} posts read from {path}")
        return targets
    targets = teacher_targets(config.teachers, schema, posts, knowledge, device=device,
                              batch_size=config.eval_batch_size, log=log)
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
        save_targets(path, targets, config.teachers)
    return targets


def train_recognizer(
    config: RecognizerConfig,
    schema: LabelSchema,
    train_posts: Sequence[Post],
    dev_posts: Sequence[Post],
    output: str | Path,
    *,
    knowledge: dict[str, str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] = print,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> TrainResult:
    """Train, keep the best-on-dev checkpoint in `output`, and return the history.

    `on_step(global_step, loss)` runs after every optimizer step (and after any state save of that
    step); an exception raised there stops training like a kill would.

    Started as several processes (`gemner.distributed.run_processes`, `accelerate launch`), each batch of
    `config.batch_size` posts is shared among them (each share in `config.accumulate` micro-batches)
    and their gradients averaged: the same training as one process with that batch; the main process
    alone writes the output.
    """
    parallel = DataParallel.from_env(device)
    device = parallel.place(device)
    log, progress = parallel.main_only(log), progress and parallel.is_main
    output = Path(output)
    state_dir = find_training_state(output / LAST)
    if state_dir is not None and not resume:
        raise DataError(f"{output} already holds a training run: pass --resume to continue it, "
                        "or choose another output folder")
    if resume and state_dir is None:
        log(f"nothing to resume in {output}: starting a new run")
    if state_dir is not None:
        stored, _ = read_checkpoint_config(state_dir)
        if stored != config:
            log(f"resuming with the configuration stored in {state_dir} (command-line settings ignored)")
        config = stored
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    model = Recognizer.build(config, schema, training_pairs(train_posts), trust_remote_code=trust_remote_code)
    model = model.to(device)
    parallel.broadcast_parameters(model)
    train_items = _encode(model, train_posts, knowledge)
    dev_items = _encode(model, dev_posts, knowledge)
    if config.teachers:
        targets = _teacher_targets(config, schema, train_posts, knowledge, output, device, log, parallel.is_main)
        for item in train_items:
            item.soft_fine = targets[item.index][:item.n_words]
    steps_per_epoch = math.ceil(len(train_items) / config.batch_size)
    log(describe_batch(config.batch_size, parallel.world, config.accumulate, "posts"))
    optimizer = make_optimizer(model, config)
    scheduler = linear_schedule(optimizer, steps_per_epoch * config.epochs, config.warmup_ratio)
    counters = {"epoch": 0, "batch": 0, "global_step": 0, "best_dev_f1": -1.0, "best_epoch": -1,
                "history": []}
    if state_dir is not None:
        counters.update(load_training_state(state_dir, model, optimizer, scheduler))
        log(f"resumed from {state_dir}: epoch {counters['epoch']}, batch {counters['batch']}")
    output.mkdir(parents=True, exist_ok=True)
    if state_dir is None and parallel.is_main:
        (output / HISTORY).unlink(missing_ok=True)
    pad_id = model.tokenizer.pad_token_id or 0
    lengths = [len(it.input_ids) for it in train_items]
    started = time.perf_counter()

    def save_state() -> None:
        if parallel.is_main:
            save_training_state(output / LAST, model, optimizer, scheduler, dict(counters))

    try:
        while counters["epoch"] < config.epochs:
            epoch = counters["epoch"]
            batches = batch_order(len(train_items), lengths, config.batch_size, config.seed * 1000 + epoch,
                                  config.length_buckets)
            bar = progress_bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                               initial=counters["batch"], enabled=progress, leave=False)
            epoch_start, loss_sum, n_loss = time.perf_counter(), 0.0, 0
            for batch_index in range(counters["batch"], len(batches)):
                model.train()
                batch = batches[batch_index]
                loss = torch.zeros(())  # the mean loss of this process's share (a small last batch: maybe none)
                micro_batches = parallel.micro_batches(batch, config.accumulate)
                for micro in micro_batches:
                    micro_loss = model.loss(collate([train_items[i] for i in micro], pad_id).to(device))
                    (micro_loss * parallel.loss_weight(len(micro), len(batch))).backward()
                    loss = loss + micro_loss.detach() * len(micro) / sum(len(m) for m in micro_batches)
                parallel.average_gradients([p for p in model.parameters() if p.requires_grad])
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                counters["batch"] = batch_index + 1
                counters["global_step"] += 1
                loss_sum, n_loss = loss_sum + float(loss.detach()), n_loss + 1
                bar.update(1)
                best = counters["best_dev_f1"]
                bar.note(loss=f"{loss_sum / n_loss:.4f}", best_dev_f1=f"{best:.2f}" if best >= 0 else "-")
                if config.save_every_steps and counters["global_step"] % config.save_every_steps == 0:
                    save_state()
                if on_step is not None:
                    on_step(counters["global_step"], float(loss.detach()))
            bar.close()
            seconds = time.perf_counter() - epoch_start
            dev = evaluate(model, dev_posts, dev_items, config.eval_batch_size)
            record = {"epoch": epoch + 1, "loss": loss_sum / max(1, n_loss), **dev,
                      "train_seconds": round(seconds, 2),
                      "train_posts_per_s": round(len(train_items) / seconds, 2) if n_loss == len(batches) else None}
            counters["history"].append(record)
            if dev["mner_f1"] > counters["best_dev_f1"]:
                counters["best_dev_f1"], counters["best_epoch"] = dev["mner_f1"], epoch + 1
                if parallel.is_main:
                    model.save_pretrained(output)
            log(f"epoch {epoch + 1}: loss {record['loss']:.4f}, dev MNER F1 {dev['mner_f1']:.2f} "
                f"(best {counters['best_dev_f1']:.2f} at epoch {counters['best_epoch']})")
            if parallel.is_main:
                with (output / HISTORY).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            counters["epoch"], counters["batch"] = epoch + 1, 0
            save_state()
            parallel.barrier()  # a resumed run finds the state of this epoch on every process
    except KeyboardInterrupt:
        log(f"interrupted: saving the resumable state to {output / LAST}")
        save_state()
        raise
    return TrainResult(output, counters["best_dev_f1"], counters["best_epoch"], counters["history"],
                       time.perf_counter() - started)

