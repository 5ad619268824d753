"""Data model, readers and writers: benchmarks, upstream layouts and user posts."""

from .benchmarks import DATASETS, SPLITS, Dataset, load_conll_split, load_dataset, load_upstream
from .issues import DataError, DataIssue, IssueLog
from .schema import FMNERG_SCHEMA, GMNER_SCHEMA, SCHEMAS, LabelSchema
from .types import Box, Entity, Post, PredictedEntity

__all__ = [
    "DATASETS", "FMNERG_SCHEMA", "GMNER_SCHEMA", "SCHEMAS", "SPLITS", "Box", "DataError", "DataIssue",
    "Dataset", "Entity", "IssueLog", "LabelSchema", "Post", "PredictedEntity", "load_conll_split",
    "load_dataset", "load_upstream",
]
