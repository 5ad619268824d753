"""The reranker trains with images: a tiny LLaVA learns a choice only the image decides (synthetic benchmark).

On the synthetic benchmark a look-alike name ("Orion") is a company, a sports team or a band (or one of three
person types), and only its emblem's colour in the image tells which; its text is the same for all. Asked to
choose among the three, a text-only model can do no better than the most frequent type; a reranker trained on
(image, Table 7 prompt, candidates) reads the colour.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.folders import load_split
from gemner.data.synthetic import LOOKALIKE_FAMILIES, LOOKALIKE_NAMES, write_synthetic_benchmark
from gemner.pipeline.reproduce_gem_profiles import gem_profile
from gemner.rerank.config import RerankerConfig
from gemner.rerank.infer import candidate_accuracy
from gemner.rerank.model import Reranker
from gemner.rerank.prompt import RerankQuery
from gemner.rerank.tiny import build_tiny_llava
from gemner.rerank.train import split_queries, train_reranker

runner = CliRunner()
NAMES = set(LOOKALIKE_NAMES)
FAMILY = {fine: tuple(sorted(family)) for family in LOOKALIKE_FAMILIES.values() for fine in family}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerank_images")
    bench = root / "bench"
    write_synthetic_benchmark(bench, posts=560, seed=0)
    # init_std 0.1: LM head logits on a trained model's scale (see build_tiny_causal_lm); the image side paper-tiny
    # builds it with (an emblem spans 2-3 of the vision tower's 8-pixel patches)
    side = gem_profile("paper-tiny").llava_image_size
    return bench, build_tiny_llava(root / "llava", image_size=side, init_std=0.1), root


def lookalike_queries(bench, split: str) -> list[RerankQuery]:
    dataset = load_split(bench, split)
    queries = split_queries(dataset.posts, dataset.schema, split, 5, 0)
    return [q for q in queries if " ".join(q.tokens[q.start:q.end]) in NAMES]


def test_a_vision_reranker_learns_what_only_the_image_decides(setting):
    bench, llava, root = setting
    train = lookalike_queries(bench, "train")
    assert train and all(q.image is not None and q.image.is_file() for q in train)  # each post's own image
    held_out = [replace(q, candidates=FAMILY[q.answer]) for q in lookalike_queries(bench, "dev")
                + lookalike_queries(bench, "test")]
    # the best any text-only model can do, even told the coarse type (the caption route): the family's most
    # frequent type
    by_family = Counter((FAMILY[q.answer], q.answer) for q in held_out)
    text_only = sum(max(n for (fam, _), n in by_family.items() if fam == family)
                    for family in {fam for fam, _ in by_family}) / len(held_out)
    config = RerankerConfig(model=str(llava), lr=1e-2, epochs=5, batch_size=8, lora_rank=16, lora_alpha=32,
                            lora_dropout=0.0, warmup_ratio=0.0)
    reranker = Reranker.from_base(config, device="cpu")
    assert reranker.kind == "vision"
    reranker.add_lora()
    train_reranker(reranker, train, root / "out", log=lambda _: None)
    with_image = candidate_accuracy(reranker, held_out)
    without_image = candidate_accuracy(reranker, [replace(q, image=None) for q in held_out])
    assert with_image >= 0.65 and with_image >= text_only + 0.2, (with_image, text_only, without_image)
    assert with_image >= without_image + 0.2  # the choice comes from the image
    loaded = Reranker.load(str(root / "out"), device="cpu")  # the saved adapter (projector included)
    assert candidate_accuracy(loaded, held_out[:12]) == candidate_accuracy(reranker, held_out[:12])


def test_train_reranker_command_trains_on_the_posts_images(setting, tmp_path):
    bench, llava, _ = setting

    def train(output, *extra: str):
        return runner.invoke(app, [
            "train", "reranker", "--dataset", str(bench), "--model", str(llava), "--output", str(output),
            "--max-train", "6", "--epochs", "1", "--batch-size", "3", "--lr", "1e-3", "--lora-rank", "4",
            "--dev-max", "3", "--threads", "1", "--no-bf16", *extra])

    result = train(tmp_path / "reranker")
    assert result.exit_code == 0, result.output
    assert "training with images: 6 of 6" in result.output  # the folder's own images/
    assert json.loads((tmp_path / "reranker" / "dev_accuracy.json").read_text())["train_with_images"] == 6
    empty = tmp_path / "no-images"
    empty.mkdir()
    result = train(tmp_path / "text-only", "--images", str(empty))
    assert result.exit_code == 0, result.output
    assert "training with images: 0 of 6" in result.output and "--images DIR" in result.output
