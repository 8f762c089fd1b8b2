"""`tf.data`: `Dataset` (cnnfast/data/dataset.py) and its constants."""
from .._missing import Namespace
from .._missing import missing_names as _missing_names
from .dataset import (  # noqa: F401
    AUTOTUNE,
    INFINITE_CARDINALITY,
    UNKNOWN_CARDINALITY,
    Dataset,
)


def _cardinality(dataset):
    return dataset.cardinality()


experimental = Namespace("tensorflow.data.experimental", AUTOTUNE=AUTOTUNE,
                         INFINITE_CARDINALITY=INFINITE_CARDINALITY,
                         UNKNOWN_CARDINALITY=UNKNOWN_CARDINALITY, cardinality=_cardinality)

__getattr__ = _missing_names("tensorflow.data")
