"""Batched reranking (the hard entities of many posts scored together) gives the per-entity scorer's
scores and choices: on tiny causal LMs to the last decimal, and with the shipped lite reranker entity
by entity on real FMNERG test posts."""

from __future__ import annotations

import pytest
import torch

from gemner.data.issues import IssueLog
from gemner.rerank.apply import EntityReranker, PostContext
from gemner.rerank.config import RerankerConfig
from gemner.rerank.filter import SampleFilter
from gemner.rerank.infer import rerank_queries, rerank_query, static_prefix
from gemner.rerank.model import Reranker
from gemner.rerank.prompt import RerankQuery
from gemner.rerank.scoring import batched_prefix_logprobs, from_scratch_logprobs
from gemner.rerank.tiny import randomize_lora_b

CONFIG = RerankerConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0)
# Queries of different lengths and candidate counts (1 to 5), so both forwards pad.
QUERIES = (
    RerankQuery(tuple("The geometry of plants . Garfield Park Conservatory".split()), 5, 7,
                ("park", "continent", "city", "country", "film_and_television_works")),
    RerankQuery(("Obama",), 0, 1, ("politician", "author")),
    RerankQuery(tuple("RT @ AwkwardGoogle : Harry Potter and the long tail of a very long tweet".split()), 4, 6,
                ("character", "author", "film_and_television_works")),
    RerankQuery(("Paris", "in", "spring"), 0, 1, ("city",)),
    RerankQuery(tuple("Golden State Warriors win NBA championship".split()), 0, 3,
                ("sports_team", "sports_league", "company", "magazine")),
)


def lora_reranker(path: str, seed: int = 0) -> Reranker:
    reranker = Reranker.load(path, CONFIG, device="cpu")
    reranker.add_lora()
    randomize_lora_b(reranker.model, seed)
    return reranker


@pytest.mark.parametrize("fixture", ["tiny_causal_lm", "tiny_chat_lm"])
def test_batched_scores_equal_scores_from_scratch(fixture, request):
    reranker = lora_reranker(request.getfixturevalue(fixture))
    static = static_prefix(reranker)
    assert static is not None
    pad = reranker.tokenizer.pad_token_id
    prompts = [reranker.encode_prompt(q) for q in QUERIES]
    answers = [[reranker.answer_ids(c) for c in q.candidates] for q in QUERIES]
    batched = batched_prefix_logprobs(reranker.model, [p["input_ids"][0].tolist() for p in prompts], answers,
                                      pad, static)
    for prompt, group, got in zip(prompts, answers, batched, strict=True):
        expected = from_scratch_logprobs(reranker.model, prompt, group, pad)
        assert len(got) == len(group)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rerank_queries_gives_rerank_query_results_in_order(tiny_chat_lm):
    reranker = lora_reranker(tiny_chat_lm, seed=3)
    static = static_prefix(reranker)
    one_by_one = [rerank_query(reranker, q, static=static) for q in QUERIES]
    for size in (2, 32):  # several batches, and one
        together = rerank_queries(reranker, QUERIES, static=static, batch_queries=size)
        assert [r.choice for r in together] == [r.choice for r in one_by_one]
        for a, b in zip(together, one_by_one, strict=True):
            assert a.candidates == b.candidates
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=1e-5)


def test_batched_scoring_rejects_prompts_outside_the_static_prefix(tiny_causal_lm):
    reranker = lora_reranker(tiny_causal_lm)
    static = static_prefix(reranker)
    with pytest.raises(ValueError, match="static prefix"):
        batched_prefix_logprobs(reranker.model, [[1, 2, 3]], [[[4]]], 0, static)


def _shipped_models():
    from gemner.paths import models_dir

    recognizer, reranker = models_dir() / "fmnerg-recognizer-lite", models_dir() / "fmnerg-reranker-lite"
    if not (recognizer / "config.json").is_file() or not (reranker / "adapter_config.json").is_file():
        pytest.skip("shipped lite models missing")
    return recognizer, reranker


@pytest.mark.slow
def test_shipped_reranker_batched_choices_equal_per_entity_choices_on_fmnerg_posts():
    from gemner.data.benchmarks import load_dataset
    from gemner.recognize import Recognizer
    from gemner.recognize.predict import predict_posts

    recognizer_dir, reranker_dir = _shipped_models()
    posts = load_dataset("fmnerg", "test").posts[:12]
    recognizer = Recognizer.from_pretrained(str(recognizer_dir), device="cpu")
    reranker = Reranker.load(str(reranker_dir), device="cpu")
    run = EntityReranker.build(reranker, SampleFilter(0.2, rerank_all=True, k=5), recognizer.schema)
    items = [(entities, PostContext(post.id, post.tokens)) for post, entities in predict_posts(recognizer, posts)]
    log = IssueLog()
    batched = run.rerank_posts(items, log)
    per_entity = [run.rerank_entities(entities, post, log) for entities, post in items]
    hard = 0
    for new_post, old_post in zip(batched, per_entity, strict=True):
        for new, old in zip(new_post, old_post, strict=True):
            assert new.type == old.type and new.coarse == old.coarse
            if "rerank" in old.scores:
                hard += 1
                assert new.scores["rerank"]["choice"] == old.scores["rerank"]["choice"]
                torch.testing.assert_close(torch.tensor(new.scores["rerank"]["logprobs"]),
                                           torch.tensor(old.scores["rerank"]["logprobs"]), atol=2e-3, rtol=1e-4)
    assert hard >= 12  # enough entities to mean something
    assert run.stats.reranked == 2 * hard and run.stats.hard == 2 * hard
