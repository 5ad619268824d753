"""Tiny randomly initialised rerankers built from configs, for tests and smoke runs (no download).

`build_tiny_causal_lm(folder)` writes a 2-layer Llama with a byte-level BPE tokenizer trained here on
the reranking prompt's vocabulary; `build_tiny_llava(folder)` adds a tiny CLIP vision tower and a
LLaVA processor (PIL image processor, so no torchvision). Both folders load with the ordinary
`from_pretrained` calls, exactly like real weights would.
"""

from __future__ import annotations

from pathlib import Path

from ..data.schema import FMNERG_SCHEMA, GMNER_SCHEMA
from .prompt import INSTRUCTION, PLAIN_ANSWER_HEADER, PLAIN_QUERY_HEADER

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN, "<|im_start|>", "<|im_end|>"]
# ChatML, as SmolLM2-Instruct uses (its default system turn left out).
TINY_CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# A simple chat template in the LLaVA-1.5 style, used by the tiny processor.
TINY_LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% else %}ASSISTANT: "
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def tokenizer_corpus(extra: list[str] | None = None) -> list[str]:
    labels = list(FMNERG_SCHEMA.labels) + list(FMNERG_SCHEMA.coarse_labels) + list(GMNER_SCHEMA.labels)
    return [
        INSTRUCTION, PLAIN_QUERY_HEADER, PLAIN_ANSWER_HEADER, "Text: Caption: Candidate: (&&)",
        " ".join(labels), "RT @ the a of in on at for to and is was # : . , ! ? USER: ASSISTANT:",
        *(extra or []),
    ]


def build_tiny_tokenizer(vocab_size: int = 600, extra_corpus: list[str] | None = None):
    """A byte-level BPE tokenizer (any text encodes, no unknown tokens), wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(tokenizer_corpus(extra_corpus) * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )


def tiny_llama_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                      init_std: float = 0.02):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=1024,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False, initializer_range=init_std,
    )


def build_tiny_causal_lm(folder: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2,
                         extra_corpus: list[str] | None = None, init_std: float = 0.02,
                         chat_template: str | None = None) -> Path:
    """Write a tiny random Llama + tokenizer to `folder` and return it. A larger `init_std` gives
    the random LM head logits on the scale of a trained model's, so LoRA can make answers confident."""
    import torch
    from transformers import LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(extra_corpus=extra_corpus)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer), hidden=hidden, layers=layers, init_std=init_std))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llava_config(vocab_size: int, image_token_id: int, image_size: int = 32, patch: int = 8,
                      init_std: float = 0.02, hidden: int = 64):
    """The tiny LLaVA's config: a 2-layer CLIP vision tower (32 wide) and `tiny_llama_config`'s Llama of width
    `hidden`."""
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=image_size, patch_size=patch, projection_dim=32,
    )
    return LlavaConfig(
        vision_config=vision, text_config=tiny_llama_config(vocab_size, hidden=hidden, init_std=init_std),
        image_token_index=image_token_id, image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )


def build_tiny_llava(folder: str | Path, seed: int = 0, image_size: int = 32, patch: int = 8,
                     init_std: float = 0.02, hidden: int = 64) -> Path:
    """Write a tiny random LLaVA (CLIP vision tower + Llama of width `hidden`) with its processor to
    `folder`; `init_std` as in `build_tiny_causal_lm` (0.1 gives LM head logits on a trained model's scale)."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer()
    config = tiny_llava_config(len(tokenizer), tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), image_size=image_size,
                               patch=patch, init_std=init_std, hidden=hidden)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="default", chat_template=TINY_LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def randomize_lora_b(model, seed: int = 0, std: float = 0.2) -> None:
    """Give a freshly added LoRA adapter non-zero B matrices, so that it changes the model's outputs (a new
    adapter starts as the identity, which would make any adapter-versus-base test unable to fail)."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, std)
