"""Tokenise raw post text the way the benchmark tweets are tokenised, keeping each token's characters.

The benchmark text splits `@`, `#`, `_`, `:` and punctuation off words, writes `&amp;` as the two
tokens `&amp` `;`, splits apostrophes (`We ' re`), and keeps hyphenated words whole (`zero-pain`).
A regular expression does this; no general-purpose tokenizer (NLTK, spaCy) reproduces these quirks.
The models are trained on these tokens; `tokenize_with_offsets` also says where each token lies in
the raw string, so an entity found on tokens maps back to the user's characters (`entity_char_span`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(
    r"https?://\S+|www\.\S+"  # a URL stays one token
    r"|&(?:amp|gt|lt|quot|apos)(?![a-z])"  # an HTML entity's name; its ';' is the next token
    r"|\b[wW]/(?=\s|$)"  # "w/" (with), written as one token in the benchmark
    r"|[^\W_]+(?:-[^\W_]+)*"  # a word, internal hyphens kept
    r"|\S",  # any other character on its own (punctuation, @, #, _, emoji)
)

CharSpan = tuple[int, int]  # [start, end) in characters of a string

# A mention or hashtag sign glued to the entity's first token belongs to the name the user wrote.
_SIGILS = "@#"


def tokenize_tweet(text: str) -> list[str]:
    """Split raw text into benchmark-style tokens.

    >>> tokenize_tweet("RT @Ted_Cruz: We're #1 &amp; zero-pain!")
    ['RT', '@', 'Ted', '_', 'Cruz', ':', 'We', "'", 're', '#', '1', '&amp', ';', 'zero-pain', '!']
    """
    return _TOKEN.findall(text)


def tokenize_with_offsets(text: str) -> tuple[list[str], list[CharSpan]]:
    """The tokens of `tokenize_tweet` and, for each, its [start, end) characters: `text[s:e] == token`.

    >>> tokenize_with_offsets("Disney+ rocks")
    (['Disney', '+', 'rocks'], [(0, 6), (6, 7), (8, 13)])
    """
    tokens, spans = [], []
    for match in _TOKEN.finditer(text):
        tokens.append(match.group())
        spans.append(match.span())
    return tokens, spans


def joined_spans(tokens: Sequence[str]) -> list[CharSpan]:
    """Each token's characters in `" ".join(tokens)`: how offsets read for posts given as tokens."""
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return spans


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def entity_char_span(text: str, spans: Sequence[CharSpan], start: int, end: int) -> CharSpan:
    """The characters of `text` an entity on tokens [start, end) covers, as a reader of `text` sees it.

    The slice runs from the first token's first character to the last token's last one, so whatever
    was glued between them comes along (`Ted _ Cruz` in "@Ted_Cruz" is "Ted_Cruz"). Two signs glued to
    the outside of the name are part of it too: a `@` or `#` right before the first token, when it
    starts a word (a mention or hashtag: "@Ted_Cruz", "#Texas"), and a run of `+` right after the
    last token, when no word character follows ("Disney+", "C++"; not the `+` of "A+B")."""
    if not 0 <= start < end <= len(spans):
        raise ValueError(f"token span [{start}, {end}) is outside the post's {len(spans)} tokens")
    first, last = spans[start][0], spans[end - 1][1]
    if first > 0 and text[first - 1] in _SIGILS and (first == 1 or not _word_char(text[first - 2])):
        first -= 1
    plus_end = last
    while plus_end < len(text) and text[plus_end] == "+":
        plus_end += 1
    if plus_end > last and (plus_end == len(text) or not _word_char(text[plus_end])):
        last = plus_end
    return first, last
