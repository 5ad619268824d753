"""Shrink a trained reranker's LoRA adapter for shipping: every layer's update cut to a lower rank.

A peft LoRA layer adds `scaling * B @ A` (B [out, r], A [r, in], scaling = lora_alpha / r) to its
weight. The product is replaced by its best rank-r' approximation (truncated SVD), written as new
factors with scaling 1 (lora_alpha = r'), in fp16. The folder stays an ordinary reranker folder
(`Reranker.load`), over the same base model by name. SmolLM2-135M with rank 64 on every linear layer
is a 78 MB fp32 adapter; most of its update lives in a few directions (measured, README).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..lowrank import low_rank_factors
from .model import ADAPTER_FILE, CONFIG_FILE, LABELS_FILE

ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class AdapterCompression:
    rank: int
    layers: int
    kept_energy: float  # share of the squared Frobenius norm of all layer updates the factors keep
    megabytes: float


def _scaling(config: dict) -> float:
    if config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError("per-layer ranks/alphas and rsLoRA are not supported by the compressor")
    return config["lora_alpha"] / config["r"]


def compress_reranker(source: str | Path, output: str | Path, rank: int, dtype: torch.dtype = torch.float16
                      ) -> AdapterCompression:
    """Write the reranker at `source` with its adapter truncated to `rank` into `output`."""
    source, output = Path(source), Path(output)
    adapter_config = json.loads((source / ADAPTER_CONFIG).read_text())
    scaling = _scaling(adapter_config)
    weights = load_file(str(source / ADAPTER_FILE))
    compressed: dict[str, torch.Tensor] = {}
    kept_total = energy_total = 0.0
    layers = 0
    for key, tensor in weights.items():
        if not key.endswith("lora_A.weight"):
            if "lora_B" not in key:  # anything else an adapter may hold is kept as it is
                compressed[key] = tensor.to(dtype)
            continue
        a, b = tensor, weights[key.replace("lora_A", "lora_B")]
        delta = scaling * b.float() @ a.float()
        left, right, kept = low_rank_factors(delta, rank)
        if left.shape[1] < rank:  # a layer narrower than the rank: exact, padded with zeros
            left = torch.cat([left, left.new_zeros(left.shape[0], rank - left.shape[1])], dim=1)
            right = torch.cat([right, right.new_zeros(rank - right.shape[0], right.shape[1])], dim=0)
        energy = float((delta ** 2).sum())
        kept_total, energy_total = kept_total + kept * energy, energy_total + energy
        compressed[key] = right.to(dtype).contiguous()
        compressed[key.replace("lora_A", "lora_B")] = left.to(dtype).contiguous()
        layers += 1
    if not layers:
        raise ValueError(f"{source / ADAPTER_FILE} holds no LoRA factors")
    output.mkdir(parents=True, exist_ok=True)
    save_file(compressed, str(output / ADAPTER_FILE))
    settings = json.loads((source / CONFIG_FILE).read_text())
    settings.update(lora_rank=rank, lora_alpha=rank, lora_dropout=0.0)
    (output / CONFIG_FILE).write_text(json.dumps(settings, indent=2))
    adapter_config.update(r=rank, lora_alpha=rank, lora_dropout=0.0, base_model_name_or_path=settings["model"])
    (output / ADAPTER_CONFIG).write_text(json.dumps(adapter_config, indent=2))
    if (source / LABELS_FILE).is_file():
        shutil.copyfile(source / LABELS_FILE, output / LABELS_FILE)
    megabytes = sum(f.stat().st_size for f in output.iterdir() if f.is_file()) / 1e6
    return AdapterCompression(rank, layers, kept_total / energy_total if energy_total else 1.0, megabytes)
