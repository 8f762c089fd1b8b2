"""keras.callbacks"""
from .._missing import missing_names as _missing_names
from ..callbacks import (  # noqa: F401
    BackupAndRestore,
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    MonitorCallback,
    ProgbarLogger,
    ReduceLROnPlateau,
    RemoteMonitor,
    SwapEMAWeights,
    TensorBoard,
    TerminateOnNaN,
)

__getattr__ = _missing_names("tensorflow.keras.callbacks")
