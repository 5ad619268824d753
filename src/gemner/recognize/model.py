"""The knowledge-aware multi-granularity recogniser (paper §3.2, Fig. 2a).

encoder -> word representations (first subword of each text word) -> two independent linear paths:
coarse BIO tags and fine BIO tags (MGP), the fine logits mixed with the coarse ones through M (MGA,
eq. 9), each path decoded by its own CRF (eq. 5) and trained with eq. 8. With a flat schema (GMNER)
or `mgp=False` only the main (fine) path exists. `head="softmax"` replaces the CRFs by per-word
cross-entropy and argmax (the baseline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..data.schema import LabelSchema
from .config import RecognizerConfig
from .crf import CRF
from .distill import soft_target_loss
from .encoding import WORD_SHAPES, Batch
from .equations import (
    bio_transition_matrix,
    initial_mga_matrix,
    multi_granularity_augmentation,
    multi_granularity_loss,
)


@dataclass
class Emissions:
    fine: torch.Tensor  # [B, W, T_f], after MGA when it is on
    coarse: torch.Tensor | None  # [B, W, T_c]


class Recognizer(nn.Module):
    """Encoder + coarse/fine paths + CRFs + M. Build with `Recognizer.build` or `from_pretrained`."""

    def __init__(self, config: RecognizerConfig, schema: LabelSchema, encoder: nn.Module, tokenizer,
                 mga_init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.schema = schema
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.encoder_autocast = config.bf16  # off once `inference.prepare_for_inference` set the encoder's dtype
        self.prepared_for_inference = False  # adapters merged: predictions only, no saving
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.shape_embedding = (nn.Embedding(len(WORD_SHAPES), config.word_shape_dim)
                                if config.word_shape_dim > 0 else None)
        hidden += config.word_shape_dim
        self.fine_head = nn.Linear(hidden, len(schema.tags))
        self.coarse_head = nn.Linear(hidden, len(schema.coarse_tags)) if self.multi_granularity else None
        self.fine_crf = CRF(len(schema.tags)) if config.head == "crf" else None
        self.coarse_crf = CRF(len(schema.coarse_tags)) if self.multi_granularity and config.head == "crf" else None
        if self.uses_mga:
            init = mga_init if mga_init is not None else initial_mga_matrix(schema, (), config.mga_norm)
            self.mga_matrix: nn.Parameter | None = nn.Parameter(init.clone().float())
        else:
            self.mga_matrix = None

    # --- structure -------------------------------------------------------------------------------
    @property
    def multi_granularity(self) -> bool:
        """Two paths (MGP) only with a hierarchical schema and `mgp` on."""
        return self.schema.hierarchical and self.config.mgp

    @property
    def uses_mga(self) -> bool:
        return self.multi_granularity and self.config.mga

    @property
    def uses_lora(self) -> bool:
        return self.config.lora_rank > 0

    def head_parameters(self) -> Iterable[nn.Parameter]:
        """Everything but the encoder: heads, CRFs, M (they may get their own learning rate)."""
        return (p for name, p in self.named_parameters() if not name.startswith("encoder."))

    def encoder_parameters(self) -> Iterable[nn.Parameter]:
        return (p for name, p in self.named_parameters() if name.startswith("encoder.") and p.requires_grad)

    # --- forward ---------------------------------------------------------------------------------
    def encode(self, batch: Batch) -> torch.Tensor:
        """Last hidden states [B, S, H] in fp32 (bf16 autocast inside when configured for training)."""
        kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if batch.token_type_ids is not None:
            kwargs["token_type_ids"] = batch.token_type_ids
        device_type = batch.input_ids.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.encoder_autocast):
            hidden = self.encoder(**kwargs).last_hidden_state
        return hidden.float()

    def word_representations(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        """First-subword representation of every text word, [B, W, H] (+ its shape embedding)."""
        index = batch.word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        reps = hidden.gather(1, index)
        return self.with_shapes(reps, batch.word_shapes)

    def with_shapes(self, reps: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
        """`reps` [..., H] joined with the shape embedding of `shapes` [...] (a no-op when off)."""
        if self.shape_embedding is None:
            return reps
        return torch.cat([reps, self.shape_embedding(shapes)], dim=-1)

    def tag_logits(self, reps: torch.Tensor) -> Emissions:
        """Both paths' BIO-tag logits for representations [..., H]; MGA (eq. 9) mixed into the fine."""
        fine = self.fine_head(reps)
        coarse = self.coarse_head(reps) if self.coarse_head is not None else None
        if self.mga_matrix is not None and coarse is not None:
            fine = multi_granularity_augmentation(
                coarse, fine, bio_transition_matrix(self.mga_matrix), self.config.beta)
        return Emissions(fine, coarse)

    def emissions(self, batch: Batch) -> tuple[Emissions, torch.Tensor]:
        hidden = self.encode(batch)
        reps = self.dropout(self.word_representations(hidden, batch))
        return self.tag_logits(reps), hidden

    def loss(self, batch: Batch) -> torch.Tensor:
        """Eq. 8 (eqs. 6-7 per path with CRFs; per-word cross-entropy with the softmax head)."""
        if batch.fine_tags is None:
            raise ValueError("loss needs gold tags in the batch")
        emissions, _ = self.emissions(batch)
        fine = self._path_loss(emissions.fine, batch.fine_tags, batch.word_mask, self.fine_crf)
        if batch.soft_fine is not None:  # distillation (`distill`): the teachers' distributions as well
            weight = self.config.distill_weight
            soft = soft_target_loss(emissions.fine, batch.soft_fine, self.fine_crf, batch.word_mask)
            fine = (1 - weight) * fine + weight * soft
        if emissions.coarse is None:
            return fine
        if batch.coarse_tags is None:
            raise ValueError("a multi-granularity model needs coarse gold tags")
        coarse = self._path_loss(emissions.coarse, batch.coarse_tags, batch.word_mask, self.coarse_crf)
        return multi_granularity_loss(coarse, fine, self.config.alpha)

    @staticmethod
    def _path_loss(logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, crf: CRF | None) -> torch.Tensor:
        if crf is not None:
            return crf.nll(logits, tags, mask)
        return F.cross_entropy(logits[mask], tags[mask])

    @torch.no_grad()
    def decode(self, batch: Batch) -> tuple[list[list[int]], torch.Tensor]:
        """Fine tag ids per post (Viterbi or argmax) and the hidden states (for eq. 10 pooling)."""
        emissions, hidden = self.emissions(batch)
        if self.fine_crf is not None:
            return self.fine_crf.decode(emissions.fine, batch.word_mask), hidden
        lengths = batch.word_mask.long().sum(1).tolist()
        best = emissions.fine.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, lengths, strict=True)], hidden

    # --- construction and checkpoints (see checkpoint.py) -----------------------------------------
    @classmethod
    def build(cls, config: RecognizerConfig, schema: LabelSchema,
              train_pairs: Iterable[tuple[str, str]] = (), *, trust_remote_code: bool = False) -> Recognizer:
        """A fresh model: pretrained encoder by name, new heads, M from training co-occurrences.
        `trust_remote_code`: let the encoder's own Python code run (only when the user asked)."""
        from .checkpoint import build_model

        return build_model(cls, config, schema, train_pairs, trust_remote_code=trust_remote_code)

    @classmethod
    def from_pretrained(cls, path, device: str | torch.device = "cpu", *, trust_remote_code: bool = False
                        ) -> Recognizer:
        from .checkpoint import load_recognizer

        return load_recognizer(cls, path, device, trust_remote_code=trust_remote_code)

    def save_pretrained(self, path) -> None:
        from .checkpoint import save_recognizer

        save_recognizer(self, path)


def training_pairs(posts) -> list[tuple[str, str]]:
    """(coarse, fine) label pairs of every training entity: the co-occurrence counts behind M."""
    return [(e.coarse, e.type) for post in posts for e in post.entities]

