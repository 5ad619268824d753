"""Predictions -> a spaCy `DocBin` (`.spacy`): one `Doc` per post, its text the post's text (see
`spans.py`), `doc.ents` the entities as character spans labelled with their type. Two-level labels
also fill `doc.spans["coarse"]`. `doc.user_data["gemner"]` keeps the post id, image and each entity's
box, so nothing of the predictions is lost. Only `spacy.blank("xx")` is used: no model is downloaded.

Read back with `DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from ..files import atomic_output
from ..issues import DataError, IssueLog
from .files import Counts
from .spans import PostText, post_text

_WORD = re.compile(r"\S+")


def import_spacy() -> Any:
    try:
        import spacy
    except ImportError:
        # no square brackets here: the command line prints errors as rich markup, which would eat "[interchange]"
        raise DataError("export --to spacy needs spaCy: pip install 'spacy>=3.7,<4' (gemner's interchange extra)"
                        ) from None
    return spacy


def doc_words(post: PostText, boundaries: Iterable[int]) -> list[str]:
    """Words tiling the text that break at every token and entity boundary, so every entity is a
    whole run of words (spaCy then needs no alignment guess)."""
    cuts = sorted({0, len(post.text), *boundaries, *(c for span in post.offsets for c in span)})
    words = []
    for start, end in pairwise(cuts):
        words += _WORD.findall(post.text[start:end])
    return words


def record_doc(nlp: Any, record: Mapping[str, Any], *, where: str, log: IssueLog, counts: Counts) -> Any:
    from spacy.tokens import Doc
    from spacy.util import get_words_and_spaces

    post = post_text(record)
    chars = [(post.entity_chars(e), e) for e in record.get("entities", [])]
    for span, entity in chars:
        if span is None:
            log.report(f"entity [{entity.get('start')}, {entity.get('end')}) lies outside the post",
                       "left out entity", path=where, post_id=record["id"])
    placed = [(span, e) for span, e in chars if span is not None]
    words, spaces = get_words_and_spaces(doc_words(post, (c for span, _ in placed for c in span)), post.text)
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    spans, coarse, kept = [], [], []
    taken: list[tuple[int, int]] = []
    for (start, end), entity in sorted(placed, key=lambda item: item[0]):
        found = {"start_char": start, "end_char": end, "type": entity["type"],
                 "coarse": entity.get("coarse") or entity["type"], "box": entity.get("box")}
        if any(start < e and s < end for s, e in taken):  # as in the CoNLL export: the earlier one stays
            log.report(f"entity characters [{start}, {end}) overlap another", "left out of doc.ents (kept in "
                       "user_data)", path=where, post_id=record["id"])
            kept.append(found)
            continue
        span = doc.char_span(start, end, label=entity["type"])
        if span is None:  # only when the span starts or ends inside whitespace
            log.report(f"entity characters [{start}, {end}) do not start and end on text", "left out entity",
                       path=where, post_id=record["id"])
            continue
        taken.append((start, end))
        spans.append(span)
        coarse.append(doc.char_span(start, end, label=entity.get("coarse") or entity["type"]))
        kept.append(found)
    doc.ents = spans
    doc.spans["coarse"] = coarse
    doc.user_data["gemner"] = {"id": record["id"], "image": record.get("image"), "raw_text": post.raw,
                               "entities": kept}
    counts.posts += 1
    counts.entities += len(doc.ents)
    counts.skipped_entities += len(record.get("entities", [])) - len(doc.ents)
    return doc


def write_docbin(records: Iterable[Mapping[str, Any]], output: str, *, where: str, log: IssueLog) -> Counts:
    """Write one `Doc` per predictions record into a `.spacy` file (held in memory until written)."""
    spacy = import_spacy()
    from spacy.tokens import DocBin

    nlp, counts = spacy.blank("xx"), Counts()
    docs = DocBin(store_user_data=True)
    for record in records:
        if not record.get("tokens"):
            log.report("record has no tokens", "left out post", path=where, post_id=record["id"])
            counts.skipped_posts += 1
            continue
        docs.add(record_doc(nlp, record, where=where, log=log, counts=counts))
    with atomic_output(output, binary=True) as handle:
        handle.write(docs.to_bytes())
    return counts
