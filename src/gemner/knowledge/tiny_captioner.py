"""A tiny BLIP captioning model built from a config, with a word-level tokenizer made here (no download).

Same classes as the paper's captioner family (`BlipForConditionalGeneration`, a `BertTokenizer`, a
`BlipImageProcessor` in a `BlipProcessor`), only small, so that the caption route can be trained from
scratch on a CPU (`knowledge.captioner_train`). `save_tiny_captioner` writes an ordinary checkpoint folder
that `ModelCaptioner(path)` loads by path. The BLIP config and image processor are the tiny grounding
model's (`ground.tiny`): one description of a tiny BLIP.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..ground.tiny import SPECIAL_TOKENS, TinyItmSpec, build_image_processor, tiny_blip_config, word_level_tokenizer

# tiny_blip_config's decoder starts a caption with [CLS] (id 2) and ends it with [SEP] (id 3)
CAPTION_START, CAPTION_END = "[CLS]", "[SEP]"


# The captioner's sizes, BLIP's own shape spec: 64 px keeps a 128 px synthetic emblem's colour and is fast on a
# CPU; 48 text positions leave room for ModelCaptioner's 30 new tokens on an untrained decoder.
CAPTIONER_SPEC = TinyItmSpec(image_size=64, patch_size=8, hidden_size=64, vision_layers=2, text_layers=2, heads=4,
                             max_text_length=48)


def caption_words(captions: Iterable[str]) -> list[str]:
    """The lower-cased words of the captions, first seen first (the tokenizer's vocabulary)."""
    seen: dict[str, None] = {}
    for caption in captions:
        for word in caption.lower().split():
            seen.setdefault(word, None)
    return list(seen)


def build_caption_tokenizer(words: Iterable[str]):
    """The captioner's tokenizer: the special tokens, then the given words (caption start and end marked)."""
    return word_level_tokenizer((*SPECIAL_TOKENS, *(word.lower() for word in words)), bos_token=CAPTION_START,
                                eos_token=CAPTION_END)


def tiny_captioner_config(vocab_size: int, spec: TinyItmSpec = CAPTIONER_SPEC):
    return tiny_blip_config(vocab_size, spec)


def build_tiny_captioner(words: Iterable[str], spec: TinyItmSpec = CAPTIONER_SPEC,
                         seed: int = 0) -> tuple[Any, Any]:
    """(model, processor): a randomly initialised tiny `BlipForConditionalGeneration` and its `BlipProcessor`."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    tokenizer = build_caption_tokenizer(words)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(tiny_captioner_config(len(tokenizer.get_vocab()), spec))
    processor = BlipProcessor(image_processor=build_image_processor(spec), tokenizer=tokenizer)
    return model.eval(), processor


def save_tiny_captioner(model: Any, processor: Any, folder: str | Path) -> Path:
    """An ordinary checkpoint folder (safetensors, config, tokenizer, processor) loadable by path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
