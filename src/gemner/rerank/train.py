"""Instruction-tuning the reranker with LoRA (paper §3.3.2, Appendix C).

Each gold entity of the training split becomes one Table 7 prompt whose candidates are built by
`training_candidates` (gold + K-2 siblings + 1 other coarse type, shuffled, seeded); the loss is the
negative log-likelihood of the gold answer's tokens (label + end-of-turn), prompt tokens masked.
AdamW, linear warm-up then linear decay, an effective batch of 4 (`batch_size`, kept whatever the
processes and `accumulate`). Checkpoints (adapter, optimizer state, step) are safetensors + JSON in
`<output>/checkpoint/`, written by the main process; rerunning the same command resumes from there.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data.schema import LabelSchema
from ..data.types import Post, PredictedEntity
from ..data.userio import read_predictions
from ..distributed import DataParallel, describe_batch
from .candidates import training_candidates
from .config import DEV_SEED_OFFSET, PAPER_GAMMA, RerankerConfig
from .filter import entity_entropy, is_hard
from .model import ADAPTER_FILE, Reranker
from .prompt import RerankQuery
from .scoring import answer_token_logprobs, build_answer_batch

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
LOG_FILE = "train_log.jsonl"
DEV_ACCURACY_FILE = "dev_accuracy.json"
RANK_SEED_STRIDE = 1_000_003  # other processes draw other dropout masks than the main one


def gold_queries(posts: Sequence[Post], schema: LabelSchema, k: int, seed: int, limit: int | None = None,
                 captions: dict[str, str] | None = None, pool: Sequence[str] | None = None) -> list[RerankQuery]:
    """Training-style queries for every gold entity (a seeded subset of `limit` when given). Each query
    carries its post's image (`post.image`: set when the dataset was loaded with its images), which an
    image-text-to-text reranker sees, and its caption, which a text-only one sees instead. `pool`: the
    labels other candidates are drawn from (default: the schema's)."""
    rng = random.Random(seed)
    queries = []
    for post in posts:
        for entity in post.entities:
            candidates = training_candidates(entity.type, schema, k, rng, pool)
            queries.append(RerankQuery(tuple(post.tokens), entity.start, entity.end, tuple(candidates),
                                       image=post.image, caption=(captions or {}).get(post.id, ""),
                                       answer=entity.type))
    if limit is not None and limit < len(queries):
        queries = random.Random(seed + 1).sample(queries, limit)
    return queries


def split_queries(posts: Sequence[Post], schema: LabelSchema, split: str, k: int, seed: int,
                  limit: int | None = None, captions: dict[str, str] | None = None,
                  pool: Sequence[str] | None = None) -> list[RerankQuery]:
    """The recipe's queries of one split: the dev subset is drawn with `seed + DEV_SEED_OFFSET`, so that
    `train reranker` and `eval-reranker` with the same seed measure the same entities."""
    offset = DEV_SEED_OFFSET if split == "dev" else 0
    return gold_queries(posts, schema, k, seed + offset, limit, captions, pool)


def candidate_pool(config: RerankerConfig, train_posts: Sequence[Post]) -> list[str] | None:
    """The labels a run draws training candidates from (`RerankerConfig.candidate_pool`); None: the schema's."""
    if config.candidate_pool == "schema":
        return None
    return sorted({entity.type for post in train_posts for entity in post.entities})


def sent_entities(posts: Sequence[Post], predictions: Mapping[str, Sequence[PredictedEntity]],
                  gamma: float) -> list[Post]:
    """The posts keeping only the gold entities the sample filter sends to the reranker: those whose span
    `predictions` (the recogniser's predictions of these posts) holds with an entropy above `gamma`."""
    hard = {(post_id, e.start, e.end) for post_id, entities in predictions.items() for e in entities
            if (h := entity_entropy(e.scores)) is not None and is_hard(h, gamma)}
    return [replace(post, entities=[e for e in post.entities if (post.id, e.start, e.end) in hard])
            for post in posts]


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def encode_batch(reranker: Reranker, queries: Sequence[RerankQuery]) -> Any:
    prompts, answers, pixels = [], [], []
    for query in queries:
        encoded = reranker.encode_prompt(query)
        prompts.append(encoded["input_ids"][0].tolist())
        answers.append(reranker.answer_ids(query.answer or ""))
        if "pixel_values" in encoded:
            pixels.append(encoded["pixel_values"])
    pixel_values = torch.cat(pixels) if pixels else None
    return build_answer_batch(prompts, answers, reranker.tokenizer.pad_token_id, pixel_values, reranker.device)


def answer_nll(reranker: Reranker, queries: Sequence[RerankQuery]) -> torch.Tensor:
    """Summed negative log-likelihood of the gold answers' tokens (divide by their number for the mean)."""
    batch = encode_batch(reranker, queries)
    token_lp = answer_token_logprobs(reranker.model, batch)
    return -(token_lp * batch.answer_mask.float()).sum()


def answer_loss(reranker: Reranker, queries: Sequence[RerankQuery]) -> torch.Tensor:
    """Mean negative log-likelihood of the gold answers' tokens."""
    return answer_nll(reranker, queries) / answer_tokens(reranker, queries)


def answer_tokens(reranker: Reranker, queries: Sequence[RerankQuery]) -> int:
    """How many answer tokens the loss of `queries` averages over (the whole batch's, on every process)."""
    return sum(len(reranker.answer_ids(query.answer or "")) for query in queries)


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@dataclass
class TrainReport:
    steps: int
    examples: int
    seconds: float
    final_loss: float
    log: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0


def _save_checkpoint(reranker: Reranker, optimizer: torch.optim.Optimizer, step: int, folder: Path) -> None:
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    reranker.save_pretrained(tmp)
    state = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value.detach().cpu().contiguous()
               for idx, slots in state["state"].items() for key, value in slots.items()}
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # atomic on one filesystem: a crash leaves the old or the new checkpoint


def _load_checkpoint(reranker: Reranker, optimizer: torch.optim.Optimizer, folder: Path) -> int:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(reranker.model, load_file(str(folder / ADAPTER_FILE)))
    meta = json.loads((folder / STATE_FILE).read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in load_file(str(folder / OPTIMIZER_FILE)).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"])


def train_reranker(reranker: Reranker, queries: Sequence[RerankQuery], output: str | Path, *,
                   save_every: int = 200, log: Callable[[str], None] = print,
                   on_epoch_end: Callable[[int], dict[str, float]] | None = None,
                   on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """LoRA-tune `reranker` (call `add_lora` first) on `queries`; saves the adapter to `output`.

    Each step takes `batch_size` queries (the effective batch); started as several processes
    (`gemner.distributed`), each takes its share, in `accumulate` micro-batches, and the gradients are
    averaged: the same training as one process. Only the main process writes. `on_step(step, loss)`
    runs after every step; an exception raised there stops training like a kill would."""
    cfg = reranker.config
    parallel = DataParallel.from_env(str(reranker.device))
    log = parallel.main_only(log)
    output = Path(output)
    if not queries:
        raise ValueError("no training examples")
    params = [p for _, p in trainable_parameters(reranker.model)]
    if not params:
        raise ValueError("the model has no trainable parameters (call add_lora first)")
    parallel.broadcast_tensors(params)  # the same fresh adapter everywhere (the frozen base is the same file)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(queries) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    warmup = int(cfg.warmup_ratio * total)
    checkpoint = output / CHECKPOINT_DIR
    step = _load_checkpoint(reranker, optimizer, checkpoint) if (checkpoint / STATE_FILE).is_file() else 0
    resumed_from = step
    if parallel.is_main:
        output.mkdir(parents=True, exist_ok=True)
        _keep_log_until(output / LOG_FILE, step)
    log(describe_batch(cfg.batch_size, parallel.world, cfg.accumulate, "entities"))
    if step:
        log(f"resuming from step {step} of {total} ({checkpoint})")
    report = TrainReport(total, len(queries), 0.0, float("nan"), resumed_from=resumed_from)
    started = time.perf_counter()
    reranker.model.train()
    try:
        while step < total:
            epoch, index = divmod(step, per_epoch)
            order = list(range(len(queries)))
            random.Random(cfg.seed + epoch).shuffle(order)
            batch = [queries[i] for i in order[index * cfg.batch_size:(index + 1) * cfg.batch_size]]
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, total, warmup)
            loss = _train_step(reranker, batch, params, parallel, step)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            entry = {"step": step, "epoch": round(step / per_epoch, 4), "loss": round(loss, 5),
                     "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - started, 2)}
            report.log.append(entry)
            report.final_loss = loss
            if parallel.is_main:
                _append_log(output, entry)
                if step % save_every == 0 or step == total:
                    _save_checkpoint(reranker, optimizer, step, checkpoint)
            if step % max(1, min(50, per_epoch)) == 0 or step == total:
                log(f"step {step}/{total} epoch {entry['epoch']:.2f} loss {entry['loss']:.4f} "
                    f"({entry['seconds']:.0f} s)")
            if on_step is not None:
                on_step(step, loss)
            if on_epoch_end is not None and parallel.is_main and (step % per_epoch == 0 or step == total):
                reranker.model.eval()
                _append_log(output, {"step": step, **on_epoch_end(step)})
                reranker.model.train()
    except KeyboardInterrupt:
        if parallel.is_main:
            _save_checkpoint(reranker, optimizer, step, checkpoint)
        log(f"interrupted at step {step}; checkpoint saved, rerun the same command to resume")
        raise
    finally:
        reranker.model.eval()
    report.seconds = time.perf_counter() - started
    if parallel.is_main:
        reranker.save_pretrained(output)
    return report


def _train_step(reranker: Reranker, batch: Sequence[RerankQuery], params: list[torch.nn.Parameter],
                parallel: DataParallel, step: int) -> float:
    """Gradients of the batch's mean answer-token loss, through this process's micro-batches and the
    all-reduce, clipped; returns the batch's loss. Each micro-batch's summed loss is divided by the
    whole batch's answer tokens, so shares of any size add up to the one-process gradient."""
    cfg = reranker.config
    # LoRA dropout masks: a function of (seed, step, process), so a resumed run draws what the first did
    torch.manual_seed(cfg.seed + step + RANK_SEED_STRIDE * parallel.rank)
    tokens = answer_tokens(reranker, batch)
    local = 0.0
    for micro in parallel.micro_batches(batch, cfg.accumulate):
        with torch.autocast(reranker.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            nll = answer_nll(reranker, micro)
        (nll * (parallel.world / tokens)).backward()
        local += float(nll.detach())
    parallel.average_gradients(params)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    return parallel.all_sum([local], reranker.device)[0] / tokens


def _keep_log_until(path: Path, step: int) -> None:
    """The log of the steps up to the checkpoint resumed from (a killed run logged steps past it)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if step and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))


def _append_log(output: Path, entry: dict[str, Any]) -> None:
    with (output / LOG_FILE).open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def train_reranker_on_dataset(config: RerankerConfig, dataset: str | Path, output: str | Path, *,
                              images: str | Path | None = None, captions: dict[str, str] | None = None,
                              dev_max: int = 300, eval_before: bool = False, save_every: int = 200,
                              device: str | None = None, log: Callable[[str], None] = print,
                              trust_remote_code: bool = False, hard_from: str | Path | None = None,
                              gamma: float = PAPER_GAMMA,
                              on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """The paper's recipe (§3.3.2) end to end: gold queries of the train split, LoRA training (resumable),
    candidate accuracy on a seeded dev subset before/after; the results are also `dev_accuracy.json`.

    `dataset`: a shipped benchmark name or an upstream folder (`gemner.data.folders`). `images`: the
    posts' images (a folder's own `images/` by default). An image-text-to-text model is trained on
    (image, Table 7 prompt, candidates), as the paper does; a text-only model gets `captions` instead.
    `hard_from`: the recogniser's predictions of the train split; only the gold entities the sample filter
    sends at `gamma` are trained on (what the reranker is asked at inference; the paper trains on all).

    Run as several processes (`gemner.distributed.run_processes`, `accelerate launch`), training is
    data-parallel (`train_reranker`); the main process alone measures dev accuracy and writes."""
    from ..data.folders import load_split
    from ..devices import resolve_device
    from .infer import candidate_accuracy, chance_accuracy

    output = Path(output)
    parallel = DataParallel.from_env(resolve_device(device))
    device, log = parallel.place(resolve_device(device)), parallel.main_only(log)
    train = load_split(dataset, "train", images_dir=images)
    pool = candidate_pool(config, train.posts)
    if hard_from is not None:
        train.posts = sent_entities(train.posts, read_predictions(hard_from), gamma)
        log(f"training on the entities the sample filter sends (entropy > {gamma} in {hard_from})")
    queries = split_queries(train.posts, train.schema, "train", config.k, config.seed, config.max_train, captions,
                            pool)
    dev_queries: list[RerankQuery] = []
    if dev_max:
        dev = load_split(dataset, "dev", images_dir=images)
        dev_queries = split_queries(dev.posts, dev.schema, "dev", config.k, config.seed, dev_max, captions, pool)
    reranker = Reranker.from_base(config, device=device, schema=train.schema, trust_remote_code=trust_remote_code)
    _note_inputs(reranker.kind, queries, captions, log)
    results: dict[str, Any] = {"dev_entities": len(dev_queries), "chance": chance_accuracy(dev_queries),
                               "train_with_images": sum(q.image is not None for q in queries)
                               if reranker.kind == "vision" else 0}
    if eval_before and dev_queries and parallel.is_main:
        results["before"] = candidate_accuracy(reranker, dev_queries)
        log(f"dev candidate accuracy before: {100 * results['before']:.1f}% (chance {100 * results['chance']:.1f}%)")
    torch.manual_seed(config.seed)  # the adapter's initial weights: the same run from the same seed
    reranker.add_lora()
    log(f"training on {len(queries)} {train.name} entities: {config.model}, K={config.k}, lr={config.lr}, "
        f"epochs={config.epochs}, LoRA rank {config.lora_rank}, bf16={config.bf16}")
    report = train_reranker(reranker, queries, output, save_every=save_every, log=log, on_step=on_step)
    results.update(train_seconds=round(report.seconds, 1), steps=report.steps, examples=report.examples,
                   final_loss=report.final_loss, resumed_from=report.resumed_from)
    if not parallel.is_main:
        return results
    if dev_queries:
        results["after"] = candidate_accuracy(reranker, dev_queries)
        log(f"dev candidate accuracy after: {100 * results['after']:.1f}%")
    (output / DEV_ACCURACY_FILE).write_text(json.dumps(results, indent=2))
    return results


def _note_inputs(kind: str, queries: Sequence[RerankQuery], captions: dict[str, str] | None,
                 log: Callable[[str], None]) -> None:
    """Say what the model will see: a vision model trained without images and then given them at
    inference learns a different task from the one it is asked (and a text-only model sees no image)."""
    if kind == "vision":
        with_image = sum(q.image is not None for q in queries)
        log(f"training with images: {with_image} of {len(queries)} entities have their post's image")
        if with_image < len(queries):
            log("note: entities without an image are trained text-only; give the images (--images DIR) "
                "so that training matches inference, where the reranker sees the image")
    elif captions:
        log(f"text-only model: {sum(bool(q.caption) for q in queries)} of {len(queries)} entities have a caption")
