"""The reranker learns: LoRA tuning of a tiny random causal LM on a synthetic reranking task.

Each post hides one made-up word (zorb, quix, ...) among filler words; the word is marked `(&&)` and
determines the gold label (zorb -> city, ...). Candidates are built like the paper's training sets
(gold + same-coarse labels + one other coarse type). The right candidate is derivable from the prompt
alone, so a reranker that reads its prompt can reach high accuracy; chance is 1/5.
"""

from __future__ import annotations

import random

import pytest
import torch

from gemner.data import FMNERG_SCHEMA
from gemner.rerank.candidates import training_candidates
from gemner.rerank.config import RerankerConfig
from gemner.rerank.infer import candidate_accuracy, chance_accuracy
from gemner.rerank.model import Reranker
from gemner.rerank.prompt import RerankQuery
from gemner.rerank.tiny import build_tiny_causal_lm
from gemner.rerank.train import TrainReport, train_reranker

WORDS = ("zorb", "quix", "blem", "vant", "drog", "plin", "swet", "mork")
LABELS = ("city", "politician", "sports_team", "music", "award", "festival", "software", "park")
FILLER = "the a of in on at for to and is was".split()


def synthetic_queries(n: int, seed: int) -> list[RerankQuery]:
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        i = rng.randrange(len(WORDS))
        tokens = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        position = rng.randint(0, len(tokens))
        tokens.insert(position, WORDS[i])
        candidates = training_candidates(LABELS[i], FMNERG_SCHEMA, 5, rng)
        queries.append(RerankQuery(tuple(tokens), position, position + 1, tuple(candidates), answer=LABELS[i]))
    return queries


def test_lora_tuning_lifts_accuracy_from_chance_to_90_percent(tmp_path):
    torch.manual_seed(0)
    # init_std 0.1: a random LM head with logit scales like a trained model's (see build_tiny_causal_lm)
    base = build_tiny_causal_lm(tmp_path / "base", extra_corpus=[" ".join(WORDS)], init_std=0.1)
    config = RerankerConfig(lr=1e-2, epochs=2, batch_size=8, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
                            warmup_ratio=0.0)
    reranker = Reranker.load(str(base), config, device="cpu")
    train, test = synthetic_queries(320, seed=1), synthetic_queries(100, seed=2)
    assert chance_accuracy(test) == pytest.approx(0.2)
    before = candidate_accuracy(reranker, test)
    assert before < 0.45  # the untrained model is near chance
    reranker.add_lora()
    report: TrainReport = train_reranker(reranker, train, tmp_path / "out", log=lambda _: None)
    assert report.steps == 80 and report.log[-1]["loss"] < report.log[0]["loss"] / 2
    after = candidate_accuracy(reranker, test)
    assert after >= 0.9, f"accuracy {before:.2f} -> {after:.2f}"
    # the saved adapter gives the same answers
    loaded = Reranker.load(str(tmp_path / "out"), device="cpu")
    assert candidate_accuracy(loaded, test[:30]) == pytest.approx(candidate_accuracy(reranker, test[:30]))
