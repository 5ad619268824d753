"""Recogniser inference: length-bucketed batches give the same predictions; adapters folded in and the
encoder's dtype (`recognizer.dtype`) change the arithmetic, not the answers."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from gemner.data.types import Post
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.encoding import collate, encode_posts
from gemner.recognize.inference import prepare_for_inference
from gemner.recognize.model import Recognizer, training_pairs
from gemner.recognize.predict import predict_posts
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts


def _trained_like(encoder_dir, **overrides) -> Recognizer:
    """A tiny recogniser whose weights are moved away from their init (adapters included), so that
    every path carries signal and a broken merge or cast would show."""
    torch.manual_seed(0)
    config = RecognizerConfig(encoder=encoder_dir, **overrides)
    model = Recognizer.build(config, TINY_SCHEMA, training_pairs(synthetic_posts(30)))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return model.eval()


def _mixed_lengths(n: int) -> list[Post]:
    """Synthetic posts of very different lengths (2 to ~40 words), and an empty one."""
    posts = []
    for i, post in enumerate(synthetic_posts(n, seed=11)):
        repeat = 1 + (i * 7) % 5
        posts.append(Post(post.id, post.tokens * repeat))
    return [*posts[:3], Post("empty", []), *posts[3:]]


def _records(results) -> list[tuple[str, list[tuple]]]:
    return [(post.id, entities if isinstance(entities, str) else
             [(e.start, e.end, e.type, e.coarse, e.scores["topk"][0][0]) for e in entities])
            for post, entities in results]


def _scores(results) -> list[float]:
    return [e.scores["entropy"] for _, entities in results for e in entities]


def test_length_buckets_give_the_unbucketed_predictions_in_input_order(encoder_dir):
    model = _trained_like(encoder_dir, word_shape_dim=4)
    posts = _mixed_lengths(40)
    plain = list(predict_posts(model, posts, batch_size=4, length_buckets=False))
    bucketed = list(predict_posts(model, posts, batch_size=4, length_buckets=True))
    assert [p.id for p, _ in bucketed] == [p.id for p in posts]
    assert _records(bucketed) == _records(plain)
    assert sum(len(e) for _, e in plain) > 10  # the model predicts entities: the comparison is not vacuous
    assert _scores(bucketed) == pytest.approx(_scores(plain), abs=1e-5)
    assert bucketed[3][1] == []  # the empty post


def test_a_failing_post_fails_alone_in_a_bucketed_window(encoder_dir, monkeypatch):
    from gemner.recognize import predict as predict_module

    model = _trained_like(encoder_dir)
    posts = _mixed_lengths(12)
    original = predict_module.predict_batch

    def fail_on_post_five(model, batch_posts, items):
        if any(p.id == posts[5].id for p in batch_posts):
            raise RuntimeError("bad post")
        return original(model, batch_posts, items)

    monkeypatch.setattr(predict_module, "predict_batch", fail_on_post_five)
    results = dict((p.id, e) for p, e in predict_posts(model, posts, batch_size=4))
    assert results[posts[5].id] == "RuntimeError: bad post"
    assert all(not isinstance(e, str) for pid, e in results.items() if pid != posts[5].id)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_prepared_float32_model_predicts_as_loaded(encoder_dir, lora_rank):
    model = _trained_like(encoder_dir, lora_rank=lora_rank, word_shape_dim=4)
    posts = _mixed_lengths(24)
    items = encode_posts(model.tokenizer, [p for p in posts if p.tokens], None, 64)
    with torch.no_grad():
        before = model.emissions(collate(items, 0))[0].fine
    expected = _records(predict_posts(model, posts, batch_size=8))
    prepare_for_inference(model, "float32")
    assert not any("lora_" in name for name, _ in model.named_parameters())  # one matmul per layer
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        after = model.emissions(collate(items, 0))[0].fine
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)  # W + BA rounds once, not per call
    assert _records(predict_posts(model, posts, batch_size=8)) == expected
    with pytest.raises(ValueError, match="cannot be saved"):
        model.save_pretrained("unused")


def test_bfloat16_encoder_keeps_fp32_heads_and_close_emissions(encoder_dir):
    model = _trained_like(encoder_dir, lora_rank=4, word_shape_dim=4)
    items = encode_posts(model.tokenizer, synthetic_posts(16, seed=3), None, 64)
    with torch.no_grad():
        before = model.emissions(collate(items, 0))[0].fine
    prepare_for_inference(model, "bfloat16")
    assert {p.dtype for p in model.encoder.parameters()} == {torch.bfloat16}
    assert model.fine_head.weight.dtype == torch.float32 and model.fine_crf.transitions.dtype == torch.float32
    with torch.no_grad():
        after = model.emissions(collate(items, 0))[0].fine
    assert after.dtype == torch.float32
    error = (after - before).abs().mean() / before.abs().mean()
    assert error < 0.05  # bf16 rounding (8 bits of mantissa through every layer), not a different model
    assert (after - before).abs().max() > 0  # and the encoder did run in bf16


def test_unknown_dtype_is_refused_by_the_library_and_the_pipeline_config(encoder_dir):
    from gemner.pipeline.config import RecognizerStage
    from gemner.recognize.inference import native_bf16, resolve_dtype

    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        prepare_for_inference(_trained_like(encoder_dir), "float16")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RecognizerStage(model="x", dtype="float16")
    assert RecognizerStage(model="x").dtype == "auto"
    assert resolve_dtype("auto") == ("bfloat16" if native_bf16() else "float32")
    assert resolve_dtype("float32") == "float32"


def test_pipeline_runs_its_recogniser_in_the_configured_dtype(tiny_pipeline_models):
    from gemner import GEM
    from gemner.pipeline.testing import tiny_pipeline_config
    from gemner.recognize.inference import resolve_dtype

    posts = synthetic_posts(6, seed=4)
    found = {}
    for dtype in ("float32", "bfloat16", "auto"):
        config = tiny_pipeline_config(tiny_pipeline_models, recognizer={"dtype": dtype},
                                      rerank={"enabled": False}, ground={"enabled": False})
        gem = GEM(config)
        expected = getattr(torch, resolve_dtype(dtype))
        assert {p.dtype for p in gem.recognizer.model.encoder.parameters()} == {expected}
        found[dtype] = [[(e.start, e.end) for e in r.entities] for r in gem.pipe(posts)]
    assert any(found["float32"])
    assert found["bfloat16"] == found["float32"] == found["auto"]  # the tiny task is clear-cut: same spans


@pytest.mark.slow  # three passes of the shipped model over 160 posts: ~15 s on a quiet core, minutes under load
def test_shipped_recognizer_gives_the_same_entities_bucketed_merged_and_as_loaded():
    """Real FMNERG posts, the shipped compressed (LoRA) recogniser: the adapters folded in and the
    length-bucketed batches change no entity and no label."""
    from gemner.data.benchmarks import load_dataset
    from gemner.paths import models_dir

    folder = models_dir() / "fmnerg-recognizer-lite"
    if not (folder / "config.json").is_file():
        pytest.skip("shipped fmnerg-recognizer-lite missing")
    posts = load_dataset("fmnerg", "test").posts[:160]
    model = Recognizer.from_pretrained(str(folder), device="cpu")
    model.encoder_autocast = False  # fp32 throughout, as `prepare_for_inference(model, "float32")` runs it
    as_loaded = list(predict_posts(model, posts, batch_size=16, length_buckets=False))
    prepare_for_inference(model, "float32")
    plain = list(predict_posts(model, posts, batch_size=16, length_buckets=False))
    bucketed = list(predict_posts(model, posts, batch_size=16, length_buckets=True))
    assert sum(len(e) for _, e in plain) > 150  # ~1.5 entities per post
    assert _records(bucketed) == _records(plain) == _records(as_loaded)
    assert _scores(bucketed) == pytest.approx(_scores(plain), abs=1e-4)
    assert _scores(plain) == pytest.approx(_scores(as_loaded), abs=1e-3)
