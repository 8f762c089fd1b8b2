"""keras.metrics (accuracy metrics; pass 'accuracy' in compile for the auto-mapped one)."""
from ..metrics import CategoricalAccuracy, SparseCategoricalAccuracy  # noqa: F401
