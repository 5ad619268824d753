"""Free-generation mode: let the model write its answer, then map the text onto a candidate.

Mapping, first rule that applies: exact match; match after normalising (case, quotes, surrounding
punctuation, spaces/hyphens as underscores); the candidate the text contains (the longest, when
several); else the candidate closest by string similarity (difflib ratio). The mode is for comparison
with scoring: its answer is also always a candidate, but the model was never forced to pick one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import torch

_EDGE_JUNK = " \t\r\n\"'`.,;:!?[](){}<>"


def normalise_label(text: str) -> str:
    text = text.strip().strip(_EDGE_JUNK).lower()
    return re.sub(r"[\s\-]+", "_", text)


def map_to_candidate(text: str, candidates: Sequence[str]) -> tuple[str, str]:
    """(candidate, rule) for a generated answer; rule is exact | normalised | contained | similarity."""
    if not candidates:
        raise ValueError("no candidates to map onto")
    stripped = text.strip()
    if stripped in candidates:
        return stripped, "exact"
    first_line = stripped.splitlines()[0] if stripped else ""
    wanted = normalise_label(first_line)
    for candidate in candidates:
        if normalise_label(candidate) == wanted:
            return candidate, "normalised"
    flat = normalise_label(stripped)
    contained = [c for c in candidates if normalise_label(c) and normalise_label(c) in flat]
    if contained:
        return max(contained, key=len), "contained"
    ratios = [difflib.SequenceMatcher(None, wanted, normalise_label(c)).ratio() for c in candidates]
    return candidates[max(range(len(candidates)), key=ratios.__getitem__)], "similarity"


@torch.no_grad()
def generate_answer(model: Any, tokenizer: Any, prompt: dict[str, torch.Tensor], end_id: int,
                    max_new_tokens: int = 16) -> str:
    """Greedy decoding from the prompt until the end-of-turn token."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    out = inner.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=end_id,
                         pad_token_id=pad)
    new_tokens = out[0, prompt["input_ids"].shape[1]:]
    return tokenizer.decode(new_tokens, skip_special_tokens=True)
