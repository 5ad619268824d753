"""Choosing one candidate for a query: by constrained scoring (default) or free generation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch

from .generate import generate_answer, map_to_candidate
from .model import Reranker
from .prompt import RerankQuery
from .scoring import (
    StaticPrefix,
    aggregate,
    batched_prefix_logprobs,
    build_static_prefix,
    from_scratch_logprobs,
    shared_prefix_logprobs,
)

# Two unlike queries: their prompts' common token prefix is what every prompt starts with.
_PROBES = (RerankQuery(("alpha", "beta"), 0, 1, ("city", "park")),
           RerankQuery(("Zeta", "omega", "x"), 1, 2, ("music",)))
MIN_STATIC_TOKENS = 8
# Queries scored in one batched forward. Every candidate row carries its own copy of the prompt's KV cache
# (static prefix included), so memory traffic grows with rows: on a 2-core CPU (Dec 2026, shipped SmolLM2-135M)
# 8 queries a forward cost 285-317 ms per entity against 388-447 ms at 32 (benchmarks/scaling.py).
BATCH_QUERIES = 8


@dataclass
class RerankResult:
    candidates: list[str]
    choice: str
    logprobs: list[float] | None  # one score per candidate (mode "score"), else None
    generated: str | None = None  # raw text (mode "generate")
    mapped_by: str | None = None  # exact | normalised | contained | similarity (mode "generate")
    extra: dict[str, Any] = field(default_factory=dict)

    def to_scores(self, previous_label: str) -> dict[str, Any]:
        """The `scores.rerank` record of the predictions format."""
        record: dict[str, Any] = {
            "candidates": self.candidates, "choice": self.choice,
            "logprobs": [round(v, 6) for v in self.logprobs] if self.logprobs is not None else None,
            "from": previous_label,
        }
        if self.generated is not None:
            record.update(generated=self.generated, mapped_by=self.mapped_by)
        return record


def inference_precision(reranker: Reranker) -> AbstractContextManager:
    """bf16 autocast when `bf16_inference` is set, else full precision."""
    return torch.autocast(reranker.device.type, dtype=torch.bfloat16, enabled=reranker.config.bf16_inference)


def static_prefix(reranker: Reranker) -> StaticPrefix | None:
    """The KV cache of the prompt start shared by all queries (text prompts), or None when short.
    Recompute it after the weights change (training). Prompts that do not start with it (an image
    placeholder early in the prompt) are simply run in full."""
    ids = [reranker.encode_prompt(q)["input_ids"][0].tolist() for q in _PROBES]
    common = 0
    while common < min(map(len, ids)) and ids[0][common] == ids[1][common]:
        common += 1
    common -= 1  # the last shared token could merge differently with other texts: leave it out
    if common < MIN_STATIC_TOKENS:
        return None
    with inference_precision(reranker):
        return build_static_prefix(reranker.model, ids[0][:common], reranker.device)


def candidate_scores(reranker: Reranker, query: RerankQuery, shared: bool = True,
                     static: StaticPrefix | None = None) -> list[float]:
    """Length-normalised log-likelihood of every candidate (see `scoring`)."""
    prompt = reranker.encode_prompt(query)
    answers = [reranker.answer_ids(label) for label in query.candidates]
    pad = reranker.tokenizer.pad_token_id
    with inference_precision(reranker):
        if shared:
            token_lp = shared_prefix_logprobs(reranker.model, prompt, answers, pad, static)
        else:
            token_lp = from_scratch_logprobs(reranker.model, prompt, answers, pad)
    return aggregate(token_lp, reranker.config.length_norm)


def rerank_query(reranker: Reranker, query: RerankQuery, mode: str | None = None,
                 shared: bool = True, static: StaticPrefix | None = None) -> RerankResult:
    """The reranker's answer; always one of `query.candidates`."""
    mode = mode or reranker.config.mode
    candidates = list(query.candidates)
    if len(candidates) == 1:
        return RerankResult(candidates, candidates[0], [0.0] if mode == "score" else None)
    if mode == "score":
        scores = candidate_scores(reranker, query, shared, static)
        best = max(range(len(candidates)), key=scores.__getitem__)
        return RerankResult(candidates, candidates[best], scores)
    if mode == "generate":
        with inference_precision(reranker):
            text = generate_answer(reranker.model, reranker.tokenizer, reranker.encode_prompt(query),
                                   reranker.end_id, reranker.config.max_new_tokens)
        choice, rule = map_to_candidate(text, candidates)
        return RerankResult(candidates, choice, None, generated=text, mapped_by=rule)
    raise ValueError(f"mode must be 'score' or 'generate', got {mode!r}")


def rerank_queries(reranker: Reranker, queries: Sequence[RerankQuery], mode: str | None = None,
                   static: StaticPrefix | None = None, batch_queries: int = BATCH_QUERIES) -> list[RerankResult]:
    """`rerank_query` of every query, in order, with the same choices. Text prompts that extend the
    static prefix are scored together (`scoring.batched_prefix_logprobs`), `batch_queries` at a time;
    the others (generation, image prompts, one candidate) go one by one."""
    mode = mode or reranker.config.mode
    results: list[RerankResult | None] = [None] * len(queries)
    batched: list[tuple[int, list[int]]] = []
    for index, query in enumerate(queries):
        prompt = _static_prompt(reranker, query, static) if mode == "score" and len(query.candidates) > 1 else None
        if prompt is None:
            results[index] = rerank_query(reranker, query, mode, static=static)
        else:
            batched.append((index, prompt))
    for start in range(0, len(batched), batch_queries):
        chunk = batched[start:start + batch_queries]
        chosen = [queries[index] for index, _ in chunk]
        answers = [[reranker.answer_ids(label) for label in query.candidates] for query in chosen]
        assert static is not None
        with inference_precision(reranker):
            token_lp = batched_prefix_logprobs(reranker.model, [prompt for _, prompt in chunk], answers,
                                               reranker.tokenizer.pad_token_id, static)
        for (index, _), query, lps in zip(chunk, chosen, token_lp, strict=True):
            scores = aggregate(lps, reranker.config.length_norm)
            best = max(range(len(scores)), key=scores.__getitem__)
            results[index] = RerankResult(list(query.candidates), query.candidates[best], scores)
    return [result for result in results if result is not None]


def _static_prompt(reranker: Reranker, query: RerankQuery, static: StaticPrefix | None) -> list[int] | None:
    """The prompt's token ids when it is a text prompt extending the static prefix, else None."""
    if static is None:
        return None
    prompt = reranker.encode_prompt(query)
    if set(prompt) - {"input_ids", "attention_mask"}:
        return None
    ids = prompt["input_ids"][0].tolist()
    return ids if len(ids) > len(static.ids) and ids[:len(static.ids)] == static.ids else None


def candidate_accuracy(reranker: Reranker, queries: Iterable[RerankQuery], mode: str | None = None,
                       progress: Callable[[int], None] | None = None) -> float:
    """Share of queries whose answer is their gold label (`query.answer`)."""
    hits = total = 0
    static = static_prefix(reranker) if (mode or reranker.config.mode) == "score" else None
    for query in queries:
        if query.answer is None:
            raise ValueError("candidate accuracy needs queries with a gold answer")
        hits += rerank_query(reranker, query, mode, static=static).choice == query.answer
        total += 1
        if progress is not None:
            progress(total)
    return hits / total if total else 0.0


def accuracy_by_scoring_rule(reranker: Reranker, queries: Sequence[RerankQuery]) -> dict[str, float]:
    """Candidate accuracy under each way of turning token log-probs into a score, from one scoring pass:
    `sum`, `mean` and `first` (the first answer token alone)."""
    static = static_prefix(reranker)
    pad = reranker.tokenizer.pad_token_id
    hits = {"sum": 0, "mean": 0, "first": 0}
    for query in queries:
        answers = [reranker.answer_ids(label) for label in query.candidates]
        with inference_precision(reranker):
            token_lp = shared_prefix_logprobs(reranker.model, reranker.encode_prompt(query), answers, pad, static)
        rules = {"sum": aggregate(token_lp, "sum"), "mean": aggregate(token_lp, "mean"),
                 "first": [float(lp[0]) for lp in token_lp]}
        for rule, scores in rules.items():
            hits[rule] += query.candidates[max(range(len(scores)), key=scores.__getitem__)] == query.answer
    return {rule: n / len(queries) for rule, n in hits.items()} if queries else dict.fromkeys(hits, 0.0)


def generation_accuracy(reranker: Reranker, queries: Sequence[RerankQuery]) -> tuple[float, dict[str, int]]:
    """Accuracy of free generation mapped onto the candidates, and how often each mapping rule applied."""
    hits, rules = 0, {"exact": 0, "normalised": 0, "contained": 0, "similarity": 0}
    for query in queries:
        result = rerank_query(reranker, query, mode="generate")
        hits += result.choice == query.answer
        rules[result.mapped_by or "exact"] += 1
    return (hits / len(queries) if queries else 0.0), rules


def chance_accuracy(queries: Sequence[RerankQuery]) -> float:
    """Expected accuracy of a uniform random pick among each query's candidates."""
    return sum(1 / len(q.candidates) for q in queries) / len(queries) if queries else 0.0
