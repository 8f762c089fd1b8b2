"""keras.activations"""
from .._missing import missing_names as _missing_names
from ..activations import (  # noqa: F401
    elu,
    gelu,
    get,
    hard_sigmoid,
    leaky_relu,
    linear,
    log_softmax,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    swish,
    tanh,
)

__getattr__ = _missing_names("tensorflow.keras.activations")
