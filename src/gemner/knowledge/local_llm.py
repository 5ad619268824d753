"""Local causal-LM backend: batched greedy decoding that computes the shared few-shot prefix once.

Every knowledge prompt starts with the same Table 6 few-shot turns (about 560 of its ~650 tokens with
SmolLM2's chat template). Running them through the model once and copying their key/value cache into
each batch makes prefilling about 5-7x cheaper; `benchmarks/knowledge_speed.py` measures the gain.
Suffixes are left-padded *after* the shared prefix, i.e. the padding sits between prefix and suffix;
the attention mask hides it and position ids skip it, so each row sees exactly its own prompt.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backends import DEFAULT_LOCAL_DTYPE, DEFAULT_MAX_NEW_TOKENS, DEFAULT_MODELS, Completion, Request, ResultCallback


@dataclass(frozen=True)
class LocalLLMConfig:
    model: str = DEFAULT_MODELS["local"]  # a name for gemner.hub.resolve or a local path
    batch_size: int = 16
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS["local"]
    prefix_cache: bool = True
    dtype: str = DEFAULT_LOCAL_DTYPE  # "float32" is exact but slower on CPUs with bf16 units
    repetition_penalty: float = 1.0  # 1.0 = plain greedy decoding
    threads: int | None = None  # torch CPU threads; None keeps torch's setting


class LocalLLMBackend:
    name = "local"

    def __init__(self, config: LocalLLMConfig, *, model: Any = None, tokenizer: Any = None,
                 trust_remote_code: bool = False):
        import torch

        self.config = config
        self.model = config.model  # the cache key's model part
        if config.threads:
            torch.set_num_threads(config.threads)
        if model is None or tokenizer is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from ..hub import resolve

            pretrained = resolve(config.model, trust_remote_code=trust_remote_code)
            tokenizer = pretrained.load(AutoTokenizer)
            model = pretrained.load(AutoModelForCausalLM, dtype=getattr(torch, config.dtype))
        self.tokenizer = tokenizer
        self.lm = model.eval()
        eos = {tokenizer.eos_token_id, *_as_list(getattr(model.generation_config, "eos_token_id", None))}
        self.eos_ids = sorted(i for i in eos if i is not None)
        if not self.eos_ids:
            raise ValueError(f"model {config.model!r} defines no end-of-sequence token")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._prefix: tuple[list[int], list[tuple[Any, Any]]] | None = None

    def settings(self) -> dict[str, Any]:
        # batch size, prefix caching and threads do not change a greedy answer (up to float rounding)
        return {
            "max_new_tokens": self.config.max_new_tokens,
            "decoding": "greedy",
            "repetition_penalty": self.config.repetition_penalty,
            "dtype": self.config.dtype,
        }

    # ---- tokenising ------------------------------------------------------------------------------
    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prefix_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the conversation before the last user turn, as the full prompt spells them."""
        if len(messages) < 2:
            return []
        text = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # ---- running ---------------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], on_result: ResultCallback, stop: threading.Event) -> None:
        size = max(1, self.config.batch_size)
        for start in range(0, len(requests), size):
            if stop.is_set():
                return
            batch = list(requests[start:start + size])
            began = time.perf_counter()
            outputs = self.generate([r.messages for r in batch], stop)
            if stop.is_set():
                return  # an interrupted batch is abandoned whole: its rows may be cut short
            seconds = (time.perf_counter() - began) / len(batch)
            for request, (text, truncated) in zip(batch, outputs, strict=True):
                on_result(request, Completion(text, truncated, seconds))

    def generate(self, conversations: list[list[dict[str, str]]],
                 stop: threading.Event | None = None) -> list[tuple[str, bool]]:
        """Greedy answers (text, truncated) for a batch of conversations."""
        import torch

        all_ids = [self.prompt_ids(messages) for messages in conversations]
        prefix = self._shared_prefix(conversations[0]) if self.config.prefix_cache else []
        if prefix and all(ids[: len(prefix)] == prefix and len(ids) > len(prefix) for ids in all_ids):
            suffixes = [ids[len(prefix):] for ids in all_ids]
        else:
            prefix, suffixes = [], all_ids
        with torch.inference_mode():
            new_tokens, truncated = self._decode(prefix, suffixes, stop)
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [(text.strip(), cut) for text, cut in zip(texts, truncated, strict=True)]

    def _shared_prefix(self, messages: list[dict[str, str]]) -> list[int]:
        ids = self.prefix_ids(messages)
        if self._prefix is None or self._prefix[0] != ids:
            self._prefix = (ids, self._prefix_kv(ids)) if ids else None
        return ids

    def _prefix_kv(self, ids: list[int]) -> list[tuple[Any, Any]]:
        import torch
        from transformers import DynamicCache

        cache = DynamicCache()
        with torch.inference_mode():
            self.lm(input_ids=torch.tensor([ids]), use_cache=True, **{self._cache_kwarg: cache})
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _new_cache(self, batch: int, length: int, prefix_len: int) -> Any:
        """A preallocated cache holding the shared prefix for every row.

        Preallocated because the growing cache (`DynamicCache`) re-concatenates every layer's keys and
        values at each decoding step; on CPU that copying took two thirds of the decoding time.
        """
        from transformers import StaticCache

        cache = StaticCache(config=self.lm.config, max_cache_len=length)
        if prefix_len:
            assert self._prefix is not None
            for layer, (keys, values) in enumerate(self._prefix[1]):
                cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), layer)
        return cache

    def _decode(self, prefix: list[int], suffixes: list[list[int]],
                stop: threading.Event | None) -> tuple[list[list[int]], list[bool]]:
        import torch

        batch, width, p = len(suffixes), max(len(s) for s in suffixes), len(prefix)
        limit = self.config.max_new_tokens
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        # the mask spans the whole preallocated cache: slots not yet written stay 0
        mask = torch.zeros((batch, p + width + limit), dtype=torch.long)
        mask[:, :p] = 1
        for row, ids in enumerate(suffixes):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, p + width - len(ids):p + width] = 1
        positions = (mask[:, :p + width].cumsum(-1) - 1).clamp(min=0)[:, p:]
        cache = self._new_cache(batch, p + width + limit, p)
        eos = torch.tensor(self.eos_ids)
        generated = torch.empty((batch, 0), dtype=torch.long)
        finished = torch.zeros(batch, dtype=torch.bool)
        step_input, step_positions, filled = input_ids, positions, p + width
        for _ in range(limit):
            if stop is not None and stop.is_set():
                break
            out = self.lm(input_ids=step_input, attention_mask=mask, position_ids=step_positions,
                             use_cache=True, logits_to_keep=1, **{self._cache_kwarg: cache})
            logits = out.logits[:, -1, :].float()
            if self.config.repetition_penalty != 1.0:
                logits = _penalise_repeats(logits, generated, self.config.repetition_penalty)
            token = torch.where(finished, torch.tensor(self.pad_id), logits.argmax(-1))
            generated = torch.cat([generated, token[:, None]], 1)
            finished |= torch.isin(token, eos)
            if bool(finished.all()) or filled == mask.shape[1]:
                break
            mask[:, filled] = 1
            filled += 1
            step_input, step_positions = token[:, None], step_positions[:, -1:] + 1
        rows = [_until_eos(row, self.eos_ids) for row in generated.tolist()]
        truncated = [not bool(done) for done in finished.tolist()]
        return rows, truncated


def _penalise_repeats(logits: Any, seen: Any, penalty: float) -> Any:
    """CTRL-style repetition penalty (transformers' formula) over the answer's own tokens only: the
    prompt is full of padding and few-shot text that an answer may legitimately repeat."""
    if seen.shape[1] == 0:
        return logits
    picked = logits.gather(1, seen)
    picked = picked.where(picked < 0, picked / penalty).where(picked >= 0, picked * penalty)
    return logits.scatter(1, seen, picked)


def _until_eos(row: list[int], eos_ids: list[int]) -> list[int]:
    for index, token in enumerate(row):
        if token in eos_ids:
            return row[:index]
    return row


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
