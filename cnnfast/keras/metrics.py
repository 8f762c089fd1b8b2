"""keras.metrics (pass 'accuracy' in compile for the auto-mapped accuracy)."""
from .._missing import missing_names as _missing_names
from ..metrics import (  # noqa: F401
    AUC,
    BinaryAccuracy,
    CategoricalAccuracy,
    FalseNegatives,
    FalsePositives,
    MeanAbsoluteError,
    MeanSquaredError,
    Metric,
    Precision,
    Recall,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    TrueNegatives,
    TruePositives,
    get,
)

__getattr__ = _missing_names("tensorflow.keras.metrics")
