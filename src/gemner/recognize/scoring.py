"""Dev scores for model selection, from the project's scorer (`gemner.evaluation.score`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..data.schema import LabelSchema
from ..data.types import Post, PredictedEntity


def mner_scores(gold_posts: Sequence[Post], predictions: Mapping[str, Sequence[PredictedEntity]],
                schema: LabelSchema) -> dict[str, float]:
    """{"mner_f1", "mner_p", "mner_r"} on the main labels (+ "coarse_f1" when hierarchical), percent."""
    from ..evaluation import score

    report = score(gold_posts, predictions, schema)
    out = {"mner_f1": report.mner.f1, "mner_p": report.mner.precision, "mner_r": report.mner.recall}
    if report.coarse is not None:
        out["coarse_f1"] = report.coarse.mner.f1
    return {k: round(v, 4) for k, v in out.items()}
