"""Rerank a predictions JSONL: the sample filter picks the hard entities, the reranker relabels them.

Input and output are the predictions format of docs/ARCHITECTURE.md. A reranked entity gets its new
`type`/`coarse` and `scores.rerank = {"candidates", "choice", "logprobs", "from"}`; every other field
and every other entity is copied unchanged. The output is written post by post and flushed: after a
crash or Ctrl-C, rerunning the same command keeps the finished posts and continues (a torn last line
is dropped and redone). Bad lines and entities are reported with file and line or post id, and kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.issues import IssueLog
from ..data.schema import FMNERG_SCHEMA, GMNER_SCHEMA, LabelSchema
from ..data.userio import PredictionWriter, iter_prediction_records
from .candidates import inference_candidates
from .filter import entity_entropy, is_hard
from .infer import rerank_query, static_prefix
from .model import Reranker
from .prompt import RerankQuery
from .scoring import StaticPrefix


@dataclass
class RerankStats:
    posts: int = 0
    posts_resumed: int = 0
    entities: int = 0
    hard: int = 0
    reranked: int = 0
    changed: int = 0
    kept_unscored: int = 0

    def summary(self) -> str:
        return (f"{self.posts} posts ({self.posts_resumed} already done), {self.entities} entities, "
                f"{self.reranked} reranked, {self.changed} changed label, {self.kept_unscored} lacked scores")


def guess_schema(labels: set[str]) -> LabelSchema | None:
    """The shipped schema holding every label seen, when the reranker folder does not name one."""
    for schema in (FMNERG_SCHEMA, GMNER_SCHEMA):
        if labels and labels <= set(schema.labels):
            return schema
    return None


@dataclass
class SampleFilter:
    gamma: float
    rerank_all: bool = False
    k: int = 5

    def candidates_for(self, scores: Mapping[str, Any]) -> list[str] | None:
        """The entity's top-K candidates when it goes to the reranker, else None."""
        topk = scores.get("topk")
        if not topk:
            return None
        if not self.rerank_all:
            h = entity_entropy(scores)
            if h is None or not is_hard(h, self.gamma):
                return None
        return inference_candidates(topk, self.k)


def rerank_post(reranker: Reranker, record: dict[str, Any], sample_filter: SampleFilter, *, where: str,
                log: IssueLog, stats: RerankStats, schema: LabelSchema | None, caption: str = "",
                mode: str | None = None, static: StaticPrefix | None = None) -> dict[str, Any]:
    tokens = record.get("tokens")
    if record.get("error") or not isinstance(tokens, list):
        return record
    image = _usable_image(record.get("image"), reranker.kind, where, str(record["id"]), log)
    entities = []
    for entity in record.get("entities") or []:
        stats.entities += 1
        entities.append(_rerank_entity(reranker, entity, tokens, image, caption, sample_filter, where,
                                       str(record["id"]), log, stats, schema, mode, static))
    return {**record, "entities": entities}


def _rerank_entity(reranker: Reranker, entity: dict[str, Any], tokens: list[str], image: Path | None,
                   caption: str, sample_filter: SampleFilter, where: str, post_id: str, log: IssueLog,
                   stats: RerankStats, schema: LabelSchema | None, mode: str | None,
                   static: StaticPrefix | None) -> dict[str, Any]:
    scores = entity.get("scores") or {}
    try:
        if not scores.get("topk") or (not sample_filter.rerank_all and "entropy" not in scores):
            stats.kept_unscored += 1
            return entity
        candidates = sample_filter.candidates_for(scores)
        if candidates is None:
            return entity
        stats.hard += 1
        query = RerankQuery(tuple(tokens), int(entity["start"]), int(entity["end"]), tuple(candidates),
                            image=image, caption=caption)
    except (KeyError, TypeError, ValueError) as err:
        log.report(f"entity {entity.get('text', '?')!r}: {err}", "kept the recogniser's label",
                   path=where, post_id=post_id)
        return entity
    result = rerank_query(reranker, query, mode, static=static)
    stats.reranked += 1
    previous = str(entity.get("type"))
    stats.changed += result.choice != previous
    coarse = schema.coarse_of.get(result.choice, entity.get("coarse")) if schema else entity.get("coarse")
    return {**entity, "type": result.choice, "coarse": coarse,
            "scores": {**scores, "rerank": result.to_scores(previous)}}


def _usable_image(value: Any, kind: str, where: str, post_id: str, log: IssueLog) -> Path | None:
    if kind != "vision" or not value:
        return None
    path = Path(str(value))
    if not path.is_file():
        log.report(f"image {path} not found", "reranked from the text alone", path=where, post_id=post_id)
        return None
    return path


def rerank_predictions(reranker: Reranker, predictions: str | Path, output: str | Path, *,
                       sample_filter: SampleFilter, schema: LabelSchema | None = None,
                       captions: Mapping[str, str] | None = None, mode: str | None = None,
                       log: IssueLog | None = None,
                       progress: Callable[[RerankStats], None] | None = None) -> RerankStats:
    """Rerank every post of `predictions` into `output` (resumes when `output` holds finished posts)."""
    predictions, output = Path(predictions), Path(output)
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: no such predictions file")
    log = log if log is not None else IssueLog()
    schema = schema or reranker.schema
    stats = RerankStats()
    static = static_prefix(reranker) if (mode or reranker.config.mode) == "score" else None
    with PredictionWriter(output) as sink:  # resumes: finished posts are kept, a torn last line is cut
        for _number, record in iter_prediction_records(predictions, log):
            stats.posts += 1
            if str(record["id"]) in sink.done_ids:
                stats.posts_resumed += 1
                continue
            if schema is None:
                schema = guess_schema({str(e.get("type")) for e in record.get("entities") or []})
            new = rerank_post(reranker, record, sample_filter, where=str(predictions), log=log, stats=stats,
                              schema=schema, caption=(captions or {}).get(str(record["id"]), ""), mode=mode,
                              static=static)
            sink.write(new)
            if progress is not None:
                progress(stats)
    return stats


def merge_filtered(original: dict[str, Any], reranked_all: dict[str, Any] | None, gamma: float) -> dict[str, Any]:
    """The post as `rerank --gamma` would write it, from its `rerank --all` version: entities with
    H > gamma take the reranked entity, the others stay as the recogniser wrote them. Scoring is
    deterministic, so this equals a fresh filtered run without running the model again."""
    if reranked_all is None:
        return original
    by_span = {(e.get("start"), e.get("end")): e for e in reranked_all.get("entities") or []}
    entities = []
    for entity in original.get("entities") or []:
        h = (entity.get("scores") or {}).get("entropy")
        reranked = by_span.get((entity.get("start"), entity.get("end")))
        hard = h is not None and is_hard(float(h), gamma)
        entities.append(reranked if hard and reranked is not None else entity)
    return {**original, "entities": entities}


def sample_filter_file(predictions: str | Path, reranked_all: str | Path, output: str | Path, gamma: float,
                       log: IssueLog | None = None) -> int:
    """Write `merge_filtered` for every post of `predictions`; returns the number of posts."""
    log = log if log is not None else IssueLog()
    predictions, reranked_all, output = Path(predictions), Path(reranked_all), Path(output)
    for path in (predictions, reranked_all):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such predictions file")
    reranked = {str(record["id"]): record for _, record in iter_prediction_records(reranked_all, log)}
    count = 0
    with output.open("w", encoding="utf-8") as sink:
        for _, record in iter_prediction_records(predictions, log):
            match = reranked.get(str(record["id"]))
            if match is None:
                log.report("post missing from the reranked file", "kept the recogniser's labels",
                           path=reranked_all, post_id=str(record["id"]))
            sink.write(json.dumps(merge_filtered(record, match, gamma), ensure_ascii=False) + "\n")
            count += 1
    return count
