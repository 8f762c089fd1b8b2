"""cnnfast: fast small CNNs on the CPU with the tf.keras API.

    import cnnfast as cf
    model = cf.Sequential([cf.layers.Input((28, 28, 1)), cf.layers.Conv2D(32, 3, activation="relu"),
                           ...])
"""
__version__ = "0.1.0"

from . import (  # noqa: F401
    activations,
    backend,
    callbacks,
    datasets,
    initializers,
    keras,  # re-exports the modules above under tf.keras's paths
    layers,
    losses,
    metrics,
    models,
    nn,
    optimizers,
    random,
    utils,
)
from .backend import build_info, get_num_threads, set_num_threads  # noqa: F401
from .interop import from_keras  # noqa: F401
from .layers import Input  # noqa: F401
from .models import Model, Sequential  # noqa: F401
