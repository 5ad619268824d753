"""Tiny offline encoders and a synthetic tagging task, for tests and benchmarks (no download).

`make_tiny_encoder(folder, words)` writes a randomly initialised BERT (config + weights) and a
WordPiece tokenizer whose vocabulary is `words` plus a few subword pieces, so every code path
(subword splitting, pair encoding, [UNK]) is exercised. The folder is a valid `encoder` name.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from ..data.schema import LabelSchema
from ..data.types import Entity, Post

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A two-level schema small enough to learn in seconds: 2 coarse, 4 fine types.
TINY_TREE = {"person": ("athlete", "politician"), "place": ("city", "country")}
TINY_SCHEMA = LabelSchema(
    name="tiny",
    labels=tuple(f for fs in TINY_TREE.values() for f in fs),
    coarse_labels=tuple(TINY_TREE),
    coarse_of={f: c for c, fs in TINY_TREE.items() for f in fs},
)
# Each entity name determines its fine type; two are multi-word so I- tags are needed.
TINY_ENTITIES: dict[str, tuple[str, ...]] = {
    "athlete": ("messi", "serena williams"), "politician": ("obama", "angela merkel"),
    "city": ("paris", "new york"), "country": ("france", "japan"),
}
FILLER = ("the", "a", "today", "great", "game", "visit", "with", "and", "love", "news", "rt", "says")
TINY_WORDS = sorted({w for names in TINY_ENTITIES.values() for n in names for w in n.split()} | set(FILLER)
                    | {"knowledge", "is", "about", "sports", "politics"})


def make_tiny_encoder(folder: str | Path, words: Sequence[str] = TINY_WORDS, hidden: int = 32,
                      layers: int = 2, heads: int = 2, seed: int = 0, architecture: str = "bert") -> Path:
    """Write a tiny random encoder + tokenizer into `folder`; returns the folder. `architecture`: bert (the
    lite encoder's, all-MiniLM-L6-v2) or mpnet (the base encoder's, all-mpnet-base-v2)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer, MPNetConfig, MPNetModel, MPNetTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = ["##s", "##ing", "##er", *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
    sizes = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                 intermediate_size=2 * hidden, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    if architecture == "mpnet":
        special = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]  # all-mpnet-base-v2's, in its id order
        vocab = [*special, *dict.fromkeys(w.lower() for w in words), *pieces]
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        MPNetTokenizer(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
        config = MPNetConfig(vocab_size=len(vocab), max_position_embeddings=130, pad_token_id=1, **sizes)
        MPNetModel(config).save_pretrained(folder)
        return folder
    if architecture != "bert":
        raise ValueError(f"unknown tiny encoder architecture {architecture!r}: bert | mpnet")
    vocab = [*SPECIAL, *dict.fromkeys(w.lower() for w in words), *pieces]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    BertModel(BertConfig(vocab_size=len(vocab), max_position_embeddings=128, **sizes)).save_pretrained(folder)
    return folder


def synthetic_posts(n: int, seed: int = 0, prefix: str = "p") -> list[Post]:
    """Posts of filler words with 0-2 entities whose names fix their fine type."""
    rng = random.Random(seed)
    posts = []
    for i in range(n):
        tokens: list[str] = []
        entities = []
        for _ in range(rng.randint(0, 2)):
            tokens += rng.sample(FILLER, rng.randint(1, 3))
            fine = rng.choice(TINY_SCHEMA.labels)
            name = rng.choice(TINY_ENTITIES[fine]).split()
            if rng.random() < 0.5:
                name = [w.capitalize() for w in name]
            entities.append(Entity(len(tokens), len(tokens) + len(name), " ".join(name), fine,
                                   TINY_SCHEMA.coarse_of[fine]))
            tokens += name
        tokens += rng.sample(FILLER, rng.randint(1, 3))
        posts.append(Post(f"{prefix}{i}", tokens, entities))
    return posts
