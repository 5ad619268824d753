"""Official-rule scoring of MNER / EEG / MNERG and the Table 2 grounding subsets."""

from .scorer import PRF, LevelScores, ScoreReport, gold_as_predictions, region_correct, score

__all__ = ["PRF", "LevelScores", "ScoreReport", "gold_as_predictions", "region_correct", "score"]
