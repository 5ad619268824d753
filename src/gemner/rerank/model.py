"""The reranker model: any HF image-text-to-text model (LLaVA) or any causal LM, with a LoRA adapter.

A trained reranker is a folder: `adapter_model.safetensors` + `adapter_config.json` (peft),
`reranker.json` (the `RerankerConfig`, including the base model's name) and `labels.json` (the label
schema it was trained on). `Reranker.load(folder)` rebuilds it; `Reranker.load(name)` gives the
untuned base model (zero-shot).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..data.images import load_image
from ..data.schema import LabelSchema
from ..devices import resolve_device
from ..hub import resolve
from ..paths import expand_model_name
from .config import RerankerConfig
from .lazy import base_model_name
from .prompt import PLAIN_ANSWER_HEADER, PLAIN_QUERY_HEADER, RerankQuery, few_shot_examples, query_text

logger = logging.getLogger(__name__)

CONFIG_FILE = "reranker.json"
LABELS_FILE = "labels.json"
ADAPTER_FILE = "adapter_model.safetensors"
_SENTINEL = "\u2063ANSWER\u2063"  # an answer text no template rewrites, to find the turn's end marker


def is_reranker_folder(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def model_kind(config: Any) -> str:
    """'vision' for image-text-to-text models (a vision tower in the config), else 'causal'."""
    return "vision" if getattr(config, "vision_config", None) is not None else "causal"


class Reranker:
    """A base model (+ optional LoRA) with the tokenizer/processor that builds Table 7 prompts."""

    def __init__(self, model: Any, tokenizer: Any, processor: Any | None, kind: str,
                 config: RerankerConfig, schema: LabelSchema | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.kind = kind
        self.config = config
        self.schema = schema
        self._answer_cache: dict[str, list[int]] = {}
        self.chat = self._template_owner() is not None
        self.end_id = self._answer_end_id()

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def load(cls, name_or_dir: str, config: RerankerConfig | None = None, *, device: str | None = None,
             dtype: Any = None, trust_remote_code: bool = False) -> Reranker:
        """A trained reranker folder, or a base model name/path (then `config` gives the settings).
        `trust_remote_code`: let the base model's own Python code run (only when the user asked)."""
        name_or_dir = expand_model_name(name_or_dir)
        adapter_dir = Path(name_or_dir) if is_reranker_folder(name_or_dir) else None
        schema = None
        if adapter_dir is not None:
            saved = RerankerConfig.model_validate_json((adapter_dir / CONFIG_FILE).read_text())
            saved = saved.model_copy(update={"model": base_model_name(str(adapter_dir))})  # relative: inside it
            overrides = config.model_dump(exclude_unset=True, exclude={"model"}) if config else {}
            config = saved.model_copy(update=overrides)
            if (adapter_dir / LABELS_FILE).is_file():
                schema = LabelSchema.from_dict(json.loads((adapter_dir / LABELS_FILE).read_text()))
        else:
            config = (config or RerankerConfig()).model_copy(update={"model": name_or_dir})
        reranker = cls.from_base(config, device=device, dtype=dtype, schema=schema, trust_remote_code=trust_remote_code)
        if adapter_dir is not None:
            from peft import PeftModel

            reranker.model = PeftModel.from_pretrained(reranker.model, str(adapter_dir), is_trainable=False)
            reranker.model.eval()
        return reranker

    @classmethod
    def from_base(cls, config: RerankerConfig, *, device: str | None = None, dtype: Any = None,
                  schema: LabelSchema | None = None, trust_remote_code: bool = False) -> Reranker:
        import torch
        from transformers import AutoConfig

        device = resolve_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        pretrained = resolve(config.model, trust_remote_code=trust_remote_code)
        kind = model_kind(pretrained.load(AutoConfig))
        if kind == "vision":
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = pretrained.load(AutoProcessor)
            tokenizer = processor.tokenizer
            model = pretrained.load(AutoModelForImageTextToText, dtype=dtype)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            processor = None
            tokenizer = pretrained.load(AutoTokenizer)
            model = pretrained.load(AutoModelForCausalLM, dtype=dtype)
        model.to(device).eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model, tokenizer, processor, kind, config, schema)

    def add_lora(self) -> None:
        """Wrap the model with a fresh LoRA adapter on the language model's linear layers."""
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=self.config.lora_rank, lora_alpha=self.config.lora_alpha, lora_dropout=self.config.lora_dropout,
            target_modules=lora_targets(self.model, self.kind), bias="none",
        )
        if self.config.gradient_checkpointing:
            # recompute activations in the backward pass: a 7B model's batch fits a 24 GB GPU
            enable = getattr(self.model, "activation_checkpointing_enable", None)  # transformers >= 5.2x name
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            self.model.enable_input_require_grads()
        self.model = get_peft_model(self.model, lora)

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not hasattr(self.model, "peft_config"):
            raise ValueError("only a LoRA-tuned reranker can be saved (call add_lora and train first)")
        self.model.save_pretrained(str(folder), safe_serialization=True)
        (folder / CONFIG_FILE).write_text(self.config.model_dump_json(indent=2))
        if self.schema is not None:
            (folder / LABELS_FILE).write_text(json.dumps(self.schema.to_dict(), indent=2))
        return folder

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- prompts and answers
    def _template_owner(self) -> Any | None:
        for owner in (self.processor, self.tokenizer):
            if owner is not None and getattr(owner, "chat_template", None):
                return owner
        return None

    def _user_message(self, query: RerankQuery, with_image: bool) -> dict[str, Any]:
        text = query_text(query, with_caption=self._caption_on())
        if self.kind != "vision":
            return {"role": "user", "content": text}
        parts: list[dict[str, str]] = [{"type": "image"}] if with_image else []
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    def _assistant_message(self, answer: str) -> dict[str, Any]:
        if self.kind != "vision":
            return {"role": "assistant", "content": answer}
        return {"role": "assistant", "content": [{"type": "text", "text": answer}]}

    def prompt_text(self, query: RerankQuery, with_image: bool = False) -> str:
        """The full prompt up to where the answer starts (few-shot turns first, when asked)."""
        shots = few_shot_examples(self.config.few_shot)
        owner = self._template_owner()
        if owner is None:
            done = "".join(f"{PLAIN_QUERY_HEADER}{query_text(s, False)}{PLAIN_ANSWER_HEADER}{s.answer}\n\n"
                           for s in shots)
            image = (self._image_token() + "\n") if with_image else ""
            return f"{done}{PLAIN_QUERY_HEADER}{image}{query_text(query, self._caption_on())}{PLAIN_ANSWER_HEADER}"
        messages: list[dict[str, Any]] = []
        for shot in shots:
            messages += [self._user_message(shot, False), self._assistant_message(shot.answer or "")]
        messages.append(self._user_message(query, with_image))
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _caption_on(self) -> bool:
        return self.kind == "causal" and self.config.use_caption

    def _image_token(self) -> str:
        return getattr(self.processor, "image_token", "<image>")

    def _answer_end_id(self) -> int:
        """The token that closes an assistant turn (the chat template's, else EOS): scored with the
        label, so a label that is a prefix of another ("sports" / "sports_team") is not favoured."""
        owner = self._template_owner()
        if owner is not None:
            probe = RerankQuery(("x",), 0, 1, ("y",))
            messages = [self._user_message(probe, False), self._assistant_message(_SENTINEL)]
            full = owner.apply_chat_template(messages, tokenize=False)
            tail = full.split(_SENTINEL, 1)[1] if _SENTINEL in full else ""
            ids = self.tokenizer(tail.strip(), add_special_tokens=False)["input_ids"] if tail.strip() else []
            if ids:
                return int(ids[0])
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither a chat template end marker nor an EOS token")
        return int(self.tokenizer.eos_token_id)

    def answer_ids(self, label: str) -> list[int]:
        """Token ids of one answer: the label's tokens, then the end-of-turn token."""
        ids = self._answer_cache.get(label)
        if ids is None:
            ids = [*self.tokenizer(label, add_special_tokens=False)["input_ids"], self.end_id]
            self._answer_cache[label] = ids
        return ids

    def encode_prompt(self, query: RerankQuery) -> dict[str, Any]:
        """Model inputs for the prompt (batch of one): input_ids, attention_mask, pixel_values if any."""
        image = None
        if self.kind == "vision" and query.image is not None:  # a loaded image, or a file to load
            image = query.image if hasattr(query.image, "size") else load_image(query.image)
        text = self.prompt_text(query, with_image=image is not None)
        special = {"add_special_tokens": not self.chat}
        if self.kind == "vision":
            inputs = self.processor(text=text, images=image, return_tensors="pt", **special)
        else:
            inputs = self.tokenizer(text, return_tensors="pt", **special)
        wanted = ("input_ids", "attention_mask", "pixel_values", "image_sizes")
        return {key: value.to(self.device) for key, value in inputs.items() if key in wanted}


def lora_targets(model: Any, kind: str) -> list[str]:
    """Names of the linear layers to adapt: the language model's and, for image-text-to-text models, the
    vision-language projector's (LLaVA's own LoRA recipe trains the projector too, so the image tokens
    can move towards what the task needs). The vision tower and the LM head stay frozen."""
    import torch

    head = model.get_output_embeddings()
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if kind == "vision" and "language_model" not in name and "multi_modal_projector" not in name:
            continue
        names.append(name)
    if not names:
        raise ValueError(f"no linear layers to adapt found in {type(model).__name__}")
    return names
