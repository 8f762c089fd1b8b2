"""Objects <-> JSON-able configs, for the whitelisted classes only (Keras: serialization_lib).

Only the classes listed here are ever constructed from a file: no imports driven by the file,
no pickle, no eval. Layer, optimizer and loss classes sit below saving and are listed
directly. Model classes sit above it (cnnfast.models imports this module to build its
get_config/from_config), so they enter the whitelist from there, with @register_model_class.
"""
from __future__ import annotations

import math

import numpy as np

from .. import layers as layers_mod
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..layers.base import InputLayer
from .archive import check_dict, is_int, need

LAYER_CLASSES = {cls.__name__: cls for cls in (
    layers_mod.InputLayer, layers_mod.Conv2D, layers_mod.MaxPooling2D,
    layers_mod.AveragePooling2D, layers_mod.Dense, layers_mod.Flatten, layers_mod.Dropout,
    layers_mod.Activation, layers_mod.ReLU, layers_mod.Softmax,
    layers_mod.BatchNormalization, layers_mod.GlobalAveragePooling2D,
    layers_mod.GlobalMaxPooling2D, layers_mod.LeakyReLU, layers_mod.ELU, layers_mod.PReLU,
    layers_mod.SpatialDropout2D, layers_mod.RandomFlip, layers_mod.RandomRotation,
    layers_mod.RandomZoom, layers_mod.Rescaling, layers_mod.Reshape, layers_mod.ZeroPadding2D,
    layers_mod.DepthwiseConv2D, layers_mod.SeparableConv2D, layers_mod.RandomTranslation,
    layers_mod.RandomContrast, layers_mod.RandomCrop)}
OPTIMIZER_CLASSES = {cls.__name__: cls for cls in (
    optimizers_mod.Adam, optimizers_mod.SGD, optimizers_mod.RMSprop, optimizers_mod.AdamW,
    optimizers_mod.Nadam, optimizers_mod.Adamax, optimizers_mod.Adagrad,
    optimizers_mod.Adadelta)}
LOSS_CLASSES = {cls.__name__: cls for cls in losses_mod.LOSS_CLASSES}
MODEL_CLASSES = {}      # "Sequential", "Model": filled by cnnfast.models


def register_model_class(cls):
    """Class decorator: `cls` is saved as config.json's class_name cls.__name__ and rebuilt
    with cls.from_config. Exactly the registered class (not a subclass) is saveable."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


# User classes registered with keras.saving.register_keras_serializable: "package>name" ->
# class. Loading constructs a custom class only from here (or the custom_objects given to
# load_model), never by importing a module the file names.
CUSTOM_OBJECTS = {}


def register_keras_serializable(package="Custom", name=None):
    """Class decorator (Keras: saving.register_keras_serializable): a subclassed model saved
    by model.save is rebuilt at load with `cls.from_config(cls.get_config())`, then built
    and given its weights."""
    def decorator(cls):
        key = f"{package}>{name or cls.__name__}"
        if key in CUSTOM_OBJECTS and CUSTOM_OBJECTS[key] is not cls:
            raise ValueError(f"{key} has already been registered to {CUSTOM_OBJECTS[key]}")
        CUSTOM_OBJECTS[key] = cls
        cls._registered_name = key
        return cls
    return decorator


def get_registered_name(obj):
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("_registered_name", cls.__name__)


def get_registered_object(name, custom_objects=None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return CUSTOM_OBJECTS.get(name)


def is_builtin_model(model):
    return MODEL_CLASSES.get(type(model).__name__) is type(model)


def model_class_name(model):
    """The class_name a model is saved under; ValueError for a class load could not rebuild."""
    name = type(model).__name__
    if not is_builtin_model(model) and not getattr(model, "_subclassed", False):
        raise ValueError(f"cannot save a {name}: only Sequential, functional Model and "
                         "subclassed keras.Model instances are supported")
    return name


def jsonable(obj):
    """Tuples -> lists, numpy scalars -> Python; raises on anything JSON cannot hold."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"cannot save a non-finite number {obj!r} in a config")
        return obj
    raise ValueError(f"cannot save {obj!r} ({type(obj).__name__}) in a config")


# =============================================================================================
# layers
# =============================================================================================
def serialize_layer(layer):
    """{"class_name", "config"} for a whitelisted layer; ValueError for any other."""
    cls = type(layer).__name__
    if LAYER_CLASSES.get(cls) is not type(layer):
        raise ValueError(f"cannot save layer '{layer.name}': class {cls} is not one of the "
                         f"saveable layer classes {sorted(LAYER_CLASSES)}")
    return {"class_name": cls, "config": layer.get_config()}


def _check_batch_shape(src, shape, what):
    ok = isinstance(shape, list) and len(shape) >= 2 and all(
        d is None or (is_int(d) and 0 < d < 2**31) for d in shape)
    need(src, ok, f"{what}: invalid shape {shape!r} (a list: batch size, then positive ints)")


def deserialize_layer(src, i, entry, functional=False):
    """A new layer from entry i of a model config's "layers" (a functional entry also has
    "inbound", which the caller reads). Every problem is src.fail naming the layer."""
    keys = ("class_name", "config", "inbound") if functional else ("class_name", "config")
    check_dict(src, entry, f"layer {i}", keys)
    cls_name = entry["class_name"]
    cls = LAYER_CLASSES.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None:
        src.fail(f"layer {i}: unknown layer class {cls_name!r}; this cnnfast can load "
                 f"{sorted(LAYER_CLASSES)}")
    cfg = entry["config"]
    need(src, isinstance(cfg, dict), f"layer {i} ({cls_name}): config must be a JSON object")
    name = cfg.get("name")
    need(src, isinstance(name, str) and name,
         f"layer {i} ({cls_name}): config needs a non-empty string 'name'")
    where = f"layer {i} ({cls_name} '{name}')"
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            _check_batch_shape(src, cfg[key], f"{where}: {key}")
    if cls is InputLayer:
        need(src, cfg.get("batch_shape") is not None, f"{where}: config needs 'batch_shape'")
    try:
        return cls.from_config(cfg)
    except (TypeError, ValueError, NotImplementedError, OverflowError) as e:
        src.fail(f"{where}: invalid config: {e}")


# =============================================================================================
# compile configuration
# =============================================================================================
def serialize_compile(optimizer, loss, metrics, weighted_metrics=()):
    """config.json's "compile_config" for what compile() was given (instances); the key
    "weighted_metrics" only when there are some (files without them stay as they were)."""
    if OPTIMIZER_CLASSES.get(type(optimizer).__name__) is not type(optimizer):
        raise ValueError(f"cannot save optimizer {type(optimizer).__name__}: supported "
                         f"{sorted(OPTIMIZER_CLASSES)}")
    if loss is not None and LOSS_CLASSES.get(type(loss).__name__) is not type(loss):
        raise ValueError(f"cannot save loss {type(loss).__name__}: supported "
                         f"{sorted(LOSS_CLASSES)}")
    cc = {
        "optimizer": {"class_name": type(optimizer).__name__, "config": optimizer.get_config()},
        "loss": None if loss is None else {"class_name": type(loss).__name__,
                                           "config": loss.get_config()},
        "metrics": [serialize_metric(m) for m in metrics]}
    if weighted_metrics:
        cc["weighted_metrics"] = [serialize_metric(m) for m in weighted_metrics]
    return jsonable(cc)


def serialize_metric(m):
    cls = type(m).__name__
    if metrics_mod.METRIC_CLASSES.get(cls) is not type(m):
        raise ValueError(f"cannot save metric {cls}: supported "
                         f"{sorted(metrics_mod.METRIC_CLASSES)}")
    return {"class_name": cls, "config": m.get_config()}


def _from_class_config(src, spec, classes, what):
    """Construct a whitelisted class from {"class_name", "config"} (what: 'optimizer'/'loss')."""
    check_dict(src, spec, f"compile_config.{what}", ("class_name", "config"))
    name = spec["class_name"]
    cls = classes.get(name) if isinstance(name, str) else None
    need(src, cls is not None, f"unknown {what} class {name!r}; supported {sorted(classes)}")
    need(src, isinstance(spec["config"], dict), f"compile_config.{what}.config must be an object")
    try:
        # Optimizers rebuild a schedule's dict (whitelisted schedules only) in from_config.
        build = cls.from_config if what == "optimizer" else (lambda c: cls(**c))
        return build(spec["config"])
    except (TypeError, ValueError, NotImplementedError) as e:
        src.fail(f"invalid {name} {what} config: {e}")


def deserialize_compile(src, cc):
    """(optimizer, loss, metrics) instances for model.compile from a "compile_config"
    (its weighted metrics: deserialize_weighted_metrics)."""
    check_dict(src, cc, "compile_config", ("optimizer", "loss", "metrics"),
               ("weighted_metrics",))
    deserialize_weighted_metrics(src, cc)
    opt = _from_class_config(src, cc["optimizer"], OPTIMIZER_CLASSES, "optimizer")
    loss = None
    if cc["loss"] is not None:
        loss = _from_class_config(src, cc["loss"], LOSS_CLASSES, "loss")
    need(src, isinstance(cc["metrics"], list), "compile_config.metrics must be a list")
    metrics = []
    for m in cc["metrics"]:
        if isinstance(m, dict) and "kind" in m:  # files before the metric classes: accuracy
            check_dict(src, m, "compile_config.metrics entry", ("name", "kind"))
            need(src, isinstance(m["name"], str) and m["kind"] in ("sparse", "categorical"),
                 f"invalid metric {m!r}: needs a string name and kind 'sparse' or "
                 "'categorical'")
            metrics.append(metrics_mod.Accuracy(name=m["name"], kind=m["kind"]))
            continue
        metrics.append(_from_class_config(src, m, metrics_mod.METRIC_CLASSES, "metric"))
    return opt, loss, metrics


def deserialize_weighted_metrics(src, cc):
    """The weighted metrics (instances) of a "compile_config", [] when it has none."""
    raw = cc.get("weighted_metrics", [])
    need(src, isinstance(raw, list), "compile_config.weighted_metrics must be a list")
    return [_from_class_config(src, m, metrics_mod.METRIC_CLASSES, "metric") for m in raw]
