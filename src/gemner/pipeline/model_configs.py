"""Configs of the paper's models (and the lite reranker's base), written from their published hyperparameters.

No download: each function returns the `transformers` config the published checkpoint ships, so a model of
the real class and shape can be built from it on the meta device (`pipeline.footprint`) or with random
weights on a GPU (`benchmarks/gpu_suite.py`). Vocabulary sizes are the checkpoints' own.

| function | checkpoint | class |
| --- | --- | --- |
| `bert_base_cased_config` | `bert-base-cased` (recogniser encoder, paper §4.1) | `BertModel` |
| `blip2_opt_2_7b_config` | `Salesforce/blip2-opt-2.7b` (captioner, §3.2) | `Blip2ForConditionalGeneration` |
| `llama2_7b_config` | Llama-2-7B (LLaVA-1.5-7B's language model) | `LlamaForCausalLM` |
| `llava_1_5_7b_config` | `llava-hf/llava-1.5-7b-hf` (reranker, §3.3) | `LlavaForConditionalGeneration` |
| `blip_itm_base_coco_config` | `Salesforce/blip-itm-base-coco` (matcher, §3.4) | `BlipForImageTextRetrieval` |
| `sam_vit_b_config` | `facebook/sam-vit-base` (segmenter, §3.4) | `SamModel` |
| `smollm2_135m_config` | `HuggingFaceTB/SmolLM2-135M-Instruct` (the lite reranker's base) | `LlamaForCausalLM` |
"""

from __future__ import annotations

from typing import Any

LLAMA2_VOCAB = 32000
LLAVA_VOCAB = 32064  # llava-hf adds <image> and pads the embedding matrix to a multiple of 64


def bert_base_cased_config() -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=28996)  # BERT-base: 12 layers, 768 wide, 12 heads, 3072 FFN (the defaults)


def blip2_opt_2_7b_config() -> Any:
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OPTConfig

    vision = Blip2VisionConfig(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39,
                               num_attention_heads=16, image_size=224, patch_size=14, qkv_bias=True)  # EVA ViT-g/14
    qformer = Blip2QFormerConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, cross_attention_frequency=2, encoder_hidden_size=1408)
    text = OPTConfig(vocab_size=50272, hidden_size=2560, ffn_dim=10240, num_hidden_layers=32, num_attention_heads=32,
                     max_position_embeddings=2048, word_embed_proj_dim=2560, tie_word_embeddings=True)
    return Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
                       num_query_tokens=32)


def llama2_7b_config(vocab_size: int = LLAMA2_VOCAB) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, tie_word_embeddings=False)


def clip_vit_l14_336_config() -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                            image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")


def llava_1_5_7b_config() -> Any:
    from transformers import LlavaConfig

    return LlavaConfig(vision_config=clip_vit_l14_336_config().to_dict(),
                       text_config=llama2_7b_config(LLAVA_VOCAB).to_dict(), image_token_index=32000,
                       projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
                       image_seq_length=576)


def blip_itm_base_coco_config() -> Any:
    from transformers import BlipConfig

    # BLIP base: ViT-B/16 at 384 px, a BERT-base text encoder with cross-attention (BlipConfig's defaults)
    return BlipConfig(vision_config={"image_size": 384}, text_config={"vocab_size": 30524})


def sam_vit_b_config() -> Any:
    from transformers import SamConfig, SamVisionConfig

    vision = SamVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                             global_attn_indexes=[2, 5, 8, 11], output_channels=256, image_size=1024, patch_size=16)
    return SamConfig(vision_config=vision.to_dict())


def smollm2_135m_config() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                       rope_theta=100000, rms_norm_eps=1e-5, tie_word_embeddings=True)
