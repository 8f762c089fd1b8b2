"""keras.backend: the few functions tutorials call."""
from .._missing import missing_names as _missing_names
from ..layers.base import reset_names as _reset_names
from ..losses import EPSILON as _EPSILON


def epsilon():
    """The fuzz factor Keras uses in numeric expressions (1e-7)."""
    return _EPSILON


def floatx():
    return "float32"


def image_data_format():
    """cnnfast computes channels_last (NHWC), as Keras's default."""
    return "channels_last"


def backend():
    return "cnnfast"


def clear_session(free_memory=True):
    """Reset the automatic layer/model names (conv2d, conv2d_1, ... start again)."""
    _reset_names()


__getattr__ = _missing_names("tensorflow.keras.backend")
