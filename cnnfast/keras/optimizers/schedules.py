"""keras.optimizers.schedules: `from cnnfast.keras.optimizers.schedules import ExponentialDecay`."""
from ..._missing import missing_names as _missing_names
from ...schedules import (  # noqa: F401
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)

__getattr__ = _missing_names("tensorflow.keras.optimizers.schedules")
