"""The tutorial architectures by name, and models from a Keras-style JSON layer list.

    from cnnfast import zoo
    model = zoo.build("cnn")                   # the tf.keras tutorials' Fashion-MNIST CNN
    model = zoo.from_spec("my_model.json")     # [{"class_name": "Conv2D", "config": {...}}, ...]

=====  ==========================================================================  ==========
name   layers                                                                      params
=====  ==========================================================================  ==========
mlp    Flatten(28, 28) > Dense 128 relu > Dropout 0.2 > Dense 10 softmax              101,770
cnn    Conv 32 same > MaxPool > Conv 64 same > MaxPool > Flatten > Dense 128 >       421,642
       Dense 10 softmax (TensorFlow's Fashion-MNIST CNN, examples/train_fashion_mnist.py)
cnn2   Conv 32 > Conv 64 > MaxPool > Dropout .25 > Flatten > Dense 128 > Dropout .5 >  1,199,882
       Dense 10 softmax (the Keras ``mnist_cnn.py`` example)
cnn3   Conv 32 > MaxPool > Conv 64 > MaxPool > Conv 64 > MaxPool > Flatten >             94,154
       Dense 512 relu > Dense 10 softmax (three conv + pool blocks)
=====  ==========================================================================  ==========

All convolutions are 3x3 with ReLU ("valid" padding unless "same" is shown); pools are 2x2.
cnn3: 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1, so Flatten gives 64 features and the Dense 512 layer
has 64*512+512 = 33,280 weights: 320 + 18,496 + 36,928 + 33,280 + 5,130 = 94,154.
"""
from __future__ import annotations

import json

from . import layers as L
from .models import Sequential

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

#: The expected ``count_params()`` of each named architecture (checked by the tests).
PARAMS = {"mlp": 101_770, "cnn": 421_642, "cnn2": 1_199_882, "cnn3": 94_154}

DESCRIPTIONS = {
    "mlp": "Flatten > Dense 128 relu > Dropout 0.2 > Dense 10 softmax",
    "cnn": "Conv 32 same > MaxPool > Conv 64 same > MaxPool > Flatten > Dense 128 > Dense 10",
    "cnn2": "Conv 32 > Conv 64 > MaxPool > Dropout 0.25 > Flatten > Dense 128 > Dropout 0.5 > "
            "Dense 10",
    "cnn3": "Conv 32 > MaxPool > Conv 64 > MaxPool > Conv 64 > MaxPool > Flatten > Dense 512 > "
            "Dense 10",
}


def _mlp():
    return [L.Flatten(input_shape=(28, 28)),
            L.Dense(128, activation="relu"),
            L.Dropout(0.2),
            L.Dense(10, activation="softmax")]


def _cnn():
    return [L.Input(shape=INPUT_SHAPE),
            L.Conv2D(32, (3, 3), padding="same", activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), padding="same", activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax")]


def _cnn2():
    return [L.Input(shape=INPUT_SHAPE),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dropout(0.5),
            L.Dense(10, activation="softmax")]


def _cnn3():
    return [L.Input(shape=INPUT_SHAPE),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Flatten(),
            L.Dense(512, activation="relu"),
            L.Dense(10, activation="softmax")]


_BUILDERS = {"mlp": _mlp, "cnn": _cnn, "cnn2": _cnn2, "cnn3": _cnn3}
NAMES = tuple(_BUILDERS)


def build(name):
    """A fresh (uncompiled) Sequential for one of NAMES ('mlp', 'cnn', 'cnn2', 'cnn3')."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}") from None
    return Sequential(builder(), name=name)


class SpecError(ValueError):
    """A JSON model spec that cannot be turned into layers."""


# Keys of a Keras layer config that carry nothing cnnfast needs (defaults written by Keras).
_DROP_IF_NONE = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                 "kernel_constraint", "bias_constraint", "noise_shape", "seed", "lora_rank",
                 "data_format", "batch_size")
_IGNORED = ("build_config", "module", "registered_name")


def _layer_from_entry(entry, i):
    if not isinstance(entry, dict):
        raise SpecError(f"layer {i}: expected an object like {{\"class_name\": \"Dense\", "
                        f"\"config\": {{\"units\": 10}}}}, got {entry!r}")
    entry = {k: v for k, v in entry.items() if k not in _IGNORED}
    cls_name = entry.pop("class_name", None) or entry.pop("type", None)
    if not cls_name:
        raise SpecError(f"layer {i}: missing \"class_name\"")
    config = dict(entry.pop("config", {}))
    config.update(entry)  # short form: {"class_name": "Dense", "units": 10}
    if cls_name in ("Input", "InputLayer"):
        shape = config.get("shape") or config.get("input_shape")
        if shape is None and config.get("batch_shape") is not None:
            shape = config["batch_shape"][1:]
        if shape is None and config.get("batch_input_shape") is not None:
            shape = config["batch_input_shape"][1:]
        if shape is None:
            raise SpecError(f"layer {i} ({cls_name}): give its \"shape\", e.g. [28, 28, 1]")
        return L.InputLayer(shape=tuple(shape))
    cls = getattr(L, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, L.Layer):
        raise SpecError(f"layer {i}: unknown layer class {cls_name!r}")
    for key in _DROP_IF_NONE:
        if key in config and config[key] is None:
            del config[key]
    if config.get("data_format") == "channels_last":
        del config["data_format"]
    if isinstance(config.get("dtype"), dict):  # Keras 3 dtype policy
        config.pop("dtype")
    for key in ("kernel_initializer", "bias_initializer"):
        if isinstance(config.get(key), dict):  # {"class_name": "GlorotUniform", ...}
            config[key] = config[key].get("class_name")
    try:
        return cls(**config)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise SpecError(f"layer {i} ({cls_name}): {e}") from None


def from_layer_list(spec, name="custom"):
    """A Sequential from a Keras-style layer list (or a Keras Sequential config dict). Adds
    Input(shape=(28, 28, 1)) in front when the first layer gives no input shape."""
    if isinstance(spec, dict):
        spec = spec.get("config", spec)
        if isinstance(spec, dict):
            name = spec.get("name", name)
            spec = spec.get("layers")
    if not isinstance(spec, list) or not spec:
        raise SpecError("the spec must be a non-empty JSON list of layers (or a Keras "
                        "Sequential config with a \"layers\" list)")
    built = [_layer_from_entry(e, i) for i, e in enumerate(spec)]
    first = built[0]
    if not isinstance(first, L.InputLayer) and first._batch_input_shape is None:
        built.insert(0, L.InputLayer(shape=INPUT_SHAPE))
    try:
        return Sequential(built, name=name)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise SpecError(str(e)) from None


def from_spec(path):
    """A Sequential from a JSON file holding a Keras-style layer list (see from_layer_list)."""
    with open(path, encoding="utf-8") as f:
        try:
            spec = json.load(f)
        except json.JSONDecodeError as e:
            raise SpecError(f"{path} is not valid JSON: {e}") from None
    return from_layer_list(spec, name="custom")


def to_layer_list(model):
    """The model's layers as a Keras-style list ([{"class_name": ..., "config": {...}}]), the
    format from_layer_list reads back (architecture only, no weights)."""
    out = [{"class_name": "InputLayer", "config": {"shape": list(model.inputs[0].shape[1:])}}]
    for layer in model.layers:
        config = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in layer.get_config().items() if k not in ("name", "dtype")}
        out.append({"class_name": type(layer).__name__, "config": config})
    return out
