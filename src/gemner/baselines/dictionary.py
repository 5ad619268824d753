"""The dictionary baseline: entity strings memorised from train with their most frequent type,
longest match on new text, box None. The floor every later model must clear."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.schema import LabelSchema
from ..data.types import Post, PredictedEntity


@dataclass
class DictionaryTagger:
    entries: dict[tuple[str, ...], str]  # token sequence -> most frequent type
    schema: LabelSchema
    ignore_case: bool = False

    @property
    def max_length(self) -> int:
        return max((len(k) for k in self.entries), default=0)

    @classmethod
    def fit(cls, posts: Iterable[Post], schema: LabelSchema, ignore_case: bool = False) -> DictionaryTagger:
        counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for post in posts:
            for entity in post.entities:
                counts[_norm(post.tokens[entity.start:entity.end], ignore_case)][entity.type] += 1
        order = {label: i for i, label in enumerate(schema.labels)}
        # Most frequent type; ties go to the label listed first in the schema (deterministic).
        entries = {key: min(c, key=lambda t: (-c[t], order.get(t, len(order)))) for key, c in counts.items()}
        return cls(entries, schema, ignore_case)

    def predict(self, tokens: Sequence[str]) -> list[PredictedEntity]:
        """Greedy left-to-right longest match."""
        keys = _norm(tokens, self.ignore_case)
        found, i, longest = [], 0, self.max_length
        while i < len(tokens):
            for length in range(min(longest, len(tokens) - i), 0, -1):
                label = self.entries.get(keys[i:i + length])
                if label is not None:
                    found.append(PredictedEntity(
                        i, i + length, " ".join(tokens[i:i + length]), label,
                        self.schema.coarse_of[label], None, {}, box_status="not_computed",
                    ))
                    i += length
                    break
            else:
                i += 1
        return found


def _norm(tokens: Sequence[str], ignore_case: bool) -> tuple[str, ...]:
    return tuple(t.lower() for t in tokens) if ignore_case else tuple(tokens)


@dataclass(frozen=True)
class BaselineRun:
    entries: int  # entity strings memorised from train
    report: Any  # the evaluation.ScoreReport of the split
    predictions: Path
    scores: Path


def run_dictionary_baseline(dataset: str, split: str = "test", *, ignore_case: bool = False,
                            output: str | Path | None = None) -> BaselineRun:
    """Fit on train, predict `split`, write the predictions JSONL (default `runs/baseline/<dataset>-<split>.jsonl`)
    and its scores JSON beside it."""
    from ..data import load_dataset
    from ..data.userio import PredictionWriter, prediction_record
    from ..evaluation import score

    train, gold = load_dataset(dataset, "train"), load_dataset(dataset, split)
    tagger = DictionaryTagger.fit(train.posts, train.schema, ignore_case=ignore_case)
    predictions = {post.id: tagger.predict(post.tokens) for post in gold.posts}
    output = Path(output) if output else Path("runs") / "baseline" / f"{dataset}-{split}.jsonl"
    with PredictionWriter(output, resume=False) as writer:
        for post in gold.posts:
            writer.write(prediction_record(post, predictions[post.id]))
    report = score(gold.posts, predictions, gold.schema)
    scores = output.with_name(output.name.split(".")[0] + ".scores.json")
    scores.write_text(json.dumps(report.to_dict(), indent=2))
    return BaselineRun(len(tagger.entries), report, output, scores)
