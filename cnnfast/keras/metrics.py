"""keras.metrics (accuracy metrics; pass 'accuracy' in compile for the auto-mapped one)."""
from .._missing import missing_names as _missing_names
from ..metrics import CategoricalAccuracy, SparseCategoricalAccuracy  # noqa: F401

__getattr__ = _missing_names("tensorflow.keras.metrics")
