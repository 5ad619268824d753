"""Predictions -> CoNLL in the benchmark layout: `IMGID:<id>`, one `token<TAB>tag` line per token (or
`token<TAB>coarse-tag<TAB>fine-tag` when the labels have two levels), a blank line after each post.
The file reads back with `gemner train recognizer --train` and `gemner import --from conll`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from ..issues import IssueLog
from ..schema import OUTSIDE
from .files import Counts

_WHITESPACE = re.compile(r"\s+")


def non_overlapping(entities: Sequence[Mapping[str, Any]], n_tokens: int, *, where: str, post_id: str,
                    log: IssueLog) -> list[Mapping[str, Any]]:
    """The entities in token order, leaving out (and reporting) each that overlaps an earlier one."""
    kept: list[Mapping[str, Any]] = []
    taken = [False] * n_tokens
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        span = range(entity["start"], min(entity["end"], n_tokens))
        if any(taken[i] for i in span):
            log.report(f"entity [{entity['start']}, {entity['end']}) overlaps another", "left out entity",
                       path=where, post_id=post_id)
            continue
        for i in span:
            taken[i] = True
        kept.append(entity)
    return kept


def bio_columns(n_tokens: int, entities: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(coarse tags, main tags) of non-overlapping entities."""
    coarse, main = [OUTSIDE] * n_tokens, [OUTSIDE] * n_tokens
    for entity in entities:
        for i in range(entity["start"], entity["end"]):
            prefix = "B" if i == entity["start"] else "I"
            main[i] = f"{prefix}-{entity['type']}"
            coarse[i] = f"{prefix}-{entity.get('coarse') or entity['type']}"
    return coarse, main


def has_two_levels(records: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any entity's coarse label differs from its type (then both columns are written)."""
    return any(e.get("coarse") not in (None, e["type"]) for r in records for e in r.get("entities", ()))


def write_conll_post(handle: IO[str], record: Mapping[str, Any], two_levels: bool, *, where: str,
                     log: IssueLog, counts: Counts) -> None:
    tokens = [str(t) for t in record.get("tokens") or ()]
    if not tokens:
        log.report("record has no tokens", "left out post", path=where, post_id=record["id"])
        counts.skipped_posts += 1
        return
    cleaned = [_WHITESPACE.sub("_", t) for t in tokens]
    if cleaned != tokens:
        log.report("a token holds whitespace, which CoNLL cannot", "written with '_' for it", path=where,
                   post_id=record["id"])
    entities = non_overlapping(record.get("entities", []), len(tokens), where=where, post_id=record["id"], log=log)
    counts.skipped_entities += len(record.get("entities", [])) - len(entities)
    coarse, main = bio_columns(len(tokens), entities)
    handle.write(f"IMGID:{_WHITESPACE.sub(' ', str(record['id'])).strip()}\n")  # a line break would end the id
    for i, token in enumerate(cleaned):
        handle.write(f"{token}\t{coarse[i]}\t{main[i]}\n" if two_levels else f"{token}\t{main[i]}\n")
    handle.write("\n")
    counts.posts += 1
    counts.entities += len(entities)
