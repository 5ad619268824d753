"""Model footprints: counts from the real classes on the meta device, checked against the published sizes of
the paper's models, against the tiny models built for real, and against the shipped adapters' files."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import pytest
import torch

from gemner.pipeline.footprint import (
    ACTIVATION_MARGIN,
    ADAM_BYTES_PER_TRAINABLE,
    ModelFootprint,
    count_parameters,
    lora_parameter_count,
    model_footprints,
)


def by_role(rows: list[ModelFootprint]) -> dict[str, ModelFootprint]:
    return {row.role: row for row in rows}


def stored_elements(path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as tensors:
        return sum(math.prod(tensors.get_slice(key).get_shape()) for key in tensors.keys())  # noqa: SIM118 (safe_open is not iterable)


def test_paper_models_have_their_published_sizes():
    rows = by_role(model_footprints("paper"))
    assert list(rows) == ["recogniser", "captioner", "reranker", "matcher", "segmenter"]
    assert 105e6 < rows["recogniser"].params < 112e6  # BERT-base (cased: 108M) + the small heads
    assert 3.70e9 < rows["captioner"].params < 3.80e9  # BLIP-2 OPT-2.7b: 3.74B
    assert 7.00e9 < rows["reranker"].params < 7.10e9  # LLaVA-1.5-7B: 7.06B
    assert 220e6 < rows["matcher"].params < 228e6  # BLIP ITM base: 224M
    assert 90e6 < rows["segmenter"].params < 97e6  # SAM ViT-B: 94M
    margin = 1 + ACTIVATION_MARGIN
    for row in rows.values():  # bf16 on a GPU
        assert "bf16 on GPU" in row.note
        if row.role != "reranker":
            assert row.inference_bytes == round(row.params * 2 * margin)
    assert rows["recogniser"].training_bytes == round(rows["recogniser"].params * ADAM_BYTES_PER_TRAINABLE * margin)
    assert rows["captioner"].training_bytes == 0 and rows["segmenter"].training_bytes == 0
    # LoRA: the frozen 7B in bf16 plus rank-64 adapters with Adam, far below a full fine-tune
    reranker = rows["reranker"]
    assert 2 * reranker.params * margin < reranker.training_bytes < 0.2 * reranker.params * 16
    with pytest.raises(FrozenInstanceError):
        reranker.params = 0  # type: ignore[misc]


def test_paper_tiny_counts_match_the_models_built_for_real(tmp_path):
    from transformers import LlavaForConditionalGeneration

    from gemner.data.schema import FMNERG_SCHEMA
    from gemner.data.synthetic import caption_vocabulary, entity_names
    from gemner.ground.tiny import build_tiny_itm
    from gemner.knowledge.tiny_captioner import build_tiny_captioner
    from gemner.pipeline.reproduce_gem_profiles import gem_profile
    from gemner.recognize.checkpoint import build_model
    from gemner.recognize.config import preset
    from gemner.recognize.model import Recognizer
    from gemner.rerank.tiny import build_tiny_llava

    rows = by_role(model_footprints("paper-tiny"))
    assert list(rows) == ["recogniser", "captioner", "reranker", "matcher"]
    assert rows["captioner"].params == count_parameters(build_tiny_captioner(caption_vocabulary())[0])
    spec = gem_profile("paper-tiny").itm_spec
    assert rows["matcher"].params == count_parameters(build_tiny_itm([*entity_names(), *FMNERG_SCHEMA.labels], spec)[0])
    llava = LlavaForConditionalGeneration.from_pretrained(build_tiny_llava(tmp_path / "llava"))
    assert rows["reranker"].params == count_parameters(llava)
    recogniser = build_model(Recognizer, preset("lite"), FMNERG_SCHEMA, [])
    assert rows["recogniser"].params == count_parameters(recogniser)
    for row in rows.values():  # fp32 on a CPU (the reranker's LoRA adapters come on top)
        assert "fp32 on CPU" in row.note
        if row.role != "reranker":
            assert row.inference_bytes == round(row.params * 4 * (1 + ACTIVATION_MARGIN))


def test_lora_count_matches_peft_on_the_tiny_llava(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration

    from gemner.rerank.model import lora_targets
    from gemner.rerank.tiny import build_tiny_llava

    model = LlavaForConditionalGeneration.from_pretrained(build_tiny_llava(tmp_path / "llava"))
    targets = lora_targets(model, "vision")
    expected = lora_parameter_count(model, targets, 8)
    adapted = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    assert expected == sum(p.numel() for p in adapted.parameters() if p.requires_grad) > 0


def test_lite_counts_match_the_shipped_adapters():
    from gemner.paths import models_dir

    rows = by_role(model_footprints("lite"))
    assert list(rows) == ["recogniser", "reranker"]
    assert 130e6 < rows["reranker"].params < 140e6  # SmolLM2-135M
    shipped_reranker = stored_elements(models_dir() / "fmnerg-reranker-lite" / "adapter_model.safetensors")
    shipped_recogniser = stored_elements(models_dir() / "fmnerg-recognizer-lite" / "adapter_model.safetensors")
    assert f"+ {shipped_reranker:,} LoRA parameters (rank 16" in rows["reranker"].note
    assert f"+ {shipped_recogniser:,} parameters of rank-48" in rows["recogniser"].note
    assert rows["reranker"].inference_bytes == round((rows["reranker"].params + shipped_reranker) * 4
                                                     * (1 + ACTIVATION_MARGIN))


def test_meta_models_hold_no_memory_and_unknown_configs_fail():
    from gemner.pipeline.footprint import on_meta

    layer = on_meta(lambda: torch.nn.Linear(4096, 4096))
    assert layer.weight.is_meta
    with pytest.raises(ValueError, match="paper-tiny"):
        model_footprints("huge")
