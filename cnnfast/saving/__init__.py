"""Saving and loading models: a safe, versioned, pickle-free file format (docs/file_format.md).

    model.save("mnist.cnnfast")                 # architecture + weights + compile + optimizer
    model = cnnfast.models.load_model("mnist.cnnfast")
    model.save_weights("mnist.weights.h5")      # weights only
    model.load_weights("mnist.weights.h5")      # into a model of the same architecture

Modules, lowest first; none imports cnnfast.models (the models call down into them):
    archive        the ZIP container: atomic writes, reading, sniffing foreign files
    serialization  whitelisted classes <-> configs (layers, compile objects, model classes)
    state          the weights index, optimizer slots and Dropout rng state
    saving_lib     save_model / load_model / save_weights / load_weights
"""
from .archive import FORMAT_VERSION, MODEL_FORMAT, WEIGHTS_FORMAT  # noqa: F401
from .saving_lib import load_model, load_weights, save_model, save_weights  # noqa: F401
from .serialization import LAYER_CLASSES, LOSS_CLASSES, OPTIMIZER_CLASSES  # noqa: F401
