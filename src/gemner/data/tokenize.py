"""Tokenise raw post text the way the benchmark tweets are tokenised.

The benchmark text splits `@`, `#`, `_`, `:` and punctuation off words, writes `&amp;` as the two
tokens `&amp` `;`, splits apostrophes (`We ' re`), and keeps hyphenated words whole (`zero-pain`).
A regular expression does this; no general-purpose tokenizer (NLTK, spaCy) reproduces these quirks.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"https?://\S+|www\.\S+"  # a URL stays one token
    r"|&(?:amp|gt|lt|quot|apos)(?![a-z])"  # an HTML entity's name; its ';' is the next token
    r"|\b[wW]/(?=\s|$)"  # "w/" (with), written as one token in the benchmark
    r"|[^\W_]+(?:-[^\W_]+)*"  # a word, internal hyphens kept
    r"|\S",  # any other character on its own (punctuation, @, #, _, emoji)
)


def tokenize_tweet(text: str) -> list[str]:
    """Split raw text into benchmark-style tokens.

    >>> tokenize_tweet("RT @Ted_Cruz: We're #1 &amp; zero-pain!")
    ['RT', '@', 'Ted', '_', 'Cruz', ':', 'We', "'", 're', '#', '1', '&amp', ';', 'zero-pain', '!']
    """
    return _TOKEN.findall(text)
