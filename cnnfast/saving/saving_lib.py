"""What a model file holds and in which order it is written and read (Keras: saving_lib).

The file name picks the format on saving: `.keras` is Keras 3's zip, `.h5` / `.hdf5` the
legacy Keras HDF5 file (keras_files.py, readable by tf.keras), anything else - `.cnnfast` is
the recommended extension - cnnfast's own format (docs/file_format.md), which also keeps what
Keras cannot represent. Loading looks at the content, not the name, so every cnnfast file
ever written (older ones were often named `.keras` or `.weights.h5`) still loads.

The models call down into this module (`model.save`, `save_weights`, `load_weights`); it
reads a model only through its public view (`get_config`, `get_compile_config`, `layers`,
`built`, `compile`, `optimizer`) and rebuilds one with the registered class's `from_config`,
so it imports no model code. The format is described in docs/file_format.md.
"""
from __future__ import annotations

import os

from .. import utils
from . import keras_files, serialization, state
from .archive import (
    CONFIG,
    INDEX,
    MODEL_FORMAT,
    WEIGHTS_FORMAT,
    Archive,
    Source,
    check_dict,
    need,
    write_archive,
)


def _name(filepath):
    path = os.fspath(filepath)
    return (path if isinstance(path, str) else os.fsdecode(path)).lower()


def _keras_fallback_hint(fn, model, filepath, *args):
    try:
        return fn(model, filepath, *args)
    except NotImplementedError as e:
        raise NotImplementedError(f"{e}; cnnfast's own format keeps it: save to a `.cnnfast` "
                                  "file") from e


def save_model(model, filepath, overwrite=True):
    """Save architecture, weights, compile configuration and optimizer state to `filepath`:
    a Keras 3 `.keras` file or a legacy Keras `.h5` by the name's extension (tf.keras loads
    both), else cnnfast's own format (`.cnnfast`, docs/file_format.md). Atomic;
    `overwrite=False` raises FileExistsError if the file exists."""
    name = _name(filepath)
    if getattr(model, "_subclassed", False):
        # A subclassed model is saved in cnnfast's format whatever the name (its class, not
        # a layer graph, is what load_model rebuilds: register_keras_serializable /
        # custom_objects); the Keras writers hold built-in model classes only.
        return save_cnnfast(model, filepath, overwrite)
    if name.endswith(".keras"):
        return _keras_fallback_hint(keras_files.save_keras, model, filepath, overwrite)
    if name.endswith((".h5", ".hdf5")):
        return _keras_fallback_hint(keras_files.save_h5, model, filepath, overwrite)
    save_cnnfast(model, filepath, overwrite)


def save_cnnfast(model, filepath, overwrite=True):
    """Save the whole model in cnnfast's own format (docs/file_format.md), whatever the name."""
    config = {"class_name": serialization.model_class_name(model),
              "config": model.get_config(), "compile_config": model.get_compile_config()}
    if not serialization.is_builtin_model(model):
        # A subclassed model (Keras: the class's get_config, its registered name and the
        # input shape it was built for; an unregistered class saves, but loads only with
        # custom_objects=, as in Keras).
        if not getattr(model, "built", False) or model._tensors is None:
            raise ValueError(f"cannot save model '{model.name}': it has not been built yet "
                             "(call it on data, build(input_shape) or fit it first)")
        config["config"] = serialization.jsonable(config["config"])
        config["registered_name"] = serialization.get_registered_name(model)
        config["build_config"] = {"input_shape": serialization.jsonable(
            model.inputs[0].shape)}
        config["layer_names"] = [layer.name for layer in model.layers]
    _check_reloadable(config)
    arrays, index = state.weights_index(model)
    index["optimizer"] = state.optimizer_state(model, arrays)
    index["rng"] = state.rng_states(model)
    state.finish_index(index, arrays)
    write_archive(filepath, MODEL_FORMAT, config, index, arrays, overwrite)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model saved by `save_model` / `model.save`: same architecture and weights (predictions
    are bit-identical); with `compile=True` also compiled as it was, with the optimizer state
    restored so `fit` continues where it stopped. Reads cnnfast files and Keras files (`.keras`
    of Keras 3, legacy `.h5`) without TensorFlow. Raises ValueError for anything else (a
    Keras layer or option cnnfast lacks: NotImplementedError naming it). A subclassed
    model's class (cnnfast files) comes from keras.saving.register_keras_serializable or
    `custom_objects` ({"MyModel": MyModel}); a TypeError, as Keras's, when neither has it."""
    path = _existing(filepath)
    if keras_files.is_hdf5(path):
        return keras_files.load_h5(path, compile=compile)
    if keras_files.is_keras_zip(path):
        return keras_files.load_keras(path, compile=compile)
    with Archive(filepath) as ar:
        ar.expect(MODEL_FORMAT)
        config = ar.json(CONFIG)
        index = ar.json(INDEX)
        blob = ar.weights_blob(index)
        saved = state.check_index(ar, index, blob, with_optimizer=True)
        model = _model_from_config(ar, config, custom_objects)
        state.assign_weights(ar, model, saved, exact_names=True)
        if compile and config.get("compile_config") is not None:
            cc = config["compile_config"]
            opt, loss, metrics = serialization.deserialize_compile(ar, cc)
            model.compile(optimizer=opt, loss=loss, metrics=metrics,
                          weighted_metrics=serialization.deserialize_weighted_metrics(ar, cc))
            state.restore_optimizer(ar, model, saved["optimizer"])
        state.restore_rng(ar, model, saved["rng"])
    return model


def _existing(filepath):
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    return path


def save_weights(model, filepath, overwrite=True):
    """Save only the weights: a name ending in `.h5` (`x.weights.h5`, as Keras 3 requires)
    gets Keras 3's weights file, which tf.keras's load_weights reads (with the optimizer state
    of a compiled model, as Keras writes it); any other name cnnfast's weights format."""
    if not getattr(model, "built", False):
        raise ValueError(f"Model '{model.name}' has not been built yet, so it has no weights "
                         "to save: build it first (Input(...), input_shape=, or fit/predict)")
    if _name(filepath).endswith((".h5", ".hdf5")) and not getattr(model, "_subclassed", False):
        # (a subclassed model's weights: cnnfast's format whatever the name, see save_model)
        return _keras_fallback_hint(keras_files.save_keras_weights, model, filepath, overwrite)
    arrays, index = state.weights_index(model)
    index["optimizer"] = None
    index["rng"] = []
    state.finish_index(index, arrays)
    write_archive(filepath, WEIGHTS_FORMAT, None, index, arrays, overwrite)


def load_weights(model, filepath):
    """Load weights saved by `save_weights` (or the weights of a `save_model` file) into
    `model`, which must have the same architecture: the same sequence of layers with weights,
    and the same weight shapes (layer names may differ). Nothing is changed unless every
    array fits. Keras weights (`.weights.h5`, legacy `.h5`, a `.keras` file) load too."""
    path = _existing(filepath)
    if keras_files.is_hdf5(path) or keras_files.is_keras_zip(path):
        if not getattr(model, "built", False):
            raise ValueError(f"{path}: cannot load weights into model '{model.name}': it has "
                             "not been built yet (give it an Input or input_shape, or call it "
                             "on data first)")
        return keras_files.load_weights(model, path)
    with Archive(filepath) as ar:
        ar.expect(MODEL_FORMAT, WEIGHTS_FORMAT)
        index = ar.json(INDEX)
        blob = ar.weights_blob(index)
        saved = state.check_index(ar, index, blob, with_optimizer=False)
        if not getattr(model, "built", False):
            raise ValueError(f"{ar.path}: cannot load weights into model '{model.name}': it has "
                             "not been built yet (give it an Input or input_shape, or call it "
                             "on data first)")
        state.assign_weights(ar, model, saved, exact_names=False)


def _model_from_config(src, config, custom_objects=None):
    check_dict(src, config, CONFIG, ("class_name", "config"),
               ("compile_config", "registered_name", "build_config", "layer_names"))
    kind = config["class_name"]
    if "registered_name" in config:
        return _subclassed_from_config(src, config, custom_objects)
    cls = serialization.MODEL_CLASSES.get(kind) if isinstance(kind, str) else None
    need(src, cls is not None, f"unknown model class {kind!r}; expected 'Sequential' or 'Model'")
    try:
        return cls.from_config(config["config"])
    except ValueError as e:      # from_config names the problem; the file is named here
        src.fail(str(e))


def _subclassed_from_config(src, config, custom_objects):
    kind, reg = config["class_name"], config["registered_name"]
    need(src, isinstance(kind, str) and isinstance(reg, str), f"{CONFIG}: 'class_name' and "
         "'registered_name' must be strings")
    bc = config.get("build_config")
    check_dict(src, bc, f"{CONFIG} build_config", ("input_shape",))
    shape = bc["input_shape"]
    need(src, isinstance(shape, list) and len(shape) >= 2 and all(
        d is None or (isinstance(d, int) and 0 < d < 2**31) for d in shape),
        f"{CONFIG} build_config: invalid input_shape {shape!r}")
    names = config.get("layer_names")
    need(src, isinstance(names, list) and all(isinstance(n, str) for n in names),
         f"{CONFIG}: 'layer_names' must be a list of strings")
    cls = serialization.get_registered_object(reg, custom_objects) or \
        serialization.get_registered_object(kind, custom_objects)
    if cls is None:
        raise TypeError(f"Could not locate class '{kind}'. Make sure custom classes are "
                        "decorated with `@keras.saving.register_keras_serializable()` (or pass "
                        f"custom_objects={{'{kind}': {kind}}} to load_model). If they are "
                        "already decorated, make sure they are all imported so that the "
                        f"decorator is run before trying to load them. File: {src.path}")
    rng_state = utils.rng().bit_generator.state   # building draws initial weights
    try:
        model = cls.from_config(config["config"])
        model.build(tuple(shape))
    except (TypeError, ValueError, NotImplementedError) as e:
        src.fail(f"cannot rebuild {kind} from its config: {e}")
    finally:
        utils.rng().bit_generator.state = rng_state
    layers = model.layers
    need(src, len(layers) == len(names), f"{kind} has {len(layers)} layers after building, "
         f"the file {len(names)} {names}: different architecture")
    for layer, name in zip(layers, names):   # the saved names, so weights and rng match
        layer.name = name
    return model


def _check_reloadable(config):
    """Save refuses what load would refuse (e.g. a custom initializer object)."""
    src = Source("<model being saved>")
    rng_state = utils.rng().bit_generator.state
    try:
        functional = config["class_name"] == "Model"
        for i, e in enumerate([] if "registered_name" in config else config["config"]["layers"]):
            serialization.deserialize_layer(src, i, e, functional)
        cc = config["compile_config"]
        if cc is not None:
            serialization.deserialize_compile(src, cc)
    finally:
        utils.rng().bit_generator.state = rng_state
