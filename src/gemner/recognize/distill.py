"""Distil an ensemble of recognisers (the same recipe on other seeds, or larger models) into one.

Each teacher reads the training posts once; its per-word tag distribution on the fine path is its CRF's
posterior marginals P(c_i = k | S) (`crf_log_marginals`; the softmax with the softmax head), and the
teachers' distributions are averaged. The student is then trained on

    (1 - w) * NLL(gold fine tags) + w * mean over words of CE(teachers' distribution, student's marginals)

on the fine path (`soft_target_loss`, w = `RecognizerConfig.distill_weight`); the coarse path, M and eq. 8
are unchanged. The teachers must have the student's fine tag set; their encoders may differ (the targets
live on words, not subwords). A word one model cut and another kept (`max_length`) has no target.

The targets are computed once and kept beside the run (`TARGETS_FILE`, safetensors), so a resumed run
reads them instead of running the teachers again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.issues import DataError
from ..data.schema import LabelSchema
from ..data.types import Post
from .crf import CRF

TARGETS_FILE = "teacher_targets.safetensors"


def word_log_distribution(emissions: torch.Tensor, crf: CRF | None, mask: torch.Tensor) -> torch.Tensor:
    """log P(c_i = k | S) per word [B, W, T]: the CRF's posterior marginals, or the softmax without a CRF."""
    return crf.log_marginals(emissions, mask) if crf is not None else F.log_softmax(emissions, dim=-1)


def soft_target_loss(emissions: torch.Tensor, targets: torch.Tensor, crf: CRF | None,
                     mask: torch.Tensor) -> torch.Tensor:
    """Mean over the words with a target of -sum_k q_i(k) log p_i(k): q the teachers' distribution [B, W, T]
    (rows of zeros: no target), p the student's CRF marginals over `mask`'s words (softmax without a CRF)."""
    emissions = emissions.float()
    log_p = word_log_distribution(emissions, crf, mask)
    has_target = (targets.sum(-1) > 0) & mask
    if not bool(has_target.any()):
        return emissions.sum() * 0.0
    cross_entropy = -(targets.float() * log_p).sum(-1)
    return cross_entropy[has_target].mean()


@torch.no_grad()
def teacher_distributions(model, posts: Sequence[Post], knowledge: dict[str, str] | None,
                          batch_size: int = 32) -> list[torch.Tensor]:
    """One model's fine-path tag distribution of every word it kept, per post: [n_words, T] each (an empty
    post: [0, T])."""
    from .encoding import collate, encode_posts
    from .predict import input_limit

    model.eval()
    items = encode_posts(model.tokenizer, posts, knowledge, input_limit(model))
    items.sort(key=lambda item: len(item.input_ids))  # little padding
    pad_id, device = model.tokenizer.pad_token_id or 0, next(model.parameters()).device
    result = [torch.zeros(0, len(model.schema.tags))] * len(posts)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = collate(chunk, pad_id).to(device)
        emissions, _ = model.emissions(batch)
        probs = word_log_distribution(emissions.fine.float(), model.fine_crf, batch.word_mask).exp()
        for row, item in enumerate(chunk):
            result[item.index] = probs[row, :item.n_words].cpu()
    return result


def teacher_targets(teachers: Sequence[str | Path], schema: LabelSchema, posts: Sequence[Post],
                    knowledge: dict[str, str] | None, *, device: str = "cpu", batch_size: int = 32,
                    log: Callable[[str], None] = print) -> list[torch.Tensor]:
    """The teachers' averaged fine-tag distribution of every word of every post, [len(post.tokens), T] each
    (rows of zeros where a teacher cut the post); float16 to halve the memory."""
    from .inference import prepare_for_inference
    from .model import Recognizer

    if not teachers:
        raise DataError("distillation needs at least one teacher checkpoint")
    sums = [torch.zeros(len(post.tokens), len(schema.tags)) for post in posts]
    kept = [len(post.tokens) for post in posts]
    for path in teachers:
        model = Recognizer.from_pretrained(path, device=device)
        if tuple(model.schema.tags) != tuple(schema.tags):
            raise DataError(f"teacher {path} has other labels than the student ({len(model.schema.tags)} tags "
                            f"against {len(schema.tags)}); train it on the same label set")
        prepare_for_inference(model, "float32")
        log(f"teacher {path}: reading {len(posts)} training posts")
        for index, probs in enumerate(teacher_distributions(model, posts, knowledge, batch_size)):
            n = min(len(probs), len(posts[index].tokens))
            sums[index][:n] += probs[:n]
            kept[index] = min(kept[index], n)
        del model
    targets = []
    for total, n in zip(sums, kept, strict=True):
        total[n:] = 0.0  # a word some teacher did not see has no target
        targets.append((total / len(teachers)).half())
    return targets


def save_targets(path: Path, targets: Sequence[torch.Tensor], teachers: Sequence[str | Path]) -> None:
    from safetensors.torch import save_file

    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    width = targets[0].shape[1] if targets else 0
    flat = torch.cat(list(targets)) if targets else torch.zeros(0, width, dtype=torch.float16)
    save_file({"targets": flat.contiguous(), "lengths": lengths}, str(path),
              metadata={"teachers": json.dumps([str(t) for t in teachers])})


def load_targets(path: Path, teachers: Sequence[str | Path], posts: Sequence[Post]) -> list[torch.Tensor] | None:
    """The targets saved at `path` when they were made by these teachers for these posts, else None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        if json.loads((handle.metadata() or {}).get("teachers", "[]")) != [str(t) for t in teachers]:
            return None
        flat, lengths = handle.get_tensor("targets"), handle.get_tensor("lengths").tolist()
    if lengths != [len(post.tokens) for post in posts]:
        return None
    return list(torch.split(flat, lengths))
