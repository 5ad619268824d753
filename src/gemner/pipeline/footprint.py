"""Parameters and memory of every model a configuration runs, counted without loading a single weight.

`model_footprints(config)` builds each model of `config` ("paper", "paper-tiny", "lite") from its config
with the real `transformers` class on the meta device (shapes only, no memory, no download) and counts its
parameters; the memory figures follow from the counts:

* inference = parameters x bytes per weight (bf16, 2 bytes, on a GPU for "paper"; fp32, 4 bytes, on a CPU
  for "paper-tiny" and "lite"), plus `ACTIVATION_MARGIN` for activations;
* training with Adam = 16 bytes per trainable parameter (fp32 weight, gradient and two moments: mixed
  precision keeps fp32 master weights) plus the frozen weights at the inference dtype, plus the same margin.
  The recogniser and the matcher are fine-tuned in full, the reranker with LoRA (rank and targets as
  `rerank.config` and `rerank.model.lora_targets` set them); the captioner and SAM are used frozen, except the
  tiny captioner, which "paper-tiny" trains from scratch.

The margin is a stated allowance, not a measurement: activations grow with batch size and sequence length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch

ACTIVATION_MARGIN = 0.2  # activations and workspace, as a share of the weight (and optimiser) bytes
ADAM_BYTES_PER_TRAINABLE = 16  # fp32 weight + fp32 gradient + Adam's two fp32 moments
CONFIGS = ("paper", "paper-tiny", "lite")
Training = Literal["full", "lora", "frozen"]
LORA_SCOPE = {"vision": "language model + projector", "text": "every linear layer but the LM head"}


@dataclass(frozen=True)
class ModelFootprint:
    role: str  # recogniser, captioner, reranker, matcher, segmenter
    name: str
    params: int  # the model's own parameters (LoRA adapters are counted in `note` and the memory)
    inference_bytes: int
    training_bytes: int  # 0: the configuration does not train this model
    note: str


@dataclass(frozen=True)
class Precision:
    device: str
    dtype: str
    bytes_per_weight: int


GPU_BF16 = Precision("GPU", "bf16", 2)
CPU_FP32 = Precision("CPU", "fp32", 4)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build: Callable[[], Any]) -> Any:
    """`build()` with every tensor it creates on the meta device: the model's shapes, no memory."""
    with torch.device("meta"):
        return build()


def lora_parameter_count(model: torch.nn.Module, targets: Iterable[str], rank: int) -> int:
    """Parameters of rank-`rank` LoRA adapters on the named modules (full names, or last name parts as peft
    matches them): r x (in + out) for a linear layer, r x (rows + width) for an embedding."""
    wanted = set(targets)
    total = 0
    for name, module in model.named_modules():
        if name not in wanted and name.rsplit(".", 1)[-1] not in wanted:
            continue
        if isinstance(module, torch.nn.Linear):
            total += rank * (module.in_features + module.out_features)
        elif isinstance(module, torch.nn.Embedding):
            total += rank * (module.num_embeddings + module.embedding_dim)
    return total


def footprint(role: str, name: str, params: int, precision: Precision, training: Training, *, lora: int = 0,
              note: str = "") -> ModelFootprint:
    weights = (params + lora) * precision.bytes_per_weight
    if training == "full":
        trained = params * ADAM_BYTES_PER_TRAINABLE
    elif training == "lora":
        trained = params * precision.bytes_per_weight + lora * ADAM_BYTES_PER_TRAINABLE
    else:
        trained = 0
    margin = 1 + ACTIVATION_MARGIN
    how = f"inference {precision.dtype} on {precision.device}; training: {training}"
    return ModelFootprint(role, name, params, round(weights * margin), round(trained * margin),
                          f"{how}; {note}" if note else how)


def _recogniser(encoder_config: Any, config: Any, schema: Any, name: str, precision: Precision,
                note: str) -> ModelFootprint:
    from transformers import MODEL_MAPPING

    from ..recognize.model import Recognizer

    # the encoder's own class for its config (BertModel for a BertConfig), built like every other row
    encoder = on_meta(lambda: MODEL_MAPPING[type(encoder_config)](encoder_config))
    model = Recognizer(config, schema, encoder, tokenizer=None)  # the heads are small: built for real
    lora = lora_parameter_count(encoder, config.lora_targets, config.lora_rank) if config.lora_rank > 0 else 0
    if lora:
        note = f"{note}; + {lora:,} parameters of rank-{config.lora_rank} encoder deltas stored as LoRA"
    return footprint("recogniser", name, count_parameters(model), precision, "full", lora=lora, note=note)


def _reranker(build: Callable[[], Any], name: str, precision: Precision, rank: int, kind: str,
              note: str) -> ModelFootprint:
    from ..rerank.model import lora_targets

    model = on_meta(build)
    lora = lora_parameter_count(model, lora_targets(model, kind), rank)
    return footprint("reranker", name, count_parameters(model), precision, "lora", lora=lora,
                     note=f"+ {lora:,} LoRA parameters (rank {rank}, {LORA_SCOPE[kind]}); {note}")


def _model(role: str, cls: Any, config: Any, name: str, precision: Precision, training: Training,
           note: str = "") -> ModelFootprint:
    return footprint(role, name, count_parameters(on_meta(lambda: cls(config))), precision, training, note=note)


def _paper() -> list[ModelFootprint]:
    from transformers import (
        Blip2ForConditionalGeneration,
        BlipForImageTextRetrieval,
        LlavaForConditionalGeneration,
        SamModel,
    )

    from ..data.schema import FMNERG_SCHEMA
    from ..recognize.config import RecognizerConfig
    from ..rerank.config import PRESETS
    from . import model_configs as paper

    return [
        _recogniser(paper.bert_base_cased_config(), RecognizerConfig(), FMNERG_SCHEMA, "bert-base-cased + heads",
                    GPU_BF16, "FMNERG: CRF paths, MGA"),
        _model("captioner", Blip2ForConditionalGeneration, paper.blip2_opt_2_7b_config(), "Salesforce/blip2-opt-2.7b",
               GPU_BF16, "frozen"),
        _reranker(lambda: LlavaForConditionalGeneration(paper.llava_1_5_7b_config()), "llava-hf/llava-1.5-7b-hf",
                  GPU_BF16, PRESETS["paper"].lora_rank, "vision", "CLIP ViT-L/14-336 + Llama-2-7B"),
        _model("matcher", BlipForImageTextRetrieval, paper.blip_itm_base_coco_config(), "Salesforce/blip-itm-base-coco",
               GPU_BF16, "full"),
        _model("segmenter", SamModel, paper.sam_vit_b_config(), "facebook/sam-vit-base", GPU_BF16, "frozen"),
    ]


def _minilm_config() -> Any:
    from transformers import AutoConfig

    from ..hub import resolve

    return resolve("minilm").load(AutoConfig)


def _paper_tiny() -> list[ModelFootprint]:
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, LlavaForConditionalGeneration

    from ..data.schema import FMNERG_SCHEMA
    from ..data.synthetic import caption_vocabulary, entity_names
    from ..ground.tiny import build_tokenizer, tiny_blip_config
    from ..knowledge.tiny_captioner import build_caption_tokenizer, tiny_captioner_config
    from ..recognize.config import preset
    from ..rerank.tiny import IMAGE_TOKEN, build_tiny_tokenizer, tiny_llava_config
    from .reproduce_gem_profiles import gem_profile

    profile = gem_profile("paper-tiny")  # the sizes `gemner reproduce --config paper-tiny` trains
    caption_vocab = len(build_caption_tokenizer(caption_vocabulary()).get_vocab())
    itm_vocab = len(build_tokenizer([*entity_names(), *FMNERG_SCHEMA.labels]).get_vocab())
    llava_tokenizer = build_tiny_tokenizer()
    llava = tiny_llava_config(len(llava_tokenizer), llava_tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    return [
        _recogniser(_minilm_config(), preset("lite"), FMNERG_SCHEMA, "all-MiniLM-L6-v2 + heads", CPU_FP32,
                    "the shipped recogniser's encoder"),
        _model("captioner", BlipForConditionalGeneration, tiny_captioner_config(caption_vocab),
               "tiny BLIP captioner", CPU_FP32, "full", "knowledge.tiny_captioner, synthetic caption vocabulary"),
        _reranker(lambda: LlavaForConditionalGeneration(llava), "tiny LLaVA", CPU_FP32, profile.reranker["lora_rank"],
                  "vision", "rerank.tiny.build_tiny_llava"),
        _model("matcher", BlipForImageTextRetrieval, tiny_blip_config(itm_vocab, profile.itm_spec), "tiny BLIP ITM",
               CPU_FP32, "full", "ground.tiny.TinyItmSpec of paper-tiny, synthetic names and FMNERG types"),
    ]


def _lite() -> list[ModelFootprint]:
    from transformers import LlamaForCausalLM

    from ..paths import models_dir
    from ..recognize.checkpoint import read_checkpoint_config
    from ..rerank.config import PRESETS
    from .model_configs import smollm2_135m_config

    recogniser, schema = read_checkpoint_config(models_dir() / "fmnerg-recognizer-lite")
    adapter = json.loads((models_dir() / "fmnerg-reranker-lite" / "adapter_config.json").read_text(encoding="utf-8"))
    reranker = _reranker(lambda: LlamaForCausalLM(smollm2_135m_config()), "SmolLM2-135M-Instruct", CPU_FP32,
                         int(adapter["r"]), "text", "models/fmnerg-reranker-lite, text-only")
    trained_lora = lora_parameter_count(on_meta(lambda: LlamaForCausalLM(smollm2_135m_config())),
                                        adapter["target_modules"], PRESETS["lite"].lora_rank)
    trained = footprint("reranker", reranker.name, reranker.params, CPU_FP32, "lora", lora=trained_lora)
    return [
        _recogniser(_minilm_config(), recogniser, schema, "all-MiniLM-L6-v2 + heads", CPU_FP32,
                    "models/fmnerg-recognizer-lite"),
        ModelFootprint(reranker.role, reranker.name, reranker.params, reranker.inference_bytes,
                       trained.training_bytes,
                       f"{reranker.note}; trained at rank {PRESETS['lite'].lora_rank} (lite preset), shipped "
                       f"cut to rank {adapter['r']}"),
    ]


def model_footprints(config: str) -> list[ModelFootprint]:
    """One row per model that `config` ("paper", "paper-tiny" or "lite") runs, counted on the meta device."""
    builders = {"paper": _paper, "paper-tiny": _paper_tiny, "lite": _lite}
    if config not in builders:
        raise ValueError(f"unknown configuration {config!r}; choose one of {', '.join(CONFIGS)}")
    return builders[config]()
