"""A model's tf.keras twin with the same weights: the body of `Model.to_keras()`.

It lives with the models (cnnfast.interop, which builds cnnfast models from Keras ones,
imports the models; the models never import interop) and reads a model only through its
graph view (`nodes`, `input_layers`, `output_layers`). TensorFlow is an optional dependency:
`import_keras` imports it on the first conversion, never at import time.
"""
from __future__ import annotations

from ..layers.base import InputLayer
from ..saving import keras_layers, serialization

INSTALL_HINT = ("cnnfast's Keras interop (from_keras / to_keras) needs TensorFlow, which is "
                "not installed (or failed to import): install it with "
                "`pip install tensorflow-cpu` (or `pip install tensorflow`)")


def import_keras():
    """The keras module (Keras 3 on the TensorFlow backend); ImportError with an install hint
    when TensorFlow is missing."""
    try:
        import keras
        import tensorflow  # noqa: F401  (keras 3 with the TensorFlow backend)
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return keras


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _keras_layer(keras, layer):
    """The Keras layer for a cnnfast one, through the table the Keras file writer uses
    (cnnfast/saving/keras_layers.py)."""
    entry = serialization.serialize_layer(layer)
    cls = entry["class_name"]
    cfg = keras_layers.layer_to_keras(cls, entry["config"], f"layer '{layer.name}'")
    # lists as tuples, as one writes them in code: Keras keeps some arguments as attributes
    # (RandomContrast's value_range, RandomTranslation's factors), where it tracks a list, and
    # then cannot save the model to .h5 (the deepcopy of its tracked list fails)
    cfg = {k: _tuples(v) for k, v in cfg.items()}
    return keras.layers.deserialize(keras_layers.keras_object("keras.layers", cls, cfg))


def _keras_input(keras, input_layer):
    return keras.Input(batch_shape=input_layer.output.shape, name=input_layer.name)


def _finish(model, km, pairs):
    for kl, layer in pairs:
        if layer.weights_list:
            kl.set_weights(layer.get_weights())
    km.trainable = bool(model.trainable)
    return km


def sequential_to_keras(model):
    """keras.Sequential with the layers of the Sequential `model` (built or not)."""
    keras = import_keras()
    km = keras.Sequential(name=model.name)
    pairs = []
    for node in model.nodes:
        if isinstance(node.layer, InputLayer):
            km.add(_keras_input(keras, node.layer))
            continue
        kl = _keras_layer(keras, node.layer)
        km.add(kl)
        pairs.append((kl, node.layer))
    return _finish(model, km, pairs)


def functional_to_keras(model, single_input, single_output):
    """keras.Model over the same graph as the functional `model`; `single_*`: whether its
    inputs / outputs were given as one tensor (not a list), which Keras also keeps."""
    keras = import_keras()
    kts, pairs = {}, []
    for node in model.nodes:
        if isinstance(node.layer, InputLayer):
            kts[id(node.layer)] = _keras_input(keras, node.layer)
            continue
        kl = _keras_layer(keras, node.layer)
        kts[id(node.layer)] = kl(*[kts[id(src)] for src in node.inbound_layers])
        pairs.append((kl, node.layer))
    ins = [kts[id(layer)] for layer in model.input_layers]
    outs = [kts[id(layer)] for layer in model.output_layers]
    km = keras.Model(inputs=ins[0] if single_input else ins,
                     outputs=outs[0] if single_output else outs, name=model.name)
    return _finish(model, km, pairs)
