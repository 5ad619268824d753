"""Constrained answering: log-likelihood of each candidate's tokens after the prompt.

Shared-prefix scoring runs the prompt once (batch of one), repeats its KV cache over the K candidates
and runs only the candidates' tokens, all K in one batch. The start common to every prompt (chat
template, Table 7 instruction, few-shot turns) can be cached once per run (`StaticPrefix`).
From-scratch scoring runs prompt + candidate for every candidate (left-padded batch with explicit
position ids); it is the baseline of `benchmarks/reranker_speed.py`, the equality check of the tests,
and the training forward pass.

A candidate's score is the sum of its token log-probabilities (label tokens + the end-of-turn token):
the model's probability of answering exactly that label. `length_norm="mean"` divides by the token
count instead; since a label's later tokens are nearly free once its first token is chosen, the mean
favours labels of many tokens, and it scored no better on FMNERG dev (see README).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

Tensor = torch.Tensor


def _inner(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_keyword(model: Any) -> str:
    """transformers 5 names the KV cache argument `cache`; earlier versions `past_key_values`."""
    params = inspect.signature(type(_inner(model)).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def aggregate(token_logprobs: Sequence[Tensor], length_norm: str = "sum") -> list[float]:
    """One score per candidate from its token log-probabilities."""
    if length_norm not in ("mean", "sum"):
        raise ValueError(f"length_norm must be 'mean' or 'sum', got {length_norm!r}")
    return [float(lp.mean() if length_norm == "mean" else lp.sum()) for lp in token_logprobs]


def _pad_right(answers: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    width = max(len(a) for a in answers)
    ids = torch.full((len(answers), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(answers), width), dtype=torch.long, device=device)
    for row, answer in enumerate(answers):
        ids[row, : len(answer)] = torch.tensor(answer, dtype=torch.long)
        mask[row, : len(answer)] = 1
    return ids, mask


@dataclass
class StaticPrefix:
    """The start that every prompt shares (chat template, instruction, few-shot turns) and its KV
    cache, computed once; each prompt starts from a copy, so the cache itself never changes."""

    ids: list[int]
    cache: Any


@torch.no_grad()
def build_static_prefix(model: Any, ids: Sequence[int], device: Any) -> StaticPrefix:
    out = model(input_ids=torch.tensor([list(ids)], device=device), use_cache=True, logits_to_keep=1)
    return StaticPrefix(list(ids), output_cache(out))


def _run_prompt(model: Any, prompt: dict[str, Tensor], keyword: str, static: StaticPrefix | None) -> Any:
    """The prompt's forward pass (last logits and cache), from the static prefix's cache when it applies."""
    ids = prompt["input_ids"]
    n = len(static.ids) if static is not None else 0
    if static is not None and n < ids.shape[1] and ids[0, :n].tolist() == static.ids:
        rest = {key: value for key, value in prompt.items() if key != "input_ids"}
        return model(input_ids=ids[:, n:], use_cache=True, logits_to_keep=1,
                     **{keyword: copy.deepcopy(static.cache)}, **rest)
    return model(**prompt, use_cache=True, logits_to_keep=1)


@torch.no_grad()
def shared_prefix_logprobs(model: Any, prompt: dict[str, Tensor], answers: Sequence[Sequence[int]],
                           pad_id: int, static: StaticPrefix | None = None) -> list[Tensor]:
    """Token log-probs of each answer; the prompt's forward pass is done once and its cache shared
    (and, with `static`, the prompt's common start is not recomputed at all)."""
    if prompt["input_ids"].shape[0] != 1:
        raise ValueError("shared-prefix scoring takes one prompt at a time")
    if any(len(a) == 0 for a in answers):
        raise ValueError("every answer needs at least one token")
    keyword = cache_keyword(model)
    out = _run_prompt(model, prompt, keyword, static)
    first = out.logits[0, -1].float().log_softmax(-1)
    ids, mask = _pad_right(answers, pad_id, first.device)
    token_lp = first[ids[:, 0]].unsqueeze(1)
    if ids.shape[1] > 1:
        cache = output_cache(out)
        cache.batch_repeat_interleave(len(answers))
        prompt_mask = prompt["attention_mask"].expand(len(answers), -1)
        out = model(input_ids=ids[:, :-1], attention_mask=torch.cat([prompt_mask, mask[:, :-1]], 1),
                    use_cache=True, **{keyword: cache})
        rest = out.logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        token_lp = torch.cat([token_lp, rest], 1)
    return [token_lp[row, : len(answer)] for row, answer in enumerate(answers)]


@dataclass
class AnswerBatch:
    """Rows of (prompt ids, answer ids), left-padded so every answer ends at the last position."""

    input_ids: Tensor
    attention_mask: Tensor
    position_ids: Tensor
    answer_width: int
    answer_mask: Tensor  # [B, answer_width]: which of the last positions belong to each row's answer
    pixel_values: Tensor | None = None


def build_answer_batch(prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], pad_id: int,
                       pixel_values: Tensor | None = None, device: Any = "cpu") -> AnswerBatch:
    rows = [[*p, *a] for p, a in zip(prompts, answers, strict=True)]
    width = max(len(r) for r in rows)
    answer_width = max(len(a) for a in answers)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    answer_mask = torch.zeros((len(rows), answer_width), dtype=torch.bool)
    for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
        answer_mask[i, answer_width - len(answer):] = True
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return AnswerBatch(ids.to(device), mask.to(device), positions.to(device), answer_width,
                       answer_mask.to(device), pixel_values)


def answer_token_logprobs(model: Any, batch: AnswerBatch) -> Tensor:
    """[B, answer_width] log-probs of the answer tokens (entries outside `answer_mask` are junk).
    Only the last answer_width + 1 positions go through the LM head."""
    extra = {"pixel_values": batch.pixel_values} if batch.pixel_values is not None else {}
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, use_cache=False,
                logits_to_keep=batch.answer_width + 1, **extra)
    logits = out.logits[:, -(batch.answer_width + 1):-1].float()
    targets = batch.input_ids[:, -batch.answer_width:]
    return logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)


@torch.no_grad()
def from_scratch_logprobs(model: Any, prompt: dict[str, Tensor], answers: Sequence[Sequence[int]],
                          pad_id: int) -> list[Tensor]:
    """Same result as `shared_prefix_logprobs`, recomputing the prompt for every candidate."""
    prompt_ids = prompt["input_ids"][0].tolist()
    pixels = prompt.get("pixel_values")
    if pixels is not None:
        pixels = pixels.expand(len(answers), *pixels.shape[1:])
    batch = build_answer_batch([prompt_ids] * len(answers), answers, pad_id, pixels, prompt["input_ids"].device)
    token_lp = answer_token_logprobs(model, batch)
    return [token_lp[row, batch.answer_width - len(answer):] for row, answer in enumerate(answers)]


@torch.no_grad()
def batched_prefix_logprobs(model: Any, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[Sequence[int]]],
                            pad_id: int, static: StaticPrefix) -> list[list[Tensor]]:
    """`shared_prefix_logprobs` for many prompts at once: token log-probs of `answers[i][j]` after `prompts[i]`.

    Every prompt must start with `static.ids`. One forward runs the rest of all prompts (left-padded
    after the static prefix, explicit position ids), then one forward runs every candidate of every
    prompt on a copy of its prompt's cache rows: no prompt is encoded twice."""
    n = len(static.ids)
    if any(len(p) <= n or list(p[:n]) != static.ids for p in prompts):
        raise ValueError("every prompt must extend the static prefix")
    if any(len(a) == 0 for group in answers for a in group):
        raise ValueError("every answer needs at least one token")
    keyword = cache_keyword(model)
    device = next(model.parameters()).device
    suffix_ids, suffix_mask = _pad_left([p[n:] for p in prompts], pad_id, device)
    cache = copy.deepcopy(static.cache)
    cache.batch_repeat_interleave(len(prompts))
    prompt_mask = torch.cat([torch.ones((len(prompts), n), dtype=torch.long, device=device), suffix_mask], 1)
    out = model(input_ids=suffix_ids, attention_mask=prompt_mask, position_ids=n + _positions(suffix_mask),
                use_cache=True, logits_to_keep=1, **{keyword: cache})
    first = out.logits[:, -1].float().log_softmax(-1)
    owner = torch.tensor([i for i, group in enumerate(answers) for _ in group], dtype=torch.long, device=device)
    flat = [a for group in answers for a in group]
    ids, mask = _pad_right(flat, pad_id, device)
    token_lp = first[owner, ids[:, 0]].unsqueeze(1)
    if ids.shape[1] > 1:
        cache = output_cache(out)
        cache.batch_select_indices(owner)
        prompt_lengths = prompt_mask.sum(-1)[owner, None]
        positions = prompt_lengths + torch.arange(ids.shape[1] - 1, device=device)
        out = model(input_ids=ids[:, :-1], attention_mask=torch.cat([prompt_mask[owner], mask[:, :-1]], 1),
                    position_ids=positions, use_cache=True, **{keyword: cache})
        rest = out.logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        token_lp = torch.cat([token_lp, rest], 1)
    starts = torch.tensor([0, *map(len, answers)]).cumsum(0).tolist()
    return [[token_lp[starts[i] + j, : len(a)] for j, a in enumerate(group)] for i, group in enumerate(answers)]


def _pad_left(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: Tensor) -> Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)
