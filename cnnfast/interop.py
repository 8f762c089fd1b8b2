"""Interop with tf.keras: convert models both ways, weights included.

    cf_model = cnnfast.from_keras(keras_model)     # Sequential -> Sequential, functional -> Model
    keras_model = cf_model.to_keras()

Supported Keras layers: InputLayer and those of cnnfast.saving.keras_layers.LAYERS (the table
the Keras file reader and writer share), with the arguments cnnfast runs (channels_last, no
groups, no constraints, the L1/L2/L1L2 regularizers on Dense and Conv2D only, float32, the
cnnfast activations). Anything else raises NotImplementedError naming the layer and the
argument. Weight initializers are carried
over when cnnfast has them (Glorot/He uniform/normal, zeros, ones) and otherwise replaced by the
default: they only matter for fresh weights, and the weights are copied. The converted model is
not compiled; compile it as usual. TensorFlow is imported lazily, only by these functions.
"""
from __future__ import annotations

from .layers.base import InputLayer
from .models.keras_export import import_keras
from .models.model import Model
from .models.sequential import Sequential
from .saving import keras_layers


def _convert_layer(kl):
    """The cnnfast layer for a Keras layer, by the table in cnnfast/saving/keras_layers.py
    (the one the Keras file reader and writer use)."""
    cfg = kl.get_config()
    where = f"Keras layer '{kl.name}' ({type(kl).__name__})"
    cfg["trainable"] = bool(kl.trainable)
    return keras_layers.layer_from_keras(type(kl).__name__, cfg, where)


def _input_layer(kl_or_tensor, name):
    shape = tuple(kl_or_tensor.shape)
    return InputLayer(batch_shape=tuple(None if d is None else int(d) for d in shape), name=name)


def _check_input_layer(kl):
    keras_layers.check_input_config(kl.get_config(), f"Keras layer '{kl.name}' (InputLayer)")


def _copy_weights_from_keras(pairs):
    for kl, layer in pairs:
        ws = kl.get_weights()
        if ws or layer.weights_list:
            layer.set_weights(ws)


def from_keras(keras_model):
    """The equivalent cnnfast model (Sequential or functional Model) with the Keras weights
    copied; raises NotImplementedError for layers/arguments cnnfast does not run."""
    keras = import_keras()
    if not isinstance(keras_model, keras.Model):
        raise TypeError(f"from_keras expects a keras.Model, got {type(keras_model).__name__}")
    if isinstance(keras_model, keras.Sequential):
        model = Sequential(name=keras_model.name, trainable=keras_model.trainable)
        try:
            inputs = keras_model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if inputs:
            first = getattr(keras_model, "_layers", [None])[0]
            if isinstance(first, keras.layers.InputLayer):
                _check_input_layer(first)
            name = first.name if isinstance(first, keras.layers.InputLayer) else None
            model.add(_input_layer(inputs[0], name))
        pairs = []
        for kl in keras_model.layers:
            layer = _convert_layer(kl)
            model.add(layer)
            pairs.append((kl, layer))
        _copy_weights_from_keras(pairs)
        return model
    if type(keras_model).__name__ != "Functional":
        raise NotImplementedError(f"from_keras: subclassed Keras models "
                                  f"({type(keras_model).__name__}) are not supported; use a "
                                  "Sequential or functional model")
    in_struct = getattr(keras_model, "_inputs_struct", keras_model.inputs)
    out_struct = getattr(keras_model, "_outputs_struct", keras_model.outputs)
    if isinstance(in_struct, dict) or isinstance(out_struct, dict):
        raise NotImplementedError("from_keras: models with dict inputs/outputs are not supported")
    by_depth = getattr(keras_model, "_nodes_by_depth", None)
    model_nodes = [n for ns in by_depth.values() for n in ns] if isinstance(by_depth, dict) \
        else None
    tensors, pairs = {}, []
    for kl in keras_model.layers:
        if isinstance(kl, keras.layers.InputLayer):
            _check_input_layer(kl)
            t = _input_layer(kl.output, kl.name).output
            tensors[id(kl.output)] = t
            continue
        nodes = [n for n in model_nodes if n.operation is kl] if model_nodes is not None else \
            [n for n in kl._inbound_nodes if all(id(x) in tensors for x in n.input_tensors)]
        if len(nodes) != 1:
            raise NotImplementedError(f"Keras layer '{kl.name}' ({type(kl).__name__}) is called "
                                      f"{len(nodes)} times in this model; shared layers are not "
                                      "supported by cnnfast")
        node = nodes[0]
        if len(node.input_tensors) != 1 or len(node.output_tensors) != 1:
            raise NotImplementedError(f"Keras layer '{kl.name}' ({type(kl).__name__}) has "
                                      f"{len(node.input_tensors)} inputs; cnnfast layers take "
                                      "one")
        layer = _convert_layer(kl)
        tensors[id(node.output_tensors[0])] = layer(tensors[id(node.input_tensors[0])])
        pairs.append((kl, layer))
    ins = [tensors[id(t)] for t in keras_model.inputs]
    outs = [tensors[id(t)] for t in keras_model.outputs]
    model = Model(inputs=ins[0] if not isinstance(in_struct, (list, tuple)) else ins,
                  outputs=outs[0] if not isinstance(out_struct, (list, tuple)) else outs,
                  name=keras_model.name, trainable=keras_model.trainable)
    _copy_weights_from_keras(pairs)
    return model


def to_keras(model):
    """The equivalent tf.keras model with the same weights (uncompiled): `model.to_keras()`,
    whose body is cnnfast/models/keras_export.py."""
    return model.to_keras()
