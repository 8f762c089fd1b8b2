"""keras.utils"""
from .._missing import missing_names as _missing_names
from ..images import array_to_img, img_to_array, load_img, save_img  # noqa: F401
from ..utils import Progbar, PyDataset, Sequence, set_random_seed, to_categorical  # noqa: F401


def plot_model(model, to_file="model.png", *args, **kwargs):
    """Not available: it needs pydot and graphviz. Use model.summary() for the layer table."""
    raise NotImplementedError("plot_model needs pydot + graphviz and is not implemented by "
                              "cnnfast; use model.summary()")


__getattr__ = _missing_names("tensorflow.keras.utils")
