"""Official-rule scoring of MNER / EEG / MNERG and the Table 2 grounding subsets."""

from .files import Evaluation, evaluate_files
from .scorer import PRF, LevelScores, ScoreReport, gold_as_predictions, region_correct, score

__all__ = ["PRF", "Evaluation", "LevelScores", "ScoreReport", "evaluate_files", "gold_as_predictions",
           "region_correct", "score"]
