"""Interop with tf.keras: convert models both ways, weights included.

    cf_model = cnnfast.from_keras(keras_model)     # Sequential -> Sequential, functional -> Model
    keras_model = cf_model.to_keras()

Supported Keras layers: InputLayer, Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D,
AveragePooling2D, Dense, Flatten, Dropout, Activation, ReLU, Softmax, with the arguments
cnnfast runs (channels_last, no groups, no regularizers/constraints, float32, the cnnfast
activations). Anything else raises NotImplementedError naming the layer and the argument.
Weight initializers are carried over when cnnfast has them (Glorot/He uniform/normal, zeros,
ones) and otherwise replaced by the default: they only matter for fresh weights, and the
weights are copied. The converted model is not compiled; compile it as usual. TensorFlow is
imported lazily, only by these functions.
"""
from __future__ import annotations

from . import layers as layers_mod
from .layers._util import deserialize_initializer
from .layers.base import InputLayer
from .models.keras_export import import_keras
from .models.model import Model
from .models.sequential import Sequential

_DEFAULT = object()
_COMMON = ("name", "trainable", "dtype")
# class -> (arguments passed on, {argument: value cnnfast requires})
_SPECS = {
    "Conv2D": (("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation",
                "use_bias", "kernel_initializer", "bias_initializer"),
               {"data_format": "channels_last", "groups": 1,
                "kernel_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None}),
    "DepthwiseConv2D": (("kernel_size", "strides", "padding", "depth_multiplier",
                         "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                         "bias_initializer"),
                        {"data_format": "channels_last", "depthwise_regularizer": None,
                         "bias_regularizer": None, "activity_regularizer": None,
                         "depthwise_constraint": None, "bias_constraint": None}),
    "SeparableConv2D": (("filters", "kernel_size", "strides", "padding", "depth_multiplier",
                         "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                         "pointwise_initializer", "bias_initializer"),
                        {"data_format": "channels_last", "depthwise_regularizer": None,
                         "pointwise_regularizer": None, "bias_regularizer": None,
                         "activity_regularizer": None, "depthwise_constraint": None,
                         "pointwise_constraint": None, "bias_constraint": None}),
    "Dense": (("units", "activation", "use_bias", "kernel_initializer", "bias_initializer"),
              {"kernel_regularizer": None, "bias_regularizer": None,
               "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
               "lora_rank": None, "lora_alpha": None, "quantization_config": None}),
    "MaxPooling2D": (("pool_size", "strides", "padding"), {"data_format": "channels_last"}),
    "AveragePooling2D": (("pool_size", "strides", "padding"), {"data_format": "channels_last"}),
    "Flatten": ((), {"data_format": "channels_last"}),
    "Dropout": (("rate", "seed"), {"noise_shape": None}),
    "Activation": (("activation",), {}),
    "ReLU": ((), {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}),
    "Softmax": ((), {"axis": -1}),
}
_INIT_FROM_KERAS = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal",
                    "HeNormal": "he_normal", "HeUniform": "he_uniform", "Zeros": "zeros",
                    "Ones": "ones"}


def _same(value, required):
    """Whether a Keras config value equals the one cnnfast requires."""
    if isinstance(required, tuple):
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,) * len(required)
        return isinstance(value, (list, tuple)) and tuple(value) == required
    if required is None or isinstance(required, str):
        return value == required
    if isinstance(value, (list, tuple)) and len(value) == 1:   # Softmax(axis=[-1])
        value = value[0]
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == required


def _unsupported(kl, arg, value):
    return NotImplementedError(f"Keras layer '{kl.name}' ({type(kl).__name__}): argument "
                               f"{arg}={value!r} is not supported by cnnfast")


def _dtype_name(dtype):
    if isinstance(dtype, dict):
        return (dtype.get("config") or {}).get("name")
    return getattr(dtype, "name", dtype)


def _initializer(value, default):
    if value is None or isinstance(value, str):
        return value or default
    if isinstance(value, dict):
        name = _INIT_FROM_KERAS.get(value.get("class_name"))
        seed = (value.get("config") or {}).get("seed")
        if name is None:
            return default
        if seed is None or name in ("zeros", "ones"):
            return name
        return deserialize_initializer({"class_name": value["class_name"],
                                        "config": {"seed": int(seed)}}, "from_keras")
    return default


def _convert_layer(kl):
    cls = type(kl).__name__
    if cls not in _SPECS:
        raise NotImplementedError(
            f"Keras layer '{kl.name}' ({cls}) is not supported by cnnfast; supported layers: "
            f"InputLayer, {', '.join(sorted(_SPECS))}")
    passed, required = _SPECS[cls]
    cfg = kl.get_config()
    dtype = _dtype_name(cfg.get("dtype"))
    if dtype not in (None, "float32"):
        raise _unsupported(kl, "dtype", dtype)
    kwargs = {"name": cfg.get("name", kl.name), "trainable": bool(kl.trainable)}
    for key, value in cfg.items():
        if key in _COMMON:
            continue
        if key in passed:
            if key.endswith("_initializer"):
                value = _initializer(value, "zeros" if key.startswith("bias") else
                                     "glorot_uniform")
            elif key == "activation" and isinstance(value, dict):
                raise _unsupported(kl, key, value.get("class_name", value))
            kwargs[key] = value
        elif key in required:
            if not _same(value, required[key]):
                raise _unsupported(kl, key, value)
        elif value not in (None, False):
            raise _unsupported(kl, key, value)
    try:
        return getattr(layers_mod, cls)(**kwargs)
    except (NotImplementedError, ValueError, TypeError) as e:
        raise NotImplementedError(f"Keras layer '{kl.name}' ({cls}): {e}") from e


def _input_layer(kl_or_tensor, name):
    shape = tuple(kl_or_tensor.shape)
    return InputLayer(batch_shape=tuple(None if d is None else int(d) for d in shape), name=name)


def _check_input_layer(kl):
    cfg = kl.get_config()
    for key in ("sparse", "ragged", "optional"):
        if cfg.get(key):
            raise _unsupported(kl, key, cfg[key])
    dtype = _dtype_name(cfg.get("dtype"))
    if dtype not in (None, "float32"):
        raise _unsupported(kl, "dtype", dtype)


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
