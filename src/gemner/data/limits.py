"""How much of a post each model sees: every model input is cut to its limit before the model sees it,
so time and memory stay flat for any post length (a tweet has at most 280 characters; a post of
200,000 characters costs what a post at the limits costs).

* recogniser: `max_length` words of text and of knowledge (then subwords, `recognize.encoding`),
  each word at most 100 characters;
* reranker prompt: `RERANK_CONTEXT_WORDS` words around the entity, the entity itself at most
  `RERANK_ENTITY_WORDS` words, the caption at most `CAPTION_CHARS` characters;
* knowledge prompt: the tweet at most `KNOWLEDGE_TWEET_CHARS` characters, the caption `CAPTION_CHARS`;
* ITM text (grounding): the entity and category at most `ITM_TEXT_CHARS` characters each (the ITM
  tokenizer keeps 35 subwords).

A post over `LONG_POST_WORDS` words or `LONG_POST_CHARS` characters, or one the recogniser cuts, is
reported once (by id), by the first model that reads it (the recogniser; the reranker for `gemner rerank`).
"""

from __future__ import annotations

from collections.abc import Sequence

RERANK_CONTEXT_WORDS = 128
RERANK_ENTITY_WORDS = 32
CAPTION_CHARS = 500
KNOWLEDGE_TWEET_CHARS = 2000
ITM_TEXT_CHARS = 200
LONG_POST_WORDS = 256
LONG_POST_CHARS = 2000


def clip(text: str, limit: int) -> str:
    """The first `limit` characters of `text`."""
    return text if len(text) <= limit else text[:limit]


def is_long(tokens: Sequence[str]) -> bool:
    """Whether some model input of this post is cut (the one report per post)."""
    if len(tokens) > LONG_POST_WORDS:
        return True
    total = 0
    for token in tokens:
        total += len(token) + 1
        if total > LONG_POST_CHARS:
            return True
    return False


def long_post_note(tokens: Sequence[str], recogniser_words: int | None = None) -> str:
    """The one note about a long post (`recogniser_words`: the words the recogniser kept, when it cut)."""
    note = (f"long post ({len(tokens)} words): model inputs cut to their limits (reranker {RERANK_CONTEXT_WORDS} "
            f"words around each entity, knowledge prompt {KNOWLEDGE_TWEET_CHARS} characters")
    if recogniser_words is not None:
        note += f"; the recogniser reads the first {recogniser_words} words, the others are predicted O"
    return note + ")"


def context_window(n_tokens: int, start: int, end: int, width: int = RERANK_CONTEXT_WORDS,
                   entity_width: int = RERANK_ENTITY_WORDS) -> tuple[int, int, int]:
    """(window start, entity end, window end): at most `width` tokens around [start, end), the entity
    cut to `entity_width` tokens; the window is centred on the entity where the post allows."""
    end = min(end, start + entity_width)
    room = max(0, width - (end - start))
    left = max(0, start - room // 2)
    right = min(n_tokens, end + room - (start - left))
    left = max(0, min(left, right - width))
    return left, end, right
