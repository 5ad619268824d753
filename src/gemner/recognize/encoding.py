"""Posts -> encoder inputs: `text <SEP> knowledge` (eq. 3) with the first-subword rule.

* The tokenizer's own pair encoding builds the input (`[CLS] text [SEP] knowledge [SEP]` for BERT,
  `<s> text </s></s> knowledge </s>` for RoBERTa); without knowledge the text is encoded alone.
* Labels and emissions live on text *words*: each word is represented by its first subword, and the
  CRF runs over the text words only. Knowledge subwords are context, never labelled.
* Budget `max_length` subwords: the knowledge is truncated first; the text is cut (from its end)
  only when the text alone does not fit, and the cut words are then predicted `O` (reported).
* Memory stays flat for any post length: before tokenising, the text is cut to `max_length` words
  (every word costs at least one subword), each word to `MAX_WORD_CHARS` characters (its first
  subword, which carries its label, is unchanged) and the knowledge to `max_length` words.
* A word the tokenizer turns into no subword at all (e.g. a lone zero-width space) is encoded as the
  unknown token so that every word has a first subword.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.types import Post
from ..hub import Pretrained, resolve

MAX_WORD_CHARS = 100
WORD_SHAPES = ("lower", "upper", "title", "mixed", "digit", "symbol")


def word_shape(word: str) -> int:
    """Index in WORD_SHAPES of the word's letter case / character class."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return WORD_SHAPES.index("digit") if any(c.isdigit() for c in word) else WORD_SHAPES.index("symbol")
    if all(c.isupper() for c in letters):
        return WORD_SHAPES.index("upper") if len(letters) > 1 else WORD_SHAPES.index("title")
    if letters[0].isupper():
        return WORD_SHAPES.index("title") if all(c.islower() for c in letters[1:]) else WORD_SHAPES.index("mixed")
    return WORD_SHAPES.index("lower") if all(c.islower() for c in letters) else WORD_SHAPES.index("mixed")


@dataclass(slots=True)
class EncodedPost:
    """One post ready for the encoder. `word_starts[i]`/`word_ends[i]`: subword span of text word i."""

    index: int  # position of the post in the list it came from
    input_ids: list[int]
    token_type_ids: list[int] | None
    word_starts: list[int]
    word_ends: list[int]
    n_words: int  # text words kept (< len(post.tokens) only when the text alone is too long)
    word_shapes: list[int]  # WORD_SHAPES index of each kept word
    fine_tags: list[int] | None = None
    coarse_tags: list[int] | None = None
    soft_fine: torch.Tensor | None = None  # [n_words, fine tags]: the teachers' distribution (`distill`)


def load_tokenizer(source: str | Pretrained, *, trust_remote_code: bool = False):
    """A fast tokenizer that accepts pre-split words (byte-level BPE ones need add_prefix_space);
    `source` is a gemner model name/path or an already resolved `Pretrained`."""
    from transformers import AutoTokenizer

    pretrained = source if isinstance(source, Pretrained) else resolve(source, trust_remote_code=trust_remote_code)
    tokenizer = pretrained.load(AutoTokenizer)
    try:
        tokenizer(["a", "b"], is_split_into_words=True)
    except (ValueError, TypeError, AssertionError):
        tokenizer = pretrained.load(AutoTokenizer, add_prefix_space=True)
    if not tokenizer.is_fast:
        raise ValueError(f"the recogniser needs a fast tokenizer (word alignment); {pretrained.name} has none")
    return tokenizer


def encode_post(tokenizer, words: Sequence[str], knowledge: str | None, max_length: int,
                index: int = 0) -> EncodedPost:
    """Encode one post (see the module docstring for the rules)."""
    words = [w[:MAX_WORD_CHARS] for w in words[:max_length]]
    shapes = [word_shape(w) for w in words]
    alone = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    present = set(alone.word_ids())
    words = [w if i in present else tokenizer.unk_token for i, w in enumerate(words)]
    counts = [0] * len(words)
    for w in tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids():
        counts[w] += 1
    knowledge_words = [w[:MAX_WORD_CHARS] for w in knowledge.split(maxsplit=max_length)[:max_length]] \
        if knowledge else []
    specials = tokenizer.num_special_tokens_to_add(pair=bool(knowledge_words))
    budget = max_length - specials - (1 if knowledge_words else 0)  # keep >= 1 knowledge subword
    kept, used = 0, 0
    while kept < len(words) and used + counts[kept] <= budget:
        used += counts[kept]
        kept += 1
    if kept < len(words) and knowledge_words:  # the text alone does not fit: no room for knowledge
        return encode_post(tokenizer, words, None, max_length, index)
    text = words[:max(kept, 1)]  # a single word longer than the budget is cut by the tokenizer
    if knowledge_words:
        enc = tokenizer(text, knowledge_words, is_split_into_words=True, truncation="only_second",
                        max_length=max_length)
    else:
        enc = tokenizer(text, is_split_into_words=True, truncation=True, max_length=max_length)
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for position, (w, s) in enumerate(zip(enc.word_ids(), enc.sequence_ids(), strict=True)):
        if s == 0 and w is not None:
            starts.setdefault(w, position)
            ends[w] = position + 1
    n_words = len(starts)
    return EncodedPost(
        index=index,
        input_ids=list(enc["input_ids"]),
        token_type_ids=list(enc["token_type_ids"]) if "token_type_ids" in enc else None,
        word_starts=[starts[i] for i in range(n_words)],
        word_ends=[ends[i] for i in range(n_words)],
        n_words=n_words,
        word_shapes=shapes[:n_words],
    )


def encode_posts(tokenizer, posts: Sequence[Post], knowledge: dict[str, str] | None, max_length: int,
                 tag_ids: dict[str, int] | None = None,
                 coarse_tag_ids: dict[str, int] | None = None) -> list[EncodedPost]:
    """Encode posts (with gold tag ids when `tag_ids` is given). Empty posts are skipped."""
    from ..data.bio import spans_to_tags

    encoded = []
    for i, post in enumerate(posts):
        if not post.tokens:
            continue
        item = encode_post(tokenizer, post.tokens, (knowledge or {}).get(post.id), max_length, i)
        if tag_ids is not None:
            spans = [(e.start, e.end, e.type) for e in post.entities]
            item.fine_tags = [tag_ids[t] for t in spans_to_tags(len(post.tokens), spans)][: item.n_words]
            if coarse_tag_ids is not None:
                spans = [(e.start, e.end, e.coarse) for e in post.entities]
                tags = spans_to_tags(len(post.tokens), spans)
                item.coarse_tags = [coarse_tag_ids[t] for t in tags][: item.n_words]
        encoded.append(item)
    return encoded


@dataclass
class Batch:
    """Padded tensors of a batch. `word_index` [B, W]: first subword of each text word."""

    items: list[EncodedPost]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    word_index: torch.Tensor
    word_mask: torch.Tensor
    word_shapes: torch.Tensor
    fine_tags: torch.Tensor | None
    coarse_tags: torch.Tensor | None
    soft_fine: torch.Tensor | None = None  # [B, W, fine tags]; rows of zeros: no target

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on `device` (a no-op on the CPU)."""
        for name in ("input_ids", "attention_mask", "token_type_ids", "word_index", "word_mask",
                     "word_shapes", "fine_tags", "coarse_tags", "soft_fine"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def collate(items: list[EncodedPost], pad_id: int) -> Batch:
    """Dynamic padding to the longest post of the batch."""
    has_types = items[0].token_type_ids is not None
    return Batch(
        items=items,
        input_ids=_pad([it.input_ids for it in items], pad_id),
        attention_mask=_pad([[1] * len(it.input_ids) for it in items], 0),
        token_type_ids=_pad([it.token_type_ids for it in items], 0) if has_types else None,  # type: ignore[misc]
        word_index=_pad([it.word_starts for it in items], 0),
        word_mask=_pad([[1] * it.n_words for it in items], 0).bool(),
        word_shapes=_pad([it.word_shapes for it in items], 0),
        fine_tags=_pad([it.fine_tags for it in items], 0) if items[0].fine_tags is not None else None,  # type: ignore[misc]
        coarse_tags=(_pad([it.coarse_tags for it in items], 0)  # type: ignore[misc]
                     if items[0].coarse_tags is not None else None),
        soft_fine=_pad_rows([it.soft_fine for it in items]) if items[0].soft_fine is not None else None,  # type: ignore[misc]
    )


def _pad_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """[n_i, T] tensors stacked into [B, max n_i, T], padded with rows of zeros."""
    padded = torch.zeros(len(rows), max(len(r) for r in rows), rows[0].shape[1], dtype=rows[0].dtype)
    for i, row in enumerate(rows):
        padded[i, :len(row)] = row
    return padded


def batch_order(n_items: int, lengths: Sequence[int], batch_size: int, seed: int,
                length_buckets: bool) -> list[list[int]]:
    """Shuffled batches of item indices, reproducible from `seed` alone (resume depends on it).

    With `length_buckets`, items are shuffled, cut into pools of 50 batches, sorted by length inside
    each pool and split into batches, whose order is shuffled again: little padding, still random.
    """
    rng = random.Random(seed)
    order = list(range(n_items))
    rng.shuffle(order)
    if length_buckets:
        pool = batch_size * 50
        order = [i for s in range(0, n_items, pool) for i in sorted(order[s:s + pool], key=lambda j: lengths[j])]
    batches = [order[s:s + batch_size] for s in range(0, n_items, batch_size)]
    if length_buckets:
        rng.shuffle(batches)
    return batches
