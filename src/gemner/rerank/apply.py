"""Rerank a predictions JSONL: the sample filter picks the hard entities, the reranker relabels them.

Input and output are the predictions format of docs/ARCHITECTURE.md. A reranked entity gets its new
`type`/`coarse` and `scores.rerank = {"candidates", "choice", "logprobs", "from"}`; every other field
and every other entity is copied unchanged. The output is written post by post and flushed: after a
crash or Ctrl-C, rerunning the same command keeps the finished posts and continues (a torn last line
is dropped and redone). Bad lines and entities are reported with file and line or post id, and kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.images import ImageError, load_image
from ..data.issues import IssueLog
from ..data.limits import is_long, long_post_note
from ..data.schema import FMNERG_SCHEMA, GMNER_SCHEMA, LabelSchema
from ..data.types import PredictedEntity
from ..data.userio import iter_prediction_records
from ..data.writer import PredictionWriter, WriteCounts
from ..progress import progress_bar
from .filter import SampleFilter as SampleFilter  # its home is .filter; still importable from here
from .filter import is_hard
from .infer import RerankResult, rerank_queries, rerank_query, static_prefix
from .model import Reranker
from .prompt import RerankQuery, windowed_query
from .scoring import StaticPrefix


@dataclass
class RerankStats:
    """What the reranker did to the entities of a run (the posts are counted by the writer)."""

    entities: int = 0
    hard: int = 0
    reranked: int = 0
    changed: int = 0
    kept_unscored: int = 0

    def summary(self) -> str:
        return (f"{self.entities} entities, {self.reranked} reranked, {self.changed} changed label, "
                f"{self.kept_unscored} lacked scores")


def guess_schema(labels: set[str]) -> LabelSchema | None:
    """The shipped schema holding every label seen, when the reranker folder does not name one."""
    for schema in (FMNERG_SCHEMA, GMNER_SCHEMA):
        if labels and labels <= set(schema.labels):
            return schema
    return None


@dataclass
class PostContext:
    """One post as the reranker sees it: its tokens and image (loaded once per post), its caption."""

    post_id: str
    tokens: Sequence[str]
    image: Any = None  # a loaded image (vision rerankers), else None
    caption: str = ""
    where: str = "pipeline"


@dataclass
class EntityReranker:
    """A reranker with its sample filter and settings, built once per run; applied entity by entity
    (`rerank`) or to the hard entities of many posts at once (`rerank_posts`)."""

    reranker: Reranker
    sample_filter: SampleFilter
    schema: LabelSchema | None = None
    mode: str | None = None
    static: StaticPrefix | None = None
    stats: RerankStats = field(default_factory=RerankStats)

    @classmethod
    def build(cls, reranker: Reranker, sample_filter: SampleFilter, schema: LabelSchema | None = None,
              mode: str | None = None) -> EntityReranker:
        static = static_prefix(reranker) if (mode or reranker.config.mode) == "score" else None
        return cls(reranker, sample_filter, schema or reranker.schema, mode, static)

    def _query(self, entity: PredictedEntity, post: PostContext, log: IssueLog, stats: RerankStats
               ) -> RerankQuery | None:
        """The entity's rerank query, or None when it keeps the recogniser's label (easy, unscored, bad span)."""
        stats.entities += 1
        scores = entity.scores
        try:
            if not scores.get("topk") or (not self.sample_filter.rerank_all and "entropy" not in scores):
                stats.kept_unscored += 1
                return None
            candidates = self.sample_filter.candidates_for(scores)
            if candidates is None:
                return None
            stats.hard += 1
            return windowed_query(post.tokens, entity.start, entity.end, candidates, post.image, post.caption)
        except (KeyError, TypeError, ValueError) as err:
            log.report(f"entity {entity.text!r}: {err}", "kept the recogniser's label", path=post.where,
                       post_id=post.post_id)
            return None

    def _relabel(self, entity: PredictedEntity, result: RerankResult) -> PredictedEntity:
        self.stats.reranked += 1
        self.stats.changed += result.choice != entity.type
        coarse = self.schema.coarse_of.get(result.choice, entity.coarse) if self.schema else entity.coarse
        return replace(entity, type=result.choice, coarse=coarse,
                       scores={**entity.scores, "rerank": result.to_scores(entity.type)})

    def rerank(self, entity: PredictedEntity, post: PostContext, log: IssueLog) -> PredictedEntity | None:
        """The entity relabelled, or None when it keeps the recogniser's label (easy, unscored, bad span)."""
        query = self._query(entity, post, log, self.stats)
        if query is None:
            return None
        return self._relabel(entity, rerank_query(self.reranker, query, self.mode, static=self.static))

    def rerank_entities(self, entities: Sequence[PredictedEntity], post: PostContext, log: IssueLog
                   ) -> list[PredictedEntity]:
        """One post's entities, each hard one scored on its own."""
        return [self.rerank(entity, post, log) or entity for entity in entities]

    def rerank_posts(self, posts: Sequence[tuple[Sequence[PredictedEntity], PostContext]], log: IssueLog
                     ) -> list[list[PredictedEntity]]:
        """The entities of many posts, the hard ones of all posts scored together (`infer.rerank_queries`);
        the same labels as `rerank_entities` post by post. On an exception nothing is counted or changed,
        so the caller can retry post by post."""
        stats = RerankStats()
        found = [(p, e, query) for p, (entities, post) in enumerate(posts) for e, entity in enumerate(entities)
                 if (query := self._query(entity, post, log, stats)) is not None]
        results = rerank_queries(self.reranker, [query for _, _, query in found], self.mode, self.static)
        for name in ("entities", "hard", "kept_unscored"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(stats, name))
        relabelled = [list(entities) for entities, _ in posts]
        for (p, e, _), result in zip(found, results, strict=True):
            relabelled[p][e] = self._relabel(relabelled[p][e], result)
        return relabelled


def post_image(reranker: Reranker, value: Any, where: str, post_id: str, log: IssueLog) -> Any:
    """The post's image loaded once (vision rerankers only); an unusable one is reported, text alone."""
    if reranker.kind != "vision" or not value:
        return None
    try:
        return load_image(str(value))
    except ImageError as err:
        log.report(str(err), "reranked from the text alone", path=where, post_id=post_id)
        return None


def _rerank_record(run: EntityReranker, record: dict[str, Any], where: str, log: IssueLog,
                   caption: str) -> dict[str, Any]:
    """A predictions line reranked: relabelled entities updated in place of their dicts, the rest
    (and every field) copied unchanged; a malformed entity is reported and kept."""
    tokens = record.get("tokens")
    if record.get("error") or not isinstance(tokens, list):
        return record
    post_id = str(record["id"])
    if is_long(tokens):
        log.report(long_post_note(tokens), "inputs cut", path=where, post_id=post_id)
    post = PostContext(post_id, tokens, post_image(run.reranker, record.get("image"), where, post_id, log),
                       caption, where)
    entities = []
    for raw in record.get("entities") or []:
        try:
            entity = PredictedEntity.from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            log.report(f"malformed entity ({err})", "kept as it is", path=where, post_id=post_id)
            entities.append(raw)
            continue
        new = run.rerank(entity, post, log)
        entities.append(raw if new is None else {**raw, "type": new.type, "coarse": new.coarse, "score": new.score,
                                                 "scores": new.scores})
    return {**record, "entities": entities}


def rerank_predictions(reranker: Reranker, predictions: str | Path, output: str | Path, *,
                       sample_filter: SampleFilter, schema: LabelSchema | None = None,
                       captions: Mapping[str, str] | None = None, mode: str | None = None,
                       log: IssueLog | None = None, retry_errors: bool = True,
                       progress: bool = False) -> tuple[WriteCounts, RerankStats]:
    """Rerank every post of `predictions` into `output` (resumes when `output` holds finished posts)."""
    predictions, output = Path(predictions), Path(output)
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions}: no such predictions file")
    log = log if log is not None else IssueLog()
    run = EntityReranker.build(reranker, sample_filter, schema, mode)
    where = str(predictions)
    with PredictionWriter(output, inputs=[predictions], retry_errors=retry_errors) as sink, \
            progress_bar(_count_lines(predictions), "rerank", enabled=progress) as bar:
        for _, record in iter_prediction_records(predictions, log):
            bar.update(1)
            if sink.skip(record["id"]):
                continue
            if run.schema is None:
                run.schema = guess_schema({str(e.get("type")) for e in record.get("entities") or []
                                           if isinstance(e, dict)})
            sink.write(_rerank_record(run, record, where, log, (captions or {}).get(str(record["id"]), "")))
    return sink.counts, run.stats


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


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
    with PredictionWriter(output, resume=False, inputs=[predictions, reranked_all]) as sink:
        for _, record in iter_prediction_records(predictions, log):
            match = reranked.get(str(record["id"]))
            if match is None:
                log.report("post missing from the reranked file", "kept the recogniser's labels",
                           path=reranked_all, post_id=str(record["id"]))
            sink.write(merge_filtered(record, match, gamma))
            count += 1
    return count
