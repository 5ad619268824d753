"""A tiny BLIP image-text-matching model built from configs, with a word-level tokenizer made here.

Same classes as the paper's `Salesforce/blip-itm-base-coco` (`BlipForImageTextRetrieval`, a
`BertTokenizer`, a `BlipImageProcessor`), only small, so that the whole grounding path can be
trained from scratch and checked on synthetic scenes on a CPU. `save_tiny_itm` writes an ordinary
checkpoint folder that every grounding command loads by path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TEMPLATE_WORDS = ("is", "belong")
# BLIP's own image normalisation (the OpenAI CLIP statistics), as in the real processor config.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyItmSpec:
    image_size: int = 128
    patch_size: int = 8
    hidden_size: int = 96
    vision_layers: int = 2
    text_layers: int = 2
    heads: int = 4
    max_text_length: int = 16


def word_level_tokenizer(tokens: Iterable[str], **special: str):
    """A lower-cased word-level BERT tokenizer whose vocabulary is `tokens` in order (a repeat counts once).
    Built here because the tiny models learn a closed vocabulary from scratch: no published tokenizer fits."""
    from transformers import BertTokenizer

    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=True, **special)


def build_tokenizer(words: Iterable[str]):
    """The tiny ITM's tokenizer: the special tokens, the Table 8 template words, then the given words."""
    return word_level_tokenizer((*SPECIAL_TOKENS, *TEMPLATE_WORDS, *(w.lower() for w in words)))


def build_image_processor(spec: TinyItmSpec):
    from .processors import blip_image_processor

    return blip_image_processor()(
        size={"height": spec.image_size, "width": spec.image_size},
        image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD),
    )


def tiny_blip_config(vocab_size: int, spec: TinyItmSpec = TinyItmSpec()):
    from transformers import BlipConfig

    hidden = spec.hidden_size
    # BLIP's defaults (0.02; 1e-10 for the vision embeddings) assume pretrained weights. From
    # scratch at this width they leave the [CLS] output almost blind to the text and the image and
    # learning stalls; 1/sqrt(width) keeps each layer's gain near one.
    init_std = hidden ** -0.5
    return BlipConfig(
        text_config={
            "vocab_size": vocab_size, "hidden_size": hidden, "encoder_hidden_size": hidden,
            "intermediate_size": 2 * hidden, "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads, "max_position_embeddings": spec.max_text_length,
            "pad_token_id": 0, "bos_token_id": 2, "sep_token_id": 3, "eos_token_id": 3,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "initializer_range": init_std,
        },
        vision_config={
            "hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.heads, "image_size": spec.image_size, "patch_size": spec.patch_size,
            "attention_dropout": 0.0,
            "initializer_range": init_std,
        },
        projection_dim=hidden,
        image_text_hidden_size=hidden,
        initializer_range=init_std,
    )


def build_tiny_itm(words: Iterable[str], spec: TinyItmSpec = TinyItmSpec(), seed: int = 0):
    """(model, tokenizer, image_processor): a randomly initialised tiny `BlipForImageTextRetrieval`."""
    import torch
    from transformers import BlipForImageTextRetrieval

    tokenizer = build_tokenizer(words)
    torch.manual_seed(seed)
    model = BlipForImageTextRetrieval(tiny_blip_config(len(tokenizer.get_vocab()), spec))
    return model.eval(), tokenizer, build_image_processor(spec)


def save_tiny_itm(model, tokenizer, image_processor, folder: str | Path) -> Path:
    """An ordinary checkpoint folder (safetensors, config, tokenizer, processor) loadable by path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return folder
