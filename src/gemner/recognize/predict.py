"""Run a trained recogniser over posts and write the prediction JSONL (docs/ARCHITECTURE.md).

One line per post, in input order, flushed as it goes (`gemner.data.userio.PredictionWriter`):
`{"id", "tokens", "image", "entities"}` with each entity's `scores` holding `entropy`, `topk` and
(hierarchical schemas) `coarse_topk`. With `resume=True` the posts already in the output file are
skipped, so a killed run continues where it stopped. A post that fails is written with an `"error"`
and no entities; the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ..data.bio import tags_to_spans
from ..data.issues import IssueLog
from ..data.limits import is_long, long_post_note
from ..data.types import Post, PredictedEntity
from ..data.userio import prediction_record
from ..data.userio import read_knowledge as read_knowledge_file
from ..data.writer import PredictionWriter, WriteCounts
from ..progress import progress_bar
from .encoding import EncodedPost, collate, encode_post
from .inference import InferenceDtype, prepare_for_inference
from .uncertainty import span_scores

BUCKET_WINDOW = 8  # batches sorted together by length: enough posts for even lengths, a short wait for output


def read_knowledge(path: str | Path | None, log: IssueLog | None = None) -> dict[str, str]:
    """Post id -> knowledge text from a knowledge JSONL(.gz); None: no knowledge."""
    if path is None:
        return {}
    return {post_id: text for post_id, (text, _) in read_knowledge_file(path, log).items()}


@torch.inference_mode()
def predict_batch(model, posts: Sequence[Post], items: Sequence[EncodedPost]) -> list[list[PredictedEntity]]:
    """Entities of each post of one batch (`items[i]` encodes `posts[i]`)."""
    device = next(model.parameters()).device
    batch = collate(list(items), model.tokenizer.pad_token_id or 0).to(device)
    paths, hidden = model.decode(batch)
    schema = model.schema
    spans_per_post = [tags_to_spans([schema.tags[t] for t in path]) for path in paths]
    span_rows = [(row, s, e) for row, spans in enumerate(spans_per_post) for s, e, _ in spans]
    scores = iter(span_scores(model, hidden, items, span_rows))
    return [
        [PredictedEntity(s, e, " ".join(post.tokens[s:e]), label, schema.coarse_of[label],
                         box=None, scores=next(scores), box_status="not_computed")
         for s, e, label in spans]
        for post, spans in zip(posts, spans_per_post, strict=True)
    ]


def input_limit(model) -> int:
    """Subwords per post: the configured `max_length`, never more than the encoder's positions."""
    limit = model.config.max_length
    encoder_config = getattr(getattr(model, "encoder", None), "config", None)
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if isinstance(positions, int):
        offset = 2 if "roberta" in str(getattr(encoder_config, "model_type", "")) else 0  # positions from 2
        limit = min(limit, positions - offset)
    tokenizer_limit = getattr(model.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 100_000:  # unset: a huge sentinel
        limit = min(limit, tokenizer_limit)
    return limit


def predict_posts(model, posts: Sequence[Post], knowledge: dict[str, str] | None = None,
                  batch_size: int = 32, log: IssueLog | None = None, *, length_buckets: bool = True
                  ) -> Iterator[tuple[Post, list[PredictedEntity] | str]]:
    """Yield (post, entities) in input order; a post that fails yields (post, error message).

    With `length_buckets`, each window of `BUCKET_WINDOW` batches is sorted by subword count before it
    is cut into batches (and put back in input order after): a batch pads to its longest post, so
    posts of like length waste no work on padding. Without, batches follow the input order."""
    model.eval()
    log = IssueLog() if log is None else log
    knowledge = knowledge or {}
    limit = input_limit(model)
    window = batch_size * BUCKET_WINDOW if length_buckets else batch_size
    for start in range(0, len(posts), window):
        chunk = posts[start:start + window]
        results = _predict_window(model, chunk, knowledge, limit, batch_size, log, length_buckets)
        for row, post in enumerate(chunk):
            yield post, results.get(row, [])


def _predict_window(model, chunk: Sequence[Post], knowledge: dict[str, str], limit: int, batch_size: int,
                    log: IssueLog, length_buckets: bool) -> dict[int, list[PredictedEntity] | str]:
    """Entities (or an error) by position in `chunk`; empty posts get none."""
    results: dict[int, list[PredictedEntity] | str] = {}
    encoded: dict[int, EncodedPost] = {}
    for row, post in enumerate(chunk):
        if not post.tokens:
            continue
        try:
            item = encode_post(model.tokenizer, post.tokens, knowledge.get(post.id), limit, row)
        except Exception as err:  # this post alone fails
            results[row] = f"{type(err).__name__}: {err}"
            continue
        kept = item.n_words if item.n_words < len(post.tokens) else None
        if kept is not None or is_long(post.tokens):  # said once per post, for every model
            log.report(long_post_note(post.tokens, kept), "inputs cut", post_id=post.id)
        encoded[row] = item
    rows = sorted(encoded, key=lambda r: len(encoded[r].input_ids)) if length_buckets else list(encoded)
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            try:
                entities = predict_batch(model, [chunk[r] for r in batch], [encoded[r] for r in batch])
                results.update(zip(batch, entities, strict=True))
            except Exception:  # isolate the failing post(s); the others still get predictions
                results.update((r, _predict_one(model, chunk[r], encoded[r])) for r in batch)
    return results


def _predict_one(model, post: Post, item: EncodedPost) -> list[PredictedEntity] | str:
    try:
        return predict_batch(model, [post], [item])[0]
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def write_predictions(model, posts: Sequence[Post], output: str | Path, knowledge: dict[str, str] | None = None,
                      batch_size: int = 32, resume: bool = False, log: IssueLog | None = None,
                      progress: bool = False, retry_errors: bool = True) -> WriteCounts:
    """Write the prediction JSONL (flushed per post); returns what was written (`WriteCounts`)."""
    with PredictionWriter(output, resume=resume, retry_errors=retry_errors) as writer:
        todo = list(writer.pending(posts))
        with progress_bar(len(todo), "predict", enabled=progress) as bar:
            for post, result in predict_posts(model, todo, knowledge, batch_size, log):
                error = result if isinstance(result, str) else None
                writer.write(prediction_record(post, [] if error else result, error=error))
                bar.update(1)
    return writer.counts


def predict_file(recognizer: str | Path, posts: Sequence[Post], output: str | Path,
                 knowledge: str | Path | None = None, batch_size: int = 32, resume: bool = False,
                 device: str = "cpu", log: IssueLog | None = None, progress: bool = False,
                 trust_remote_code: bool = False, dtype: InferenceDtype = "auto") -> WriteCounts:
    """Load a recogniser checkpoint and write its predictions for `posts`: the recogniser alone, as
    `gemner predict --recognizer` without `--config` computes them (`dtype`: the encoder's, see
    `inference.prepare_for_inference`)."""
    from .model import Recognizer

    log = IssueLog() if log is None else log
    model = Recognizer.from_pretrained(recognizer, device=device, trust_remote_code=trust_remote_code)
    prepare_for_inference(model, dtype)
    return write_predictions(model, posts, output, read_knowledge(knowledge, log), batch_size, resume,
                             log, progress)
