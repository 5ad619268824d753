"""`text <SEP> knowledge` inputs: first-subword rule, truncation order, batching."""

from __future__ import annotations

import pytest

from gemner.recognize.encoding import batch_order, collate, encode_post, encode_posts, load_tokenizer
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return load_tokenizer(encoder_dir)


def _tokens(tokenizer, item):
    return tokenizer.convert_ids_to_tokens(item.input_ids)


def test_pair_encoding_and_first_subwords(tokenizer):
    item = encode_post(tokenizer, ["Messi", "games", "\u200b", "paris"], "knowledge about sports", 64)
    tokens = _tokens(tokenizer, item)
    assert tokens == ["[CLS]", "messi", "game", "##s", "[UNK]", "paris", "[SEP]",
                      "knowledge", "about", "sports", "[SEP]"]
    # one first subword per word, even for the zero-subword word (encoded as [UNK])
    assert item.word_starts == [1, 2, 4, 5] and item.word_ends == [2, 4, 5, 6]
    assert item.token_type_ids == [0] * 7 + [1] * 4
    assert item.n_words == 4


def test_no_knowledge_is_a_single_sequence(tokenizer):
    item = encode_post(tokenizer, ["obama", "says"], None, 64)
    assert _tokens(tokenizer, item) == ["[CLS]", "obama", "says", "[SEP]"]
    assert encode_post(tokenizer, ["obama", "says"], "", 64).input_ids == item.input_ids


def test_knowledge_is_truncated_before_the_text(tokenizer):
    item = encode_post(tokenizer, ["obama", "games", "paris"], "knowledge is about politics and sports", 10)
    tokens = _tokens(tokenizer, item)
    assert len(tokens) == 10 and item.n_words == 3
    assert tokens[:6] == ["[CLS]", "obama", "game", "##s", "paris", "[SEP]"]
    assert tokens[6:] == ["knowledge", "is", "about", "[SEP]"]


def test_text_is_cut_only_when_it_alone_does_not_fit(tokenizer):
    words = ["obama", "games", "paris", "france", "japan"]
    item = encode_post(tokenizer, words, "knowledge about sports", 6)
    # budget 6 - 2 specials = 4 subwords: no room for knowledge, the text keeps 3 words
    assert _tokens(tokenizer, item) == ["[CLS]", "obama", "game", "##s", "paris", "[SEP]"]
    assert item.n_words == 3


def test_gold_tags_follow_words_and_truncation(tokenizer):
    posts = synthetic_posts(20, seed=3)
    fine = {t: i for i, t in enumerate(TINY_SCHEMA.tags)}
    coarse = {t: i for i, t in enumerate(TINY_SCHEMA.coarse_tags)}
    items = encode_posts(tokenizer, posts, {"p0": "knowledge about sports"}, 64, fine, coarse)
    for item in items:
        post = posts[item.index]
        assert len(item.fine_tags) == len(item.coarse_tags) == item.n_words == len(post.tokens)
        for entity in post.entities:
            assert TINY_SCHEMA.tags[item.fine_tags[entity.start]] == f"B-{entity.type}"
            assert TINY_SCHEMA.coarse_tags[item.coarse_tags[entity.start]] == f"B-{entity.coarse}"
    batch = collate(items[:5], pad_id=0)
    width = max(it.n_words for it in items[:5])
    assert batch.word_index.shape == batch.word_mask.shape == batch.fine_tags.shape == (5, width)
    assert batch.word_mask.sum().item() == sum(it.n_words for it in items[:5])
    assert batch.input_ids.shape == batch.attention_mask.shape


@pytest.mark.parametrize("buckets", [False, True])
def test_batch_order_is_a_reproducible_partition(buckets):
    lengths = [(i * 7) % 23 for i in range(100)]
    first = batch_order(100, lengths, 8, seed=5, length_buckets=buckets)
    assert first == batch_order(100, lengths, 8, seed=5, length_buckets=buckets)
    assert first != batch_order(100, lengths, 8, seed=6, length_buckets=buckets)
    assert sorted(i for b in first for i in b) == list(range(100))
    if buckets:  # batches hold similar lengths: much less padding than random batches
        spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first)
        plain = batch_order(100, lengths, 8, seed=5, length_buckets=False)
        assert spread < 0.5 * sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)
