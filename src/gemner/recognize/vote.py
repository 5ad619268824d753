"""A majority vote of several prediction files of the same posts (recognisers trained on other seeds, or
other models): an entity is kept when at least `min_votes` files predict its exact span and type.

Kept entities may not overlap: where two do, the one with more votes wins (then the higher mean score, then
the earlier span). A kept entity is the copy of the file that scored it highest, with `scores.votes` the
number of files behind it, so its entropy and top-k stay those of one model and the sample filter and
reranker can read it as usual. The files are read side by side, one post at a time (memory stays that of
one post whatever their size); they must hold the same posts in the same order, as `gemner predict` writes
them for one input. A post that failed in a file has no vote there, and its error is carried over.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.issues import DataError, IssueLog
from ..data.userio import iter_prediction_records
from ..data.writer import PredictionWriter

Span = tuple[int, int, str]


@dataclass
class VoteCounts:
    posts: int = 0
    kept: int = 0  # entities written
    candidates: int = 0  # distinct (span, type) predicted by any file

    def summary(self) -> str:
        return f"{self.posts} posts, {self.kept} of {self.candidates} distinct entities kept"


def majority(files: int) -> int:
    """The smallest number of votes more than half of `files` give."""
    return files // 2 + 1


def vote_entities(entity_lists: Sequence[Sequence[dict[str, Any]]], min_votes: int) -> list[dict[str, Any]]:
    """The entities (prediction records' dicts) that at least `min_votes` of the lists hold, with no overlap."""
    voters: dict[Span, list[dict[str, Any]]] = {}
    for entities in entity_lists:
        for span in {(e["start"], e["end"], e["type"]): e for e in entities}.values():  # one vote per list
            voters.setdefault((span["start"], span["end"], span["type"]), []).append(span)
    ranked = sorted(((len(copies), _mean_score(copies), key) for key, copies in voters.items()
                     if len(copies) >= min_votes), key=lambda c: (-c[0], -c[1], c[2][0], c[2][1]))
    taken: set[int] = set()
    kept = []
    for votes, _, key in ranked:
        start, end, _ = key
        if taken.intersection(range(start, end)):
            continue
        taken.update(range(start, end))
        best = max(voters[key], key=lambda e: e.get("score") or 0.0)
        kept.append({**best, "scores": {**(best.get("scores") or {}), "votes": votes}})
    return sorted(kept, key=lambda e: e["start"])


def _mean_score(copies: Sequence[dict[str, Any]]) -> float:
    return sum(e.get("score") or 0.0 for e in copies) / len(copies)


def vote_files(files: Sequence[str | Path], output: str | Path, min_votes: int | None = None,
               log: IssueLog | None = None) -> VoteCounts:
    """Write the majority vote of `files` (see the module doc) to `output`; `min_votes`: default a majority."""
    files = [Path(f) for f in files]
    if len(files) < 2:
        raise DataError(f"a vote needs at least two prediction files, got {len(files)}")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such predictions file")
    needed = majority(len(files)) if min_votes is None else min_votes
    if not 1 <= needed <= len(files):
        raise DataError(f"--min-votes must be between 1 and {len(files)} (the number of files), got {needed}")
    log = log if log is not None else IssueLog()
    counts = VoteCounts()
    with PredictionWriter(output, resume=False, inputs=files) as sink:
        for records in _side_by_side(files, log):
            usable = [r for r in records if not r.get("error")]
            entities = vote_entities([r["entities"] for r in usable], needed)
            counts.posts += 1
            counts.kept += len(entities)
            counts.candidates += len({(e["start"], e["end"], e["type"]) for r in usable for e in r["entities"]})
            first = usable[0] if usable else records[0]
            record = {**first, "entities": entities}
            record.pop("error", None)
            errors = [f"{path.name}: {r['error']}" for path, r in zip(files, records, strict=True) if r.get("error")]
            if errors:
                record["error"] = "; ".join(errors)
            sink.write(record)
    return counts


def _side_by_side(files: Sequence[Path], log: IssueLog) -> Iterator[list[dict[str, Any]]]:
    """The records of one post from every file at a time; the files must list the same posts in one order."""
    with ExitStack() as stack:
        readers = [stack.enter_context(closing(iter_prediction_records(path, log))) for path in files]
        while True:
            rows = [next(reader, None) for reader in readers]
            if all(row is None for row in rows):
                return
            ids = [None if row is None else str(row[1]["id"]) for row in rows]
            if len(set(ids)) != 1:
                where = ", ".join(f"{path.name}: {post_id or 'the end of the file'}"
                                  for path, post_id in zip(files, ids, strict=True))
                raise DataError(f"the prediction files do not hold the same posts in the same order ({where}); "
                                "predict every file from the same input")
            yield [row[1] for row in rows if row is not None]

