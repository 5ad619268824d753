"""A recogniser made ready for prediction only: adapters folded in, one dtype, no autocast.

A checkpoint as loaded is ready to train on: a compressed (LoRA) checkpoint runs three matmuls per
adapted layer (W x, then B (A x)) and a checkpoint trained with `bf16` runs its encoder under bf16
autocast, which on a CPU re-casts every weight at every call. `prepare_for_inference` removes both:

* peft's `merge_and_unload` folds each adapter into its layer (W + B A, computed once in fp32), so
  every layer is one plain matmul;
* the encoder is cast once to `dtype`: `float32`, `bfloat16`, or `auto` (the default): bfloat16 where
  the hardware multiplies it natively (CPUs with avx512_bf16 / AMX, CUDA GPUs), else float32. Both give
  the same FMNERG test F1 to 0.1 (docs/benchmarks-speed.md). The heads, CRFs and M stay fp32;
* autocast is switched off and gradients are never recorded.

The folded weights equal the adapter sum up to float rounding (tests: the same entities on real
FMNERG posts). A prepared model cannot be saved (its adapters are gone): load the checkpoint again.
"""

from __future__ import annotations

from typing import Literal

import torch

InferenceDtype = Literal["auto", "float32", "bfloat16"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def native_bf16() -> bool:
    """Whether this machine multiplies bf16 natively (a CUDA GPU, or a CPU oneDNN runs bf16 on)."""
    if torch.cuda.is_available():
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str) -> str:
    """`auto`: bfloat16 where the hardware multiplies it natively (same FMNERG F1, faster), else float32."""
    if dtype == "auto":
        return "bfloat16" if native_bf16() else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"recogniser dtype {dtype!r}: choose one of auto, {', '.join(DTYPES)}")
    return dtype


def merge_adapters(model) -> None:
    """Fold the encoder's LoRA adapters into its weights (a no-op for a fully fine-tuned encoder)."""
    if hasattr(model.encoder, "merge_and_unload"):
        with torch.no_grad():
            model.encoder = model.encoder.merge_and_unload()


def prepare_for_inference(model, dtype: InferenceDtype = "auto"):
    """The same `model`, adapters merged, encoder in `dtype` (`resolve_dtype`), autocast off, eval mode,
    frozen."""
    dtype = resolve_dtype(dtype)
    merge_adapters(model)
    model.encoder.to(DTYPES[dtype])
    model.encoder_autocast = False  # the encoder runs in its own dtype now
    model.prepared_for_inference = True
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()
