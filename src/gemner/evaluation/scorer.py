"""MNER / EEG / MNERG scoring by the official rules (data/README.md §7.1 and §7.4).

* MNER: (span, type) must equal a gold one; regions ignored.
* EEG: span and region must be right; type ignored.
* MNERG: span, type and region.
* A region is right when gold is None and the prediction is None, or when the predicted box has
  IoU > 0.5 (strictly) with any one of the entity's gold boxes.
* Per post, items are keyed (by span, or by entity string with `match="string"` as TIGER does);
  duplicate predictions of a key count once (the last one wins, as in H-Index's dict).
  P = TP / #pred, R = TP / #gold, micro-averaged over the split; ungroundable entities included.

Also the "visual entity" grounding scores of paper Table 2: `visual` over every groundable gold
entity, `fine_visual` over the fine-grained visual entities (every gold box smaller than 1/50 of
the image). See `grounding_scores` for how predictions are assigned to these subsets.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from ..data.schema import LabelSchema
from ..data.types import Box, Entity, Post, PredictedEntity

IOU_THRESHOLD = 0.5
SMALL_AREA_FRACTION = 1 / 50


@dataclass
class PRF:
    """Counts and micro P/R/F1 (in percent)."""

    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    def add(self, tp: int, n_pred: int, n_gold: int) -> None:
        self.tp += tp
        self.n_pred += n_pred
        self.n_gold += n_gold

    @property
    def precision(self) -> float:
        return 100.0 * self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return 100.0 * self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "tp": self.tp, "n_pred": self.n_pred, "n_gold": self.n_gold}


@dataclass
class LevelScores:
    """The three task scores at one label granularity, with a per-type breakdown."""

    mner: PRF = field(default_factory=PRF)
    eeg: PRF = field(default_factory=PRF)
    mnerg: PRF = field(default_factory=PRF)
    span: PRF = field(default_factory=PRF)  # entity spans alone, type ignored (paper Appendix D, Table 5)
    per_type: dict[str, dict[str, PRF]] = field(default_factory=dict)

    def type_prf(self, label: str, task: str) -> PRF:
        return self.per_type.setdefault(label, {"mner": PRF(), "mnerg": PRF()})[task]

    def to_dict(self) -> dict:
        return {
            "mner": self.mner.to_dict(), "eeg": self.eeg.to_dict(), "mnerg": self.mnerg.to_dict(),
            "span": self.span.to_dict(),
            "per_type": {t: {k: v.to_dict() for k, v in d.items()} for t, d in sorted(self.per_type.items())},
        }


@dataclass
class ScoreReport:
    main: LevelScores
    coarse: LevelScores | None
    grounding: dict[str, PRF]
    n_posts: int
    missing_posts: list[str]
    unknown_posts: list[str]
    match: str

    @property
    def mner(self) -> PRF:
        return self.main.mner

    @property
    def eeg(self) -> PRF:
        return self.main.eeg

    @property
    def mnerg(self) -> PRF:
        return self.main.mnerg

    def to_dict(self) -> dict:
        return {
            "match": self.match, "n_posts": self.n_posts,
            "missing_posts": len(self.missing_posts), "unknown_posts": len(self.unknown_posts),
            "main": self.main.to_dict(), "coarse": self.coarse.to_dict() if self.coarse else None,
            "grounding": {k: v.to_dict() for k, v in self.grounding.items()},
        }


def region_correct(pred_box: Box | None, gold_boxes: Sequence[Box] | None) -> bool:
    """None matches only None; a box must have IoU > 0.5 with any one gold box."""
    if not gold_boxes:
        return pred_box is None
    return pred_box is not None and any(pred_box.iou(g) > IOU_THRESHOLD for g in gold_boxes)


def _key(item: Entity | PredictedEntity, match: str) -> Hashable:
    return item.span if match == "span" else item.text


def _level_label(item: Entity | PredictedEntity, coarse: bool, schema: LabelSchema) -> str:
    if not coarse:
        return item.type
    return schema.coarse_of.get(item.type, item.coarse)


def score_post(level: LevelScores, gold: Sequence[Entity], pred: Sequence[PredictedEntity],
               schema: LabelSchema, match: str, coarse: bool) -> None:
    """Add one post's counts to `level` (MNER, EEG, MNERG and per type)."""
    gold_typed = {(_key(g, match), _level_label(g, coarse, schema)): g.boxes for g in gold}
    gold_regions = {_key(g, match): g.boxes for g in gold}
    pred_typed: dict[tuple[Hashable, str], Box | None] = {}
    pred_regions: dict[Hashable, Box | None] = {}
    for p in pred:  # later duplicates overwrite earlier ones: a key counts once
        pred_typed[(_key(p, match), _level_label(p, coarse, schema))] = p.box
        pred_regions[_key(p, match)] = p.box

    mner_hits = {k for k in pred_typed if k in gold_typed}
    mnerg_hits = {k for k in mner_hits if region_correct(pred_typed[k], gold_typed[k])}
    eeg_tp = sum(1 for k, box in pred_regions.items()
                 if k in gold_regions and region_correct(box, gold_regions[k]))
    level.mner.add(len(mner_hits), len(pred_typed), len(gold_typed))
    level.mnerg.add(len(mnerg_hits), len(pred_typed), len(gold_typed))
    level.eeg.add(eeg_tp, len(pred_regions), len(gold_regions))
    level.span.add(len(pred_regions.keys() & gold_regions.keys()), len(pred_regions), len(gold_regions))
    for keys, task in ((mner_hits, "mner"), (mnerg_hits, "mnerg")):
        for _, label in pred_typed:
            level.type_prf(label, task).n_pred += 1
        for _, label in gold_typed:
            level.type_prf(label, task).n_gold += 1
        for _, label in keys:
            level.type_prf(label, task).tp += 1


def is_fine_visual(entity: Entity, image_size: tuple[int, int] | None) -> bool:
    """A fine-grained visual entity: every gold box is smaller than 1/50 of the image (paper §4.3)."""
    if not entity.boxes or image_size is None:
        return False
    limit = SMALL_AREA_FRACTION * image_size[0] * image_size[1]
    return all(box.area < limit for box in entity.boxes)


def grounding_scores(visual: PRF, fine: PRF, post: Post, pred: Sequence[PredictedEntity], match: str) -> None:
    """Table 2 "visual entity" scores for one post.

    Gold items are the groundable entities (`visual`) and the fine-grained ones (`fine_visual`).
    Predicted items are predictions with a box (one per key). A prediction belongs to the fine
    subset when its key is a fine-grained gold entity, or, when its key is no groundable gold
    entity, when its own box is smaller than 1/50 of the image. TP: key matches and IoU > 0.5.
    """
    grounded = {_key(g, match): g for g in post.entities if g.groundable}
    fine_keys = {k for k, g in grounded.items() if is_fine_visual(g, post.image_size)}
    boxed = {_key(p, match): p.box for p in pred}
    boxed = {k: b for k, b in boxed.items() if b is not None}
    limit = SMALL_AREA_FRACTION * post.image_size[0] * post.image_size[1] if post.image_size else None
    for key, box in boxed.items():
        hit = key in grounded and region_correct(box, grounded[key].boxes)
        visual.add(int(hit), 1, 0)
        in_fine = key in fine_keys or (key not in grounded and limit is not None and box.area < limit)
        if in_fine:
            fine.add(int(hit), 1, 0)
    visual.add(0, 0, len(grounded))
    fine.add(0, 0, len(fine_keys))


def score(
    gold_posts: Sequence[Post],
    predictions: Mapping[str, Sequence[PredictedEntity]],
    schema: LabelSchema,
    match: str = "span",
) -> ScoreReport:
    """Score predictions (by post id) against gold posts. Posts absent from `predictions` count as
    empty predictions; predictions for ids absent from the gold are listed and ignored."""
    if match not in ("span", "string"):
        raise ValueError(f"match must be 'span' or 'string', not {match!r}")
    main = LevelScores()
    coarse = LevelScores() if schema.hierarchical else None
    grounding = {"visual": PRF(), "fine_visual": PRF()}
    gold_ids = {p.id for p in gold_posts}
    missing = [p.id for p in gold_posts if p.id not in predictions]
    for post in gold_posts:
        pred = predictions.get(post.id, ())
        score_post(main, post.entities, pred, schema, match, coarse=False)
        if coarse is not None:
            score_post(coarse, post.entities, pred, schema, match, coarse=True)
        grounding_scores(grounding["visual"], grounding["fine_visual"], post, pred, match)
    unknown = sorted(k for k in predictions if k not in gold_ids)
    return ScoreReport(main, coarse, grounding, len(gold_posts), missing, unknown, match)


def gold_as_predictions(posts: Sequence[Post]) -> dict[str, list[PredictedEntity]]:
    """Gold entities as predictions (first gold box as the predicted box): the scorer's identity check."""
    return {
        post.id: [
            PredictedEntity(e.start, e.end, e.text, e.type, e.coarse, e.boxes[0] if e.boxes else None)
            for e in post.entities
        ]
        for post in posts
    }
