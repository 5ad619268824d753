"""Recogniser checkpoints and resumable training state: safetensors + JSON, never pickle.

A checkpoint folder (loadable by `Recognizer.from_pretrained`):

    config.json                 {"format": "gemner-recognizer", "recognizer": RecognizerConfig}
    labels.json                 the LabelSchema
    model.safetensors           full fine-tuning: every tensor of the model
    encoder/                    full fine-tuning: encoder config + tokenizer (no weights: they are above)
    adapter_model.safetensors   LoRA: the peft adapters only ...
    heads.safetensors           ... plus heads, CRFs and M; the base encoder is loaded by name
    encoder_deltas.safetensors  optional (compressed checkpoints): encoder tensors replaced whole

The training state (`<output>/last/`) is a checkpoint plus `optimizer.safetensors` (AdamW moments),
`rng.safetensors` (torch RNG) and `trainer_state.json` (epoch, step, history, scheduler, lr groups).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..data.issues import DataError
from ..data.schema import LabelSchema
from ..hub import MissingWeightsError, downloads_allowed, is_available, missing_message, resolve
from ..paths import expand_model_name
from .config import RecognizerConfig
from .encoding import load_tokenizer
from .equations import initial_mga_matrix

FORMAT = "gemner-recognizer"
CONFIG_FILE = "config.json"
LABELS_FILE = "labels.json"
MODEL_FILE = "model.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
HEADS_FILE = "heads.safetensors"
ENCODER_DELTAS_FILE = "encoder_deltas.safetensors"  # LoRA checkpoints made by `compress`: whole small tensors
ENCODER_DIR = "encoder"
STATE_FILE = "trainer_state.json"


def load_encoder(name: str, *, trust_remote_code: bool = False):
    """Pretrained encoder and tokenizer by gemner name (alias, path or cached hub id)."""
    from transformers import AutoModel

    if not downloads_allowed() and not is_available(name):
        # fail at once: transformers would otherwise retry the hub for ~20 s before giving up
        raise MissingWeightsError(missing_message(name))
    pretrained = resolve(name, trust_remote_code=trust_remote_code)
    return pretrained.load(AutoModel), load_tokenizer(pretrained)


def apply_lora(encoder, config: RecognizerConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha or 2 * config.lora_rank,
                      lora_dropout=config.lora_dropout, target_modules=config.lora_targets)
    return get_peft_model(encoder, lora)


def build_model(cls, config: RecognizerConfig, schema: LabelSchema, train_pairs: Iterable[tuple[str, str]], *,
                trust_remote_code: bool = False):
    encoder, tokenizer = load_encoder(config.encoder, trust_remote_code=trust_remote_code)
    if config.lora_rank > 0:
        encoder = apply_lora(encoder, config)
    mga_init = initial_mga_matrix(schema, train_pairs, config.mga_norm) if schema.hierarchical else None
    return cls(config, schema, encoder, tokenizer, mga_init)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_recognizer(model, path: str | Path, adapter_dtype: torch.dtype | None = None) -> None:
    """Write a checkpoint folder (format in the module docstring); LoRA adapters optionally cast
    (fp16 halves the file; they are upcast on load)."""
    if getattr(model, "prepared_for_inference", False):
        raise ValueError("a recogniser prepared for inference (adapters merged) cannot be saved; "
                         "save the model as loaded or trained")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / CONFIG_FILE, {"format": FORMAT, "version": 1, "recognizer": model.config.model_dump()})
    _write_json(path / LABELS_FILE, model.schema.to_dict())
    if model.uses_lora:
        from peft import get_peft_model_state_dict

        adapters = {k: v.detach().to(adapter_dtype or v.dtype).contiguous()
                    for k, v in get_peft_model_state_dict(model.encoder).items()}
        save_file(adapters, str(path / ADAPTER_FILE))
        heads = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
        save_file(heads, str(path / HEADS_FILE))
    else:
        save_model(model, str(path / MODEL_FILE))
        model.encoder.config.save_pretrained(path / ENCODER_DIR)
        model.tokenizer.save_pretrained(path / ENCODER_DIR)


def read_checkpoint_config(path: str | Path) -> tuple[RecognizerConfig, LabelSchema]:
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{path}: not a recogniser checkpoint (no {CONFIG_FILE})")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise DataError(f"{config_path}: not a gemner recogniser checkpoint (format {data.get('format')!r})")
    schema = LabelSchema.from_dict(json.loads((path / LABELS_FILE).read_text(encoding="utf-8")))
    return RecognizerConfig(**data["recognizer"]), schema


def load_recognizer(cls, path: str | Path, device: str | torch.device = "cpu", *, trust_remote_code: bool = False):
    """Load a checkpoint written by `save_recognizer` (in eval mode, on `device`); `models:NAME` names a
    shipped one."""
    from transformers import AutoConfig, AutoModel

    path = Path(expand_model_name(str(path)))
    config, schema = read_checkpoint_config(path)
    if config.lora_rank > 0:
        from peft import set_peft_model_state_dict

        encoder, tokenizer = load_encoder(config.encoder, trust_remote_code=trust_remote_code)
        if (path / ENCODER_DELTAS_FILE).is_file():
            missing, unexpected = encoder.load_state_dict(load_file(str(path / ENCODER_DELTAS_FILE)), strict=False)
            if unexpected:
                raise DataError(f"{path / ENCODER_DELTAS_FILE}: tensors the encoder lacks ({unexpected[:3]})")
        encoder = apply_lora(encoder, config)
        set_peft_model_state_dict(encoder, load_file(str(path / ADAPTER_FILE)))
        model = cls(config, schema, encoder, tokenizer)
        missing, unexpected = model.load_state_dict(load_file(str(path / HEADS_FILE)), strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise DataError(f"{path / HEADS_FILE}: tensors do not fit the model ({unexpected or missing})")
    else:
        encoder_files = resolve(str(path / ENCODER_DIR), trust_remote_code=trust_remote_code)
        encoder = encoder_files.build(AutoModel, encoder_files.load(AutoConfig))
        tokenizer = load_tokenizer(encoder_files)
        model = cls(config, schema, encoder, tokenizer)
        load_model(model, str(path / MODEL_FILE))
    return model.to(device).eval()


# --- resumable training state -----------------------------------------------------------------------

def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = torch.as_tensor(value).detach().clone().contiguous()
    return tensors, state["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_training_state(folder: str | Path, model, optimizer, scheduler, progress: dict[str, Any]) -> None:
    """Write the resumable state atomically: into `<folder>.tmp`, then swapped into place."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_recognizer(model, tmp)
    tensors, groups = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    py_version, py_state, py_gauss = random.getstate()
    _write_json(tmp / STATE_FILE, {
        **progress, "param_groups": groups, "scheduler": scheduler.state_dict(),
        "python_rng": [py_version, list(py_state), py_gauss],
    })  # written last: its presence marks a complete state
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def find_training_state(folder: str | Path) -> Path | None:
    """The newest complete state: `last/`, else a finished `last.tmp/`, else `last.old/`."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_training_state(folder: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore model weights, optimizer, scheduler and RNG in place; returns the progress counters."""
    if model.uses_lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model.encoder, load_file(str(folder / ADAPTER_FILE)))
        model.load_state_dict(load_file(str(folder / HEADS_FILE)), strict=False)
    else:
        load_model(model, str(folder / MODEL_FILE))
    progress = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    _restore_optimizer(optimizer, load_file(str(folder / "optimizer.safetensors")), progress.pop("param_groups"))
    scheduler.load_state_dict(progress.pop("scheduler"))
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    cuda = [rng[f"cuda.{i}"] for i in range(len(rng) - 1)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, state, gauss = progress.pop("python_rng")
    random.setstate((version, tuple(state), gauss))
    return progress
