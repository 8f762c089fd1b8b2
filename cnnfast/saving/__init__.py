"""Saving and loading models: a safe, versioned, pickle-free file format (docs/file_format.md).

    model.save("mnist.keras")                   # Keras 3's file: tf.keras loads it
    model.save("mnist.h5")                      # legacy Keras HDF5
    model.save("mnist.cnnfast")                 # cnnfast's own format
    model = cnnfast.models.load_model("mnist.keras")   # any of them, or tf.keras's files
    model.save_weights("mnist.weights.h5")      # weights only (Keras 3's weights file)
    model.load_weights("mnist.weights.h5")      # into a model of the same architecture
    model.export("mnist.onnx", format="onnx")   # ONNX, for onnxruntime

Modules, lowest first; none imports cnnfast.models (the models call down into them):
    archive        the ZIP container: atomic writes, reading, sniffing foreign files
    serialization  whitelisted classes <-> configs (layers, compile objects, model classes)
    state          the weights index, optimizer slots and Dropout rng state
    keras_layers   the per-layer cnnfast <-> Keras config table (files and interop)
    keras_files    Keras's .keras / .h5 / .weights.h5, both ways, with h5py
    onnx_export    the ONNX graph of a model (the onnx package)
    saving_lib     save_model / load_model / save_weights / load_weights (format by name)
"""
from .archive import FORMAT_VERSION, MODEL_FORMAT, WEIGHTS_FORMAT  # noqa: F401
from .saving_lib import load_model, load_weights, save_model, save_weights  # noqa: F401
from .serialization import LAYER_CLASSES, LOSS_CLASSES, OPTIMIZER_CLASSES  # noqa: F401
