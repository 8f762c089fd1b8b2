"""cnnfast: fast small CNNs on the CPU with the tf.keras API.

    import cnnfast as cf
    model = cf.Sequential([cf.layers.Input((28, 28, 1)), cf.layers.Conv2D(32, 3, activation="relu"),
                           ...])

`import cnnfast as tf` also gives the small tf.* functions tutorials call on arrays
(`tf.constant`, `tf.cast`, `tf.argmax`, `tf.reduce_mean`, `tf.data.Dataset`, `tf.config`, ...);
a tensorflow name cnnfast lacks raises an AttributeError saying so.
"""
__version__ = "0.1.0"

from . import (  # noqa: F401
    activations,
    backend,
    callbacks,
    config,
    data,
    datasets,
    initializers,
    keras,  # re-exports the modules above under tf.keras's paths
    layers,
    losses,
    math,
    metrics,
    models,
    nn,
    optimizers,
    random,
    utils,
)
from ._missing import Namespace as _Namespace
from ._missing import missing_names as _missing_names
from .array_ops import (  # noqa: F401
    argmax,
    argmin,
    expand_dims,
    one_hot,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
)
from .backend import build_info, get_num_threads, set_num_threads  # noqa: F401
from .interop import from_keras  # noqa: F401
from .layers import Input  # noqa: F401
from .models import Model, Sequential  # noqa: F401
from .tensor import DTYPES as _DTYPES
from .tensor import Tensor, as_dtype, cast, constant, convert_to_tensor  # noqa: F401

# tf.float32, tf.int32, tf.uint8, tf.bool, ...: NumPy dtypes (cnnfast/tensor.py)
globals().update(_DTYPES)
dtypes = _Namespace("tensorflow.dtypes", as_dtype=as_dtype, **_DTYPES)
version = _Namespace("tensorflow.version", VERSION=__version__)


def executing_eagerly():
    """True: cnnfast always computes eagerly (there is no graph mode)."""
    return True


__getattr__ = _missing_names("tensorflow")
