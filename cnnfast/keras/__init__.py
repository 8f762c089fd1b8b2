"""`tensorflow.keras` mirrored: `from cnnfast import keras`, `import cnnfast as tf; tf.keras...`.

Re-exports only; the implementations live in cnnfast.layers, cnnfast.models, ... Each
`tensorflow.keras.X` module path has a module here, so `from cnnfast.keras.layers import Dense`
works as `from tensorflow.keras.layers import Dense` does.
"""
from .. import __version__  # noqa: F401
from .._missing import missing_names as _missing_names
from ..layers import Input  # noqa: F401
from ..models import Model, Sequential  # noqa: F401
from . import (  # noqa: F401
               activations,
               backend,
               callbacks,
               datasets,
               initializers,
               layers,
               losses,
               metrics,
               models,
               optimizers,
               preprocessing,
               regularizers,
               saving,
               utils,
)

__getattr__ = _missing_names("tensorflow.keras")
