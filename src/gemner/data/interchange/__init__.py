"""Interchange with other tools: predictions out to CoNLL, spaCy and Label Studio; annotations in from
Label Studio exports and CoNLL files, as training data with the person's own label set."""

from .convert import EXPORT_FORMATS, IMPORT_FORMATS, export_predictions, import_annotations
from .files import Counts
from .spans import PostText, post_text, token_offsets
from .training import TrainingData, derive_schema, load_training_files, schema_from_file, training_data

__all__ = [
    "EXPORT_FORMATS", "IMPORT_FORMATS", "Counts", "PostText", "TrainingData", "derive_schema",
    "export_predictions", "import_annotations", "load_training_files", "post_text", "schema_from_file",
    "token_offsets", "training_data",
]
