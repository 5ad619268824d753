"""The recogniser model: paths per schema and switch, shapes, gradients, scores, save/load."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from gemner.data.schema import GMNER_SCHEMA
from gemner.data.types import Entity, Post
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.encoding import collate, encode_posts
from gemner.recognize.model import Recognizer, training_pairs
from gemner.recognize.predict import predict_batch
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts


def _model(encoder_dir, schema=TINY_SCHEMA, posts=None, **overrides):
    torch.manual_seed(0)
    config = RecognizerConfig(encoder=encoder_dir, **overrides)
    return Recognizer.build(config, schema, training_pairs(posts or synthetic_posts(30)))


def _batch(model, posts):
    fine = {t: i for i, t in enumerate(model.schema.tags)}
    coarse = {t: i for i, t in enumerate(model.schema.coarse_tags)} if model.multi_granularity else None
    items = encode_posts(model.tokenizer, posts, None, 64, fine, coarse)
    return items, collate(items, 0)


@pytest.mark.parametrize(("overrides", "coarse", "mga", "crf"), [
    ({}, True, True, True),
    ({"mgp": False}, False, False, True),
    ({"mga": False}, True, False, True),
    ({"head": "softmax"}, True, True, False),
])
def test_paths_follow_the_switches(encoder_dir, overrides, coarse, mga, crf):
    model = _model(encoder_dir, **overrides)
    assert (model.coarse_head is not None) == coarse
    assert (model.mga_matrix is not None) == mga
    assert (model.fine_crf is not None) == crf
    assert (model.coarse_crf is not None) == (crf and coarse)


def test_flat_schema_has_one_path(encoder_dir):
    model = _model(encoder_dir, schema=GMNER_SCHEMA,
                   posts=[Post("g", ["obama"], [Entity(0, 1, "obama", "PER", "PER")])])
    assert model.coarse_head is None and model.mga_matrix is None and model.coarse_crf is None
    assert model.fine_head.out_features == len(GMNER_SCHEMA.tags) == 9


def test_m_is_initialised_from_training_cooccurrence(encoder_dir):
    model = _model(encoder_dir)
    torch.testing.assert_close(model.mga_matrix.data, torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))


def test_shapes_loss_and_gradients_reach_encoder_heads_crfs_and_m(encoder_dir):
    model = _model(encoder_dir)
    posts = synthetic_posts(6, seed=1)
    items, batch = _batch(model, posts)
    emissions, hidden = model.emissions(batch)
    width = max(it.n_words for it in items)
    assert emissions.fine.shape == (6, width, len(TINY_SCHEMA.tags))
    assert emissions.coarse.shape == (6, width, len(TINY_SCHEMA.coarse_tags))
    assert hidden.shape == (*batch.input_ids.shape, 32)
    loss = model.loss(batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    for name in ("encoder.embeddings.word_embeddings.weight", "encoder.encoder.layer.0.attention.self.query.weight",
                 "fine_head.weight", "coarse_head.weight", "mga_matrix", "fine_crf.transitions",
                 "coarse_crf.transitions"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_softmax_head_loss_is_cross_entropy_mix(encoder_dir):
    model = _model(encoder_dir, head="softmax", dropout=0.0)
    _, batch = _batch(model, synthetic_posts(4, seed=2))
    emissions, _ = model.emissions(batch)
    mask = batch.word_mask
    fine = torch.nn.functional.cross_entropy(emissions.fine[mask], batch.fine_tags[mask])
    coarse = torch.nn.functional.cross_entropy(emissions.coarse[mask], batch.coarse_tags[mask])
    assert model.loss(batch).item() == pytest.approx((0.1 * coarse + 0.9 * fine).item(), rel=1e-5)


def test_entity_scores_are_distributions(encoder_dir):
    model = _model(encoder_dir).eval()
    with torch.no_grad():  # force every word to be predicted as B-athlete so there are spans
        model.fine_head.bias[TINY_SCHEMA.tags.index("B-athlete")] = 100.0
    posts = synthetic_posts(3, seed=4)
    items, _ = _batch(model, posts)
    predictions = predict_batch(model, posts, items)
    assert [len(p) for p in predictions] == [len(post.tokens) for post in posts]
    for entity in (e for entities in predictions for e in entities):
        scores = entity.scores
        assert entity.type == "athlete" and entity.coarse == "person" and entity.box_status == "not_computed"
        assert scores["topk"][0][0] == "athlete"
        assert len(scores["topk"]) == 4 and len(scores["coarse_topk"]) == 2  # all labels when fewer than K
        assert sum(p for _, p in scores["topk"]) == pytest.approx(1.0, abs=1e-4)
        probs = [p for _, p in scores["topk"]]
        assert probs == sorted(probs, reverse=True)
        assert scores["entropy"] == pytest.approx(-sum(p * math.log(p) for p in probs if p > 0), abs=1e-4)


def _param_snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_save_load_round_trip_gives_identical_predictions(encoder_dir, tmp_path, lora_rank):
    model = _model(encoder_dir, lora_rank=lora_rank).eval()
    with torch.no_grad():  # move away from the init so a failed load would show
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    posts = synthetic_posts(8, seed=5)
    items, _ = _batch(model, posts)
    before = [[e.to_json() for e in ents] for ents in predict_batch(model, posts, items)]
    model.save_pretrained(tmp_path / "ckpt")
    loaded = Recognizer.from_pretrained(tmp_path / "ckpt")
    after = [[e.to_json() for e in ents] for ents in predict_batch(loaded, posts, items)]
    assert before == after
    original, reloaded = _param_snapshot(model), _param_snapshot(loaded)
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[k], reloaded[k]) for k in original)
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    if lora_rank:
        assert {"adapter_model.safetensors", "heads.safetensors", "config.json", "labels.json"} <= files
        assert "model.safetensors" not in files and "encoder" not in files
    else:
        assert {"model.safetensors", "config.json", "labels.json", "encoder"} <= files


def test_lora_trains_adapters_and_heads_only(encoder_dir):
    model = _model(encoder_dir, lora_rank=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and "fine_head.weight" in trainable and "mga_matrix" in trainable
    assert not any(n.startswith("encoder.") and "lora_" not in n for n in trainable)


def test_missing_encoder_weights_fail_at_once_with_a_how_to(monkeypatch):
    from gemner.hub import MissingWeightsError

    monkeypatch.delenv("GEMNER_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(MissingWeightsError, match="not available offline"):
        Recognizer.build(RecognizerConfig(encoder="no-such-org/no-such-encoder"), TINY_SCHEMA)


def test_word_shapes_classify_case_digits_and_symbols():
    from gemner.recognize.encoding import WORD_SHAPES, word_shape

    shapes = [WORD_SHAPES[word_shape(w)] for w in ["obama", "NASA", "Obama", "iPhone", "2016", "#", "I", "1-0"]]
    assert shapes == ["lower", "upper", "title", "mixed", "digit", "symbol", "title", "digit"]


def test_word_shape_features_join_the_heads_and_learn(encoder_dir):
    model = _model(encoder_dir, word_shape_dim=4)
    assert model.fine_head.in_features == 32 + 4
    items, batch = _batch(model, synthetic_posts(6, seed=3))
    assert batch.word_shapes.shape == batch.word_mask.shape
    model.loss(batch).backward()
    assert model.shape_embedding.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        model.fine_head.bias[TINY_SCHEMA.tags.index("B-athlete")] = 100.0
    posts = synthetic_posts(2, seed=5)
    items, _ = _batch(model, posts)
    entity = predict_batch(model, posts, items)[0][0]
    assert sum(p for _, p in entity.scores["topk"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("architecture", ["bert", "mpnet"])
def test_compressed_checkpoint_matches_the_full_model_at_full_rank(architecture, request, tmp_path):
    """lite's encoder is a BERT, base's an MPNet (q/k/v/o instead of query/key/value): both compress exactly."""
    from gemner.recognize.compress import compress_recognizer, low_rank_factors

    encoder_dir = request.getfixturevalue({"bert": "encoder_dir", "mpnet": "mpnet_encoder_dir"}[architecture])

    delta = torch.randn(6, 4)
    left, right, kept = low_rank_factors(delta, 4)
    torch.testing.assert_close(left @ right, delta, atol=1e-5, rtol=1e-5)
    assert kept == pytest.approx(1.0)
    left, right, kept = low_rank_factors(torch.outer(torch.arange(1.0, 7.0), torch.ones(4)), 1)
    assert kept == pytest.approx(1.0) and left.shape == (6, 1)  # a rank-1 change is kept whole

    model = _model(encoder_dir, word_shape_dim=4)
    with torch.no_grad():  # pretend fine-tuning moved every encoder weight
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.fine_head.bias[TINY_SCHEMA.tags.index("B-athlete")] += 3.0
    model.save_pretrained(tmp_path / "full")
    report = compress_recognizer(tmp_path / "full", tmp_path / "lora", rank=64, dtype=torch.float32)
    assert report.kept_energy == pytest.approx(1.0, abs=1e-6) and report.deltas > 0
    # every linear weight went into the adapters; only small tensors (biases, norms, ...) are stored whole
    stored_whole = load_file(str(tmp_path / "lora" / "encoder_deltas.safetensors"))
    linear_weights = {f"{name}.weight" for name, module in AutoModel.from_pretrained(encoder_dir).named_modules()
                      if isinstance(module, torch.nn.Linear)}
    assert linear_weights and not linear_weights & set(stored_whole)
    small = compress_recognizer(tmp_path / "full", tmp_path / "lora2", rank=2)
    assert small.kept_energy < 0.9 and small.megabytes < report.megabytes
    full = Recognizer.from_pretrained(tmp_path / "full")
    lora = Recognizer.from_pretrained(tmp_path / "lora")
    assert lora.uses_lora and (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    posts = synthetic_posts(4, seed=9)
    for recogniser in (full, lora):
        recogniser.eval()
    _, batch_full = _batch(full, posts)
    _, batch_lora = _batch(lora, posts)
    with torch.no_grad():
        torch.testing.assert_close(lora.emissions(batch_lora)[0].fine, full.emissions(batch_full)[0].fine,
                                   atol=1e-4, rtol=1e-4)
