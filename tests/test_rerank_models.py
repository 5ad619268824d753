"""Tiny random LLaVA (CLIP tower + Llama) and tiny causal LMs: prompts, shapes, LoRA, scoring, save/load."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from gemner.rerank.config import RerankerConfig
from gemner.rerank.infer import candidate_scores, rerank_query, static_prefix
from gemner.rerank.model import Reranker
from gemner.rerank.prompt import RerankQuery
from gemner.rerank.scoring import aggregate, from_scratch_logprobs, shared_prefix_logprobs
from gemner.rerank.tiny import build_tiny_llava, randomize_lora_b
from gemner.rerank.train import answer_loss, trainable_parameters

CANDIDATES = ("park", "continent", "city", "country", "film_and_television_works")
CONFIG = RerankerConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_causal_lm, tiny_chat_lm):
    root = tmp_path_factory.mktemp("tiny")
    image = root / "scene.png"
    Image.new("RGB", (48, 40), (200, 30, 30)).save(image)
    return {
        "causal": tiny_causal_lm,
        "chat": tiny_chat_lm,
        "llava": build_tiny_llava(root / "llava"),
        "image": image,
    }


def query(image=None, candidates=CANDIDATES, answer=None) -> RerankQuery:
    return RerankQuery(tuple("The geometry of plants . Garfield Park Conservatory".split()), 5, 7, candidates,
                       image=image, caption="a glass house", answer=answer)


def with_trained_lora(path, seed=0) -> Reranker:
    """A reranker whose LoRA B matrices are non-zero (so the adapter changes the outputs)."""
    reranker = Reranker.load(str(path), CONFIG, device="cpu")
    reranker.add_lora()
    randomize_lora_b(reranker.model, seed)
    return reranker


def test_prompt_layouts(models):
    plain = Reranker.load(str(models["causal"]), CONFIG, device="cpu")
    assert not plain.chat and plain.kind == "causal" and plain.end_id == plain.tokenizer.eos_token_id
    text = plain.prompt_text(query())
    assert text.startswith("Query:\nHere's a tweet") and text.endswith("\nAnswer:\n")
    assert "Garfield(&&) Park(&&) Conservatory." in text and "Caption: a glass house" in text
    chat = Reranker.load(str(models["chat"]), CONFIG, device="cpu")
    assert chat.chat and chat.end_id == chat.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert chat.prompt_text(query()).endswith("<|im_start|>assistant\n")
    shots = Reranker.load(str(models["chat"]), CONFIG.model_copy(update={"few_shot": 2}), device="cpu")
    few = shots.prompt_text(query())
    assert few.count("<|im_start|>user") == 3 and "sports_team<|im_end|>" in few
    llava = Reranker.load(str(models["llava"]), CONFIG, device="cpu")
    assert llava.kind == "vision" and llava.chat
    vision_text = llava.prompt_text(query(), with_image=True)
    assert vision_text.startswith("USER: <image>\n") and "Caption" not in vision_text  # image, not caption
    assert llava.answer_ids("park")[-1] == llava.end_id


def test_llava_shapes_with_and_without_an_image(models):
    llava = Reranker.load(str(models["llava"]), CONFIG, device="cpu")
    with_image = llava.encode_prompt(query(models["image"]))
    assert with_image["pixel_values"].shape == (1, 3, 32, 32)
    image_id = llava.model.config.image_token_index
    assert int((with_image["input_ids"] == image_id).sum()) == (32 // 8) ** 2  # one token per patch
    without = llava.encode_prompt(query())
    assert "pixel_values" not in without and int((without["input_ids"] == image_id).sum()) == 0
    out = llava.model(**with_image)
    assert out.logits.shape == (1, with_image["input_ids"].shape[1], len(llava.tokenizer))


@pytest.mark.parametrize("name", ["causal", "chat", "llava"])
def test_gradients_reach_only_lora_parameters(models, name):
    reranker = Reranker.load(str(models[name]), CONFIG, device="cpu")
    reranker.add_lora()
    reranker.model.train()
    image = models["image"] if name == "llava" else None
    answer_loss(reranker, [query(image, answer="park"), query(image, answer="city")]).backward()
    trainable = dict(trainable_parameters(reranker.model))
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)  # the vision tower stays frozen
    if name == "llava":  # the projector is adapted, as LLaVA's own LoRA recipe trains it
        assert any("multi_modal_projector" in n for n in trainable)
    for n, p in reranker.model.named_parameters():
        if n not in trainable:
            assert p.grad is None, n
    lora_b = [p.grad for n, p in trainable.items() if "lora_B" in n]
    assert lora_b and all(g is not None for g in lora_b) and any(float(g.abs().sum()) > 0 for g in lora_b)


def test_gradient_checkpointing_gives_the_same_gradients(models):
    grads = []
    for checkpointing in (False, True):
        config = CONFIG.model_copy(update={"gradient_checkpointing": checkpointing})
        reranker = Reranker.load(str(models["llava"]), config, device="cpu")
        torch.manual_seed(0)  # same LoRA A initialisation in both
        reranker.add_lora()
        with torch.no_grad():
            for name, param in reranker.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.2)
        reranker.model.train()
        answer_loss(reranker, [query(models["image"], answer="park")]).backward()
        grads.append({n: p.grad.clone() for n, p in trainable_parameters(reranker.model)})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["causal", "chat", "llava"])
def test_shared_prefix_scoring_equals_scoring_from_scratch(models, name):
    reranker = with_trained_lora(models[name])
    prompt = reranker.encode_prompt(query(models["image"] if name == "llava" else None))
    answers = [reranker.answer_ids(c) for c in CANDIDATES]
    assert len({len(a) for a in answers}) > 1  # candidates of different lengths exercise the padding
    shared = shared_prefix_logprobs(reranker.model, prompt, answers, reranker.tokenizer.pad_token_id)
    scratch = from_scratch_logprobs(reranker.model, prompt, answers, reranker.tokenizer.pad_token_id)
    for a, b, ids in zip(shared, scratch, answers, strict=True):
        assert a.shape == b.shape == (len(ids),)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and both equal a plain, unbatched forward pass over prompt + answer
    full = torch.cat([prompt["input_ids"], torch.tensor([answers[-1]])], 1)
    extra = {"pixel_values": prompt["pixel_values"]} if "pixel_values" in prompt else {}
    logits = reranker.model(input_ids=full, **extra).logits[0].log_softmax(-1)
    start = prompt["input_ids"].shape[1]
    direct = torch.stack([logits[start - 1 + i, t] for i, t in enumerate(answers[-1])])
    torch.testing.assert_close(shared[-1], direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["causal", "chat", "llava"])
def test_static_prefix_cache_gives_the_same_scores(models, name):
    reranker = with_trained_lora(models[name], seed=1)
    static = static_prefix(reranker)
    assert static is not None and len(static.ids) > 20  # chat template + the Table 7 instruction
    pad = reranker.tokenizer.pad_token_id
    images = (None, models["image"]) if name == "llava" else (None,)
    for image in images:
        prompt = reranker.encode_prompt(query(image))
        starts_static = prompt["input_ids"][0, : len(static.ids)].tolist() == static.ids
        assert starts_static == (image is None)  # an early image placeholder: the prompt runs in full
        answers = [reranker.answer_ids(c) for c in CANDIDATES]
        scratch = from_scratch_logprobs(reranker.model, prompt, answers, pad)
        for _ in range(2):  # the static cache is copied, never changed by a use
            cached = shared_prefix_logprobs(reranker.model, prompt, answers, pad, static)
            for a, b in zip(cached, scratch, strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_length_normalisation():
    token_lp = [torch.tensor([-1.0, -3.0]), torch.tensor([-2.5])]
    assert aggregate(token_lp, "mean") == [-2.0, -2.5]
    assert aggregate(token_lp, "sum") == [-4.0, -2.5]
    with pytest.raises(ValueError):
        aggregate(token_lp, "max")


def test_save_and_load_round_trip_gives_the_same_scores(models, tmp_path):
    for name in ("chat", "llava"):
        reranker = with_trained_lora(models[name], seed=3)
        q = query(models["image"] if name == "llava" else None)
        before = candidate_scores(reranker, q)
        folder = reranker.save_pretrained(tmp_path / name)
        assert (folder / "adapter_model.safetensors").is_file() and (folder / "reranker.json").is_file()
        assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
        loaded = Reranker.load(str(folder), device="cpu")
        assert loaded.kind == reranker.kind and loaded.config.lora_rank == 4
        assert candidate_scores(loaded, q) == pytest.approx(before, abs=1e-5)
        base = Reranker.load(str(models[name]), CONFIG, device="cpu")
        assert candidate_scores(base, q) != pytest.approx(before, abs=1e-3)  # the adapter mattered


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_answers_are_always_candidates(models, mode):
    for name in ("causal", "llava"):
        reranker = with_trained_lora(models[name], seed=5)
        for size in (1, 2, 5):
            result = rerank_query(reranker, query(models["image"] if name == "llava" else None,
                                                  CANDIDATES[:size]), mode)
            assert result.choice in CANDIDATES[:size]
            record = result.to_scores("city")
            assert record["from"] == "city" and record["candidates"] == list(CANDIDATES[:size])
            if mode == "score":
                assert len(record["logprobs"]) == size
                assert record["choice"] == CANDIDATES[max(range(size), key=record["logprobs"].__getitem__)]
            elif size > 1:
                assert isinstance(record["generated"], str) and record["mapped_by"]


def test_compressed_adapter_keeps_the_scores_at_full_rank_and_is_the_svd_below(models, tmp_path):
    import json

    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from gemner.cli.main import app
    from gemner.rerank.compress import compress_reranker

    reranker = with_trained_lora(models["chat"], seed=5)
    before = candidate_scores(reranker, query())
    folder = reranker.save_pretrained(tmp_path / "full")
    report = compress_reranker(folder, tmp_path / "same", rank=CONFIG.lora_rank, dtype=torch.float32)
    assert report.kept_energy == pytest.approx(1.0) and report.layers > 0
    same = Reranker.load(str(tmp_path / "same"), device="cpu")
    assert candidate_scores(same, query()) == pytest.approx(before, abs=1e-4)

    result = CliRunner().invoke(app, ["compress-reranker", str(folder), str(tmp_path / "r1"), "--rank", "1", "--fp32"])
    assert result.exit_code == 0, result.output
    full, small = load_file(str(folder / "adapter_model.safetensors")), load_file(str(tmp_path / "r1" /
                                                                                     "adapter_model.safetensors"))
    key_a = next(k for k in full if k.endswith("lora_A.weight"))
    key_b = key_a.replace("lora_A", "lora_B")
    delta = CONFIG.lora_alpha / CONFIG.lora_rank * full[key_b] @ full[key_a]
    u, s, vh = torch.linalg.svd(delta)
    torch.testing.assert_close(small[key_b] @ small[key_a], s[0] * torch.outer(u[:, 0], vh[0]), atol=1e-5, rtol=1e-4)
    assert json.loads((tmp_path / "r1" / "reranker.json").read_text())["lora_rank"] == 1
    assert Reranker.load(str(tmp_path / "r1"), device="cpu").config.lora_rank == 1
