"""Ship a fully fine-tuned recogniser in a few MB: its encoder's weight change as LoRA adapters.

Full fine-tuning moves every encoder weight W_base -> W_ft. For each linear layer and the word
embeddings, the change D = W_ft - W_base is replaced by its best rank-r approximation (truncated
SVD, Eckart-Young), written as the peft LoRA factors of that layer (scaling 1), so the checkpoint is
an ordinary LoRA recogniser checkpoint over the base encoder by name. The small tensors LoRA cannot
express (biases, LayerNorms, position / token-type embeddings) are stored whole in
`encoder_deltas.safetensors`. Heads, CRFs and M are kept exactly. Adapters may be stored in fp16.

Why not LoRA training: the compressed full fine-tune keeps its accuracy better at the same size than
a rank-limited training run on this CPU budget (measured, README), and needs no second training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..lowrank import low_rank_factors
from .checkpoint import ENCODER_DELTAS_FILE, apply_lora, load_encoder, save_recognizer

# The word embeddings are the one non-linear layer worth factoring (vocab x dim); every linear layer is found
# by `lora_targets` (BERT names them query/key/value/dense, MPNet q/k/v/o/dense).
EMBEDDING_TARGET = "word_embeddings"


def lora_targets(encoder: torch.nn.Module) -> list[str]:
    """peft `target_modules` covering every linear layer of `encoder` and its word embeddings, by module name."""
    names = {name.rsplit(".", 1)[-1] for name, module in encoder.named_modules()
             if isinstance(module, torch.nn.Linear)}
    if any(name.rsplit(".", 1)[-1] == EMBEDDING_TARGET for name, _ in encoder.named_modules()):
        names.add(EMBEDDING_TARGET)
    return sorted(names)


@dataclass
class CompressionReport:
    rank: int
    layers: int
    kept_energy: float  # share of the squared Frobenius norm of all deltas that the factors keep
    deltas: int  # tensors stored whole
    megabytes: float


def _set_factors(module, delta: torch.Tensor, rank: int) -> tuple[float, float]:
    """Write `delta` (the weight change of `module`'s base layer) into its LoRA factors."""
    left, right, kept = low_rank_factors(delta, rank)
    if left.shape[1] < rank:  # a layer narrower than the rank: its change is exact, pad with zeros
        left = torch.cat([left, left.new_zeros(left.shape[0], rank - left.shape[1])], dim=1)
        right = torch.cat([right, right.new_zeros(rank - right.shape[0], right.shape[1])], dim=0)
    energy = float((delta.detach().float() ** 2).sum())
    with torch.no_grad():
        if "default" in module.lora_embedding_A:
            # peft embeddings: delta_E [vocab, dim] = A.T @ B.T (A [r, vocab], B [dim, r])
            module.lora_embedding_A["default"].copy_(left.T)
            module.lora_embedding_B["default"].copy_(right.T)
        else:
            # peft linear layers: delta_W [out, in] = B @ A (B [out, r], A [r, in])
            module.lora_B["default"].weight.copy_(left)
            module.lora_A["default"].weight.copy_(right)
    return kept * energy, energy


def compress_recognizer(source: str | Path, output: str | Path, rank: int, dtype: torch.dtype = torch.float16
                        ) -> CompressionReport:
    """Write a LoRA checkpoint of rank `rank` that approximates the fully fine-tuned one at `source`."""
    from peft.tuners.lora import LoraLayer

    from .model import Recognizer

    full = Recognizer.from_pretrained(source)
    if full.uses_lora:
        raise ValueError(f"{source} is already a LoRA checkpoint")
    base, tokenizer = load_encoder(full.config.encoder)
    config = full.config.model_copy(update={"lora_rank": rank, "lora_alpha": rank, "lora_dropout": 0.0,
                                            "lora_targets": lora_targets(base)})
    base_weights = {name: p.detach().clone() for name, p in base.named_parameters()}
    tuned = dict(full.encoder.named_parameters())
    encoder = apply_lora(base, config)
    kept = energy = 0.0
    covered: set[str] = set()
    for name, module in encoder.base_model.model.named_modules():
        if isinstance(module, LoraLayer):
            key = f"{name}.weight"
            k, e = _set_factors(module, tuned[key] - base_weights[key], rank)
            kept, energy = kept + k, energy + e
            covered.add(key)
    deltas = {name: tuned[name].detach().contiguous() for name in base_weights
              if name not in covered and not torch.equal(tuned[name], base_weights[name])}
    model = Recognizer(config, full.schema, encoder, tokenizer)
    model.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("encoder.")},
                          strict=False)
    output = Path(output)
    save_recognizer(model, output, adapter_dtype=dtype)
    save_file(deltas, str(output / ENCODER_DELTAS_FILE))
    size = sum(p.stat().st_size for p in output.iterdir() if p.is_file()) / 2 ** 20
    return CompressionReport(rank, len(covered), kept / energy if energy else 1.0, len(deltas), size)
