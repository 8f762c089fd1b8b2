"""Saving and loading models: a safe, versioned, pickle-free file format.

    model.save("mnist.cnnfast")                 # architecture + weights + compile + optimizer
    model = cnnfast.models.load_model("mnist.cnnfast")
    model.save_weights("mnist.weights.h5")      # weights only
    model.load_weights("mnist.weights.h5")      # into a model of the same architecture

File format, version 1
----------------------
A file is a ZIP archive holding exactly these members (nothing else is accepted):

``metadata.json``
    ``{"format": "cnnfast.model", "version": 1, "cnnfast_version": "0.1.0"}``; weights-only
    files say ``"format": "cnnfast.weights"``.
``config.json`` (model files only)
    ``{"class_name": "Sequential" | "Model", "config": ..., "compile_config": ...}``. The
    architecture lists every layer as ``{"class_name", "config"}`` where config is the layer's
    ``get_config()``; a functional model adds, per layer, ``"inbound"`` (the name of the layer
    whose output it consumes; null for inputs), plus ``"input_layers"`` / ``"output_layers"``
    (names, in order) and whether inputs/outputs were given as a single tensor or a list.
    ``compile_config`` is null or ``{"optimizer": {"class_name", "config"}, "loss":
    {"class_name", "config"} | null, "metrics": [{"name", "kind"}]}``.
``weights.json``
    The index of ``weights.bin``: ``{"dtype": "<f4", "nbytes": N, "sha256": hex, "layers":
    [{"name", "class_name", "weights": [{"name", "shape", "offset"}]}], "optimizer": null |
    {"iterations": k, "slots": null | [[{"shape", "offset"} | null, ...] per trained weight]},
    "rng": [{"layer", "state"}]}``. Only layers that own weights are listed, in model order.
    ``optimizer`` (model files) lets training resume exactly where it stopped: the optimizer's
    step counter and slot arrays (momenta, Adam's m/v). ``rng`` holds the stream state of
    seeded Dropout layers. (cnnfast's global stream behind shuffling and unseeded dropout is
    not part of a model: seed it with ``cnnfast.utils.set_random_seed``.)
``weights.bin``
    All arrays back to back, in index order: raw little-endian float32, C order, stored
    uncompressed.

Any file name is accepted. ``.cnnfast`` is the recommended extension; ``.keras`` (and, for
``save_weights``, ``.weights.h5``) also work so tutorial code runs unchanged, but the content is
always cnnfast's own format above - not a Keras zip and not HDF5 - so Keras cannot read it
(use ``model.to_keras()`` for that). Entries carry a fixed timestamp, so saving the same model
twice gives identical bytes.

Safety: no ``pickle``, no ``eval``, no imports driven by the file. Only the whitelisted layer,
optimizer, loss and initializer classes below are ever constructed, JSON is parsed strictly
(no NaN/Infinity constants, no duplicate keys), member sizes are bounded, and every weight is
checked (shape, size, offsets, SHA-256, finiteness) before any model is touched. Every problem
with a file is a ``ValueError`` naming the file and the problem.

Writes are atomic: the archive is written to a temporary file in the destination directory,
fsynced and renamed over the destination with ``os.replace``, so a crash or an exception
leaves either the old file or the complete new one, never a partial file.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from . import layers as layers_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from . import utils
from .layers.base import InputLayer

FORMAT_VERSION = 1
MODEL_FORMAT = "cnnfast.model"
WEIGHTS_FORMAT = "cnnfast.weights"

LAYER_CLASSES = {cls.__name__: cls for cls in (
    layers_mod.InputLayer, layers_mod.Conv2D, layers_mod.MaxPooling2D,
    layers_mod.AveragePooling2D, layers_mod.Dense, layers_mod.Flatten, layers_mod.Dropout,
    layers_mod.Activation, layers_mod.ReLU, layers_mod.Softmax)}
OPTIMIZER_CLASSES = {cls.__name__: cls for cls in (
    optimizers_mod.Adam, optimizers_mod.SGD, optimizers_mod.RMSprop)}
LOSS_CLASSES = {cls.__name__: cls for cls in (
    losses_mod.SparseCategoricalCrossentropy, losses_mod.CategoricalCrossentropy)}

_META, _CONFIG, _INDEX, _BIN = "metadata.json", "config.json", "weights.json", "weights.bin"
_MEMBERS = {MODEL_FORMAT: (_META, _CONFIG, _INDEX, _BIN), WEIGHTS_FORMAT: (_META, _INDEX, _BIN)}
_JSON_LIMIT = 64 << 20          # bytes per JSON member
_DTYPE = "<f4"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _version():
    from . import __version__
    return __version__


# =============================================================================================
# public API
# =============================================================================================
def save_model(model, filepath, overwrite=True):
    """Save architecture, weights, compile configuration and optimizer state to `filepath`
    (a ZIP archive; see the module docstring). Atomic; `overwrite=False` raises
    FileExistsError if the file exists."""
    config = {"class_name": _model_class_name(model), "config": model_config(model),
              "compile_config": _compile_config(model)}
    _check_reloadable(config)
    arrays, index = _weights_index(model)
    index["optimizer"] = _optimizer_state(model, arrays)
    index["rng"] = _rng_states(model)
    _finish_index(index, arrays)
    _write_archive(filepath, MODEL_FORMAT, config, index, arrays, overwrite)


def load_model(filepath, compile=True):
    """A model saved by `save_model` / `model.save`: same architecture and weights (predictions
    are bit-identical); with `compile=True` also compiled as it was, with the optimizer state
    restored so `fit` continues where it stopped. Raises ValueError for anything but a valid
    cnnfast model file."""
    with _Archive(filepath) as ar:
        ar.expect(MODEL_FORMAT)
        config = ar.json(_CONFIG)
        index = ar.json(_INDEX)
        blob = ar.weights_blob(index)
        saved = _check_index(ar, index, blob, with_optimizer=True)
        model = _build_model(ar, config)
        _assign_weights(ar, model, saved, exact_names=True)
        if compile and config.get("compile_config") is not None:
            _compile_from_config(ar, model, config["compile_config"])
            _restore_optimizer(ar, model, saved["optimizer"])
        _restore_rng(ar, model, saved["rng"])
    return model


def save_weights(model, filepath, overwrite=True):
    """Save only the weights (format "cnnfast.weights"). Any name works, including the
    `.weights.h5` names Keras tutorials use - but the file is cnnfast's ZIP format, not HDF5."""
    if not getattr(model, "built", False):
        raise ValueError(f"Model '{model.name}' has not been built yet, so it has no weights "
                         "to save: build it first (Input(...), input_shape=, or fit/predict)")
    arrays, index = _weights_index(model)
    index["optimizer"] = None
    index["rng"] = []
    _finish_index(index, arrays)
    _write_archive(filepath, WEIGHTS_FORMAT, None, index, arrays, overwrite)


def load_weights(model, filepath):
    """Load weights saved by `save_weights` (or the weights of a `save_model` file) into
    `model`, which must have the same architecture: the same sequence of layers with weights,
    and the same weight shapes (layer names may differ). Nothing is changed unless every
    array fits."""
    with _Archive(filepath) as ar:
        ar.expect(MODEL_FORMAT, WEIGHTS_FORMAT)
        index = ar.json(_INDEX)
        blob = ar.weights_blob(index)
        saved = _check_index(ar, index, blob, with_optimizer=False)
        if not getattr(model, "built", False) or model._tensors is None:
            raise ValueError(f"{ar.path}: cannot load weights into model '{model.name}': it has "
                             "not been built yet (give it an Input or input_shape, or call it "
                             "on data first)")
        _assign_weights(ar, model, saved, exact_names=False)


class SavingMixin:
    """save / save_weights / load_weights / get_config / to_keras for Model and Sequential."""

    def save(self, filepath, overwrite=True):
        """Save the whole model (see cnnfast.saving); reload with cnnfast.models.load_model."""
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only (see cnnfast.saving.save_weights)."""
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved from a model of the same architecture."""
        load_weights(self, filepath)

    def get_config(self):
        """The architecture as JSON-able data (what config.json stores)."""
        return model_config(self)

    @classmethod
    def from_config(cls, config):
        """A new (uncompiled, freshly initialised) model from get_config() output."""
        return _build_model(_Source("<config>"), {"class_name": "Sequential" if
                                                  _is_sequential_class(cls) else "Model",
                                                  "config": config})

    def to_keras(self):
        """The equivalent tf.keras model with the same weights (needs TensorFlow)."""
        from .interop import to_keras
        return to_keras(self)


# =============================================================================================
# architecture <-> config
# =============================================================================================
def _is_sequential_class(cls):
    from .models.sequential import Sequential
    return issubclass(cls, Sequential)


def _model_class_name(model):
    from .models.model import Model
    from .models.sequential import Sequential
    if type(model) is Sequential:
        return "Sequential"
    if type(model) is Model:
        return "Model"
    raise ValueError(f"cannot save a {type(model).__name__}: only Sequential and functional "
                     "Model instances are supported")


def _layer_entry(layer):
    cls = type(layer).__name__
    if LAYER_CLASSES.get(cls) is not type(layer):
        raise ValueError(f"cannot save layer '{layer.name}': class {cls} is not one of the "
                         f"saveable layer classes {sorted(LAYER_CLASSES)}")
    return {"class_name": cls, "config": layer.get_config()}


def model_config(model):
    """JSON-able description of the architecture (see the module docstring)."""
    _model_class_name(model)
    if _is_sequential_class(type(model)):
        entries = []
        if model._input_layer is not None:
            entries.append(_layer_entry(model._input_layer))
        entries += [_layer_entry(layer) for layer in model._layers]
        return _jsonable({"name": model.name, "trainable": bool(model.trainable),
                          "layers": entries})
    producer = {id(layer): model._tensors[i]._layer.name for layer, i, _ in model._plan}
    entries = []
    for layer in model.layers:
        e = _layer_entry(layer)
        e["inbound"] = None if isinstance(layer, InputLayer) else producer[id(layer)]
        entries.append(e)
    names = [e["config"]["name"] for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"cannot save model '{model.name}': layer names must be unique, "
                         f"{dup} occur more than once")
    return _jsonable({
        "name": model.name, "trainable": bool(model.trainable), "layers": entries,
        "input_layers": [model._tensors[i]._layer.name for i in model._input_ids],
        "output_layers": [model._tensors[i]._layer.name for i in model._output_ids],
        "single_input": bool(model._single_input), "single_output": bool(model._single_output)})


def _jsonable(obj):
    """Tuples -> lists, numpy scalars -> Python; raises on anything JSON cannot hold."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"cannot save a non-finite number {obj!r} in a config")
        return obj
    raise ValueError(f"cannot save {obj!r} ({type(obj).__name__}) in a config")


def _compile_config(model):
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return None
    opt = model.optimizer
    if OPTIMIZER_CLASSES.get(type(opt).__name__) is not type(opt):
        raise ValueError(f"cannot save optimizer {type(opt).__name__}: supported "
                         f"{sorted(OPTIMIZER_CLASSES)}")
    loss = model.loss
    if loss is not None and LOSS_CLASSES.get(type(loss).__name__) is not type(loss):
        raise ValueError(f"cannot save loss {type(loss).__name__}: supported "
                         f"{sorted(LOSS_CLASSES)}")
    return _jsonable({
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "loss": None if loss is None else {"class_name": type(loss).__name__,
                                           "config": loss.get_config()},
        "metrics": [{"name": m.name, "kind": m.kind} for m in model._metrics]})


def _check_reloadable(config):
    """Save refuses what load would refuse (e.g. a custom initializer object)."""
    rng_state = utils.rng().bit_generator.state
    try:
        functional = config["class_name"] == "Model"
        for i, e in enumerate(config["config"]["layers"]):
            _make_layer(_Source("<model being saved>"), i, e, functional)
        cc = config["compile_config"]
        if cc is not None:
            _make_compile_objects(_Source("<model being saved>"), cc)
    finally:
        utils.rng().bit_generator.state = rng_state


class _Source:
    """Error reporting for a file (or an in-memory config)."""

    def __init__(self, path):
        self.path = path

    def fail(self, msg):
        raise ValueError(f"{self.path}: {msg}")


def _need(src, cond, msg):
    if not cond:
        src.fail(msg)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_dict(src, obj, what, required, optional=()):
    _need(src, isinstance(obj, dict), f"{what} must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    _need(src, not missing, f"{what} is missing {missing}")
    extra = sorted(set(obj) - set(required) - set(optional))
    _need(src, not extra, f"{what} has unexpected keys {extra}")


def _check_batch_shape(src, shape, what):
    ok = isinstance(shape, list) and len(shape) >= 2 and all(
        d is None or (_is_int(d) and 0 < d < 2**31) for d in shape)
    _need(src, ok, f"{what}: invalid shape {shape!r} (a list: batch size, then positive ints)")


def _make_layer(src, i, entry, functional=False):
    keys = ("class_name", "config", "inbound") if functional else ("class_name", "config")
    _check_dict(src, entry, f"layer {i}", keys)
    cls_name = entry["class_name"]
    cls = LAYER_CLASSES.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None:
        src.fail(f"layer {i}: unknown layer class {cls_name!r}; this cnnfast can load "
                 f"{sorted(LAYER_CLASSES)}")
    cfg = entry["config"]
    _need(src, isinstance(cfg, dict), f"layer {i} ({cls_name}): config must be a JSON object")
    name = cfg.get("name")
    _need(src, isinstance(name, str) and name,
          f"layer {i} ({cls_name}): config needs a non-empty string 'name'")
    where = f"layer {i} ({cls_name} '{name}')"
    for key in ("batch_shape", "batch_input_shape"):
        if cfg.get(key) is not None:
            _check_batch_shape(src, cfg[key], f"{where}: {key}")
    if cls is InputLayer:
        _need(src, cfg.get("batch_shape") is not None, f"{where}: config needs 'batch_shape'")
    try:
        return cls.from_config(cfg)
    except (TypeError, ValueError, NotImplementedError, OverflowError) as e:
        src.fail(f"{where}: invalid config: {e}")


def _build_model(src, config):
    from .models.model import Model
    from .models.sequential import Sequential
    _check_dict(src, config, "config.json", ("class_name", "config"), ("compile_config",))
    kind = config["class_name"]
    _need(src, kind in ("Sequential", "Model"),
          f"unknown model class {kind!r}; expected 'Sequential' or 'Model'")
    cfg = config["config"]
    rng_state = utils.rng().bit_generator.state   # building draws initial weights
    try:
        if kind == "Sequential":
            _check_dict(src, cfg, "Sequential config", ("name", "trainable", "layers"))
            _need(src, isinstance(cfg["name"], str) and isinstance(cfg["trainable"], bool),
                  "Sequential config: 'name' must be a string and 'trainable' a bool")
            _need(src, isinstance(cfg["layers"], list), "Sequential config: 'layers' must be a "
                  "list")
            model = Sequential(name=cfg["name"], trainable=cfg["trainable"])
            for i, e in enumerate(cfg["layers"]):
                layer = _make_layer(src, i, e)
                try:
                    model.add(layer)
                except (TypeError, ValueError, NotImplementedError) as err:
                    src.fail(f"layer {i} ('{layer.name}') does not fit the model: {err}")
            return model
        _check_dict(src, cfg, "Model config", ("name", "trainable", "layers", "input_layers",
                                               "output_layers", "single_input",
                                               "single_output"))
        _need(src, isinstance(cfg["name"], str) and all(
            isinstance(cfg[k], bool) for k in ("trainable", "single_input", "single_output")),
            "Model config: 'name' must be a string, 'trainable'/'single_*' bools")
        for k in ("layers", "input_layers", "output_layers"):
            _need(src, isinstance(cfg[k], list) and cfg[k], f"Model config: '{k}' must be a "
                  "non-empty list")
        tensors, layers = {}, []
        for i, e in enumerate(cfg["layers"]):
            layer = _make_layer(src, i, e, functional=True)
            _need(src, layer.name not in tensors, f"layer {i}: duplicate layer name "
                  f"'{layer.name}'")
            inbound = e["inbound"]
            if isinstance(layer, InputLayer):
                _need(src, inbound is None, f"layer {i} ('{layer.name}'): an InputLayer has no "
                      "inbound layer")
                tensors[layer.name] = layer.output
            else:
                _need(src, isinstance(inbound, str) and inbound in tensors,
                      f"layer {i} ('{layer.name}'): inbound layer {inbound!r} is not defined "
                      "before it")
                try:
                    tensors[layer.name] = layer(tensors[inbound])
                except (TypeError, ValueError, NotImplementedError) as err:
                    src.fail(f"layer {i} ('{layer.name}') does not fit its input: {err}")
            layers.append(layer)

        def pick(key, single):
            names = cfg[key]
            _need(src, all(isinstance(n, str) and n in tensors for n in names),
                  f"Model config: '{key}' names unknown layers: {names!r}")
            _need(src, not single or len(names) == 1, f"Model config: '{key}' has "
                  f"{len(names)} entries but the model takes a single tensor")
            ts = [tensors[n] for n in names]
            return ts[0] if single else ts

        ins = pick("input_layers", cfg["single_input"])
        for t in (ins if isinstance(ins, list) else [ins]):
            _need(src, isinstance(t._layer, InputLayer),
                  f"Model config: input '{t._layer.name}' is not an InputLayer")
        outs = pick("output_layers", cfg["single_output"])
        try:
            model = Model(inputs=ins, outputs=outs, name=cfg["name"], trainable=cfg["trainable"])
        except (TypeError, ValueError, NotImplementedError) as err:
            src.fail(f"invalid model graph: {err}")
        _need(src, [id(x) for x in model.layers] == [id(x) for x in layers],
              "Model config: the layer list does not match the graph from inputs to outputs "
              "(unconnected layers, or not in topological order)")
        return model
    finally:
        utils.rng().bit_generator.state = rng_state


def _from_class_config(src, spec, classes, what):
    """Construct a whitelisted class from {"class_name", "config"} (what: 'optimizer'/'loss')."""
    _check_dict(src, spec, f"compile_config.{what}", ("class_name", "config"))
    name = spec["class_name"]
    cls = classes.get(name) if isinstance(name, str) else None
    _need(src, cls is not None, f"unknown {what} class {name!r}; supported {sorted(classes)}")
    _need(src, isinstance(spec["config"], dict), f"compile_config.{what}.config must be an object")
    try:
        return cls(**spec["config"])
    except (TypeError, ValueError, NotImplementedError) as e:
        src.fail(f"invalid {name} {what} config: {e}")


def _make_compile_objects(src, cc):
    _check_dict(src, cc, "compile_config", ("optimizer", "loss", "metrics"))
    opt = _from_class_config(src, cc["optimizer"], OPTIMIZER_CLASSES, "optimizer")
    loss = None
    if cc["loss"] is not None:
        loss = _from_class_config(src, cc["loss"], LOSS_CLASSES, "loss")
    _need(src, isinstance(cc["metrics"], list), "compile_config.metrics must be a list")
    metrics = []
    for m in cc["metrics"]:
        _check_dict(src, m, "compile_config.metrics entry", ("name", "kind"))
        _need(src, isinstance(m["name"], str) and m["kind"] in ("sparse", "categorical"),
              f"invalid metric {m!r}: needs a string name and kind 'sparse' or 'categorical'")
        metrics.append(metrics_mod.Accuracy(name=m["name"], kind=m["kind"]))
    return opt, loss, metrics


def _compile_from_config(src, model, cc):
    opt, loss, metrics = _make_compile_objects(src, cc)
    model.compile(optimizer=opt, loss=loss, metrics=metrics)


# =============================================================================================
# weights, optimizer state, rng state
# =============================================================================================
def _weight_names(layer):
    n = len(layer.weights_list)
    if hasattr(layer, "kernel") and n <= 2:
        return ["kernel", "bias"][:n]
    return [f"weight_{i}" for i in range(n)]


def _weights_index(model):
    arrays, entries = [], []
    for layer in model.layers:
        if not layer.weights_list:
            continue
        ws = []
        for name, w in zip(_weight_names(layer), layer.weights_list):
            ws.append({"name": name, "shape": list(w.shape), "offset": _push(arrays, w)})
        entries.append({"name": layer.name, "class_name": type(layer).__name__, "weights": ws})
    return arrays, {"dtype": _DTYPE, "layers": entries}


def _push(arrays, a):
    offset = sum(x.size for x in arrays) * 4
    arrays.append(np.ascontiguousarray(a, dtype=_DTYPE))
    return offset


def _trained_params(model):
    # Exactly the list Model._train_step hands to optimizer.apply (slots follow its order).
    return [w for layer in model.layers if layer.trainable and model.trainable
            for w in layer.weights_list]


def _optimizer_state(model, arrays):
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None:
        return None
    params = _trained_params(model)
    slots = None
    if opt._slots is not None and opt._weights_ids == [id(w) for w in params]:
        slots = [[None if a is None else {"shape": list(a.shape), "offset": _push(arrays, a)}
                  for a in s] for s in opt._slots]
    return {"iterations": int(opt.iterations), "slots": slots}


def _rng_states(model):
    out = []
    for layer in model.layers:
        gen = getattr(layer, "_rng", None)
        if isinstance(layer, layers_mod.Dropout) and gen is not None:
            out.append({"layer": layer.name, "state": _jsonable(gen.bit_generator.state)})
    return out


def _finish_index(index, arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(memoryview(a).cast("B"))
    index["nbytes"] = sum(a.nbytes for a in arrays)
    index["sha256"] = h.hexdigest()


def _check_array_entry(src, entry, what, offset, blob):
    _check_dict(src, entry, what, ("shape", "offset"), ("name",))
    shape = entry["shape"]
    _need(src, isinstance(shape, list) and len(shape) <= 8 and
          all(_is_int(d) and 0 <= d < 2**40 for d in shape), f"{what}: invalid shape {shape!r}")
    _need(src, entry["offset"] == offset, f"{what}: offset {entry['offset']!r}, expected "
          f"{offset} (entries must be back to back)")
    nbytes = math.prod(shape) * 4
    _need(src, offset + nbytes <= len(blob), f"{what}: data for shape {tuple(shape)} runs past "
          f"the end of {_BIN} ({len(blob)} bytes): the file is truncated or corrupt")
    arr = np.frombuffer(blob, dtype=_DTYPE, count=math.prod(shape), offset=offset)
    arr = arr.astype(np.float32).reshape(shape)
    _need(src, np.isfinite(arr).all(), f"{what}: contains "
          f"{int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values")
    return arr, offset + nbytes


def _check_index(src, index, blob, with_optimizer):
    """Validate weights.json against weights.bin; returns the decoded arrays."""
    _check_dict(src, index, _INDEX, ("dtype", "nbytes", "sha256", "layers", "optimizer", "rng"))
    _need(src, index["dtype"] == _DTYPE, f"{_INDEX}: unsupported dtype {index['dtype']!r} "
          f"(expected {_DTYPE!r}, little-endian float32)")
    _need(src, isinstance(index["layers"], list), f"{_INDEX}: 'layers' must be a list")
    offset, layers = 0, []
    for i, le in enumerate(index["layers"]):
        _check_dict(src, le, f"{_INDEX} layer {i}", ("name", "class_name", "weights"))
        _need(src, isinstance(le["name"], str) and isinstance(le["weights"], list),
              f"{_INDEX} layer {i}: invalid entry")
        arrs = []
        for j, we in enumerate(le["weights"]):
            a, offset = _check_array_entry(src, we, f"weight {j} of layer '{le['name']}'",
                                           offset, blob)
            arrs.append(a)
        layers.append((le["name"], le["class_name"], arrs))
    opt = index["optimizer"]
    opt_state = None
    if opt is not None:
        _check_dict(src, opt, f"{_INDEX} optimizer", ("iterations", "slots"))
        _need(src, _is_int(opt["iterations"]) and 0 <= opt["iterations"] < 2**62,
              f"{_INDEX}: optimizer iterations must be a non-negative int")
        slots = None
        if opt["slots"] is not None:
            _need(src, isinstance(opt["slots"], list), f"{_INDEX}: optimizer slots must be a "
                  "list")
            slots = []
            for i, s in enumerate(opt["slots"]):
                _need(src, isinstance(s, list) and len(s) <= 8, f"{_INDEX}: optimizer slots "
                      f"of weight {i} must be a list")
                row = []
                for j, se in enumerate(s):
                    if se is None:
                        row.append(None)
                        continue
                    a, offset = _check_array_entry(src, se, f"optimizer slot {j} of trained "
                                                   f"weight {i}", offset, blob)
                    row.append(a)
                slots.append(row)
        opt_state = (opt["iterations"], slots)
    _need(src, index["nbytes"] == offset == len(blob), f"{_BIN} holds {len(blob)} bytes but "
          f"the index describes {offset} (and declares {index['nbytes']!r}): truncated or "
          "corrupt")
    _need(src, isinstance(index["rng"], list), f"{_INDEX}: 'rng' must be a list")
    for r in index["rng"]:
        _check_dict(src, r, f"{_INDEX} rng entry", ("layer", "state"))
    return {"layers": layers, "optimizer": opt_state if with_optimizer else None,
            "rng": index["rng"]}


def _assign_weights(src, model, saved, exact_names):
    own = [layer for layer in model.layers if layer.weights_list]
    file_layers = saved["layers"]
    desc = lambda ls: [(n, [tuple(a.shape) for a in arrs]) for n, _, arrs in ls]  # noqa: E731
    mine = [(layer.name, [tuple(w.shape) for w in layer.weights_list]) for layer in own]
    if len(own) != len(file_layers):
        src.fail(f"the file has weights for {len(file_layers)} layers {desc(file_layers)}, but "
                 f"model '{model.name}' has {len(own)} layers with weights {mine}: different "
                 "architecture")
    for layer, (name, cls_name, arrs) in zip(own, file_layers):
        if exact_names and layer.name != name:
            src.fail(f"weights for layer '{name}' do not belong to layer '{layer.name}'")
        shapes = [tuple(a.shape) for a in arrs]
        want = [tuple(w.shape) for w in layer.weights_list]
        if shapes != want:
            src.fail(f"layer '{layer.name}' ({type(layer).__name__}) of model '{model.name}' "
                     f"has weight shapes {want}, but the file has {shapes} (saved from layer "
                     f"'{name}' ({cls_name})): different architecture")
    for layer, (_, _, arrs) in zip(own, file_layers):
        layer.set_weights(arrs)


def _restore_optimizer(src, model, state):
    if state is None or model.optimizer is None:
        return
    iterations, slots = state
    opt = model.optimizer
    if slots is not None:
        params = _trained_params(model)
        _need(src, len(slots) == len(params), f"optimizer state has slots for {len(slots)} "
              f"weights but the model trains {len(params)}")
        opt.build(params)
        for i, (mine, theirs) in enumerate(zip(opt._slots, slots)):
            ok = len(mine) == len(theirs) and all(
                (a is None) == (b is None) and (a is None or a.shape == b.shape)
                for a, b in zip(mine, theirs))
            _need(src, ok, f"optimizer slots of trained weight {i} do not match "
                  f"{type(opt).__name__}({opt.get_config()})")
        for mine, theirs in zip(opt._slots, slots):
            for a, b in zip(mine, theirs):
                if a is not None:
                    a[...] = b
    opt.iterations = int(iterations)


def _restore_rng(src, model, entries):
    by_name = {layer.name: layer for layer in model.layers}
    for r in entries:
        layer = by_name.get(r["layer"])
        _need(src, isinstance(layer, layers_mod.Dropout) and layer._rng is not None,
              f"rng state for {r['layer']!r}, which is not a seeded Dropout layer")
        st = r["state"]
        ok = isinstance(st, dict) and st.get("bit_generator") == type(
            layer._rng.bit_generator).__name__
        if ok:
            try:
                layer._rng.bit_generator.state = st
            except (TypeError, ValueError, KeyError, OverflowError):
                ok = False
        _need(src, ok, f"invalid rng state for Dropout layer '{layer.name}'")


# =============================================================================================
# writing
# =============================================================================================
def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_arrays(stream, arrays):
    for a in arrays:
        stream.write(memoryview(a).cast("B"))


def _zipinfo(name, compress):
    zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    zi.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    zi.external_attr = 0o644 << 16
    return zi


def _dumps(obj):
    return json.dumps(obj, indent=1, sort_keys=False, allow_nan=False).encode("utf-8")


def _write_archive(filepath, fmt, config, index, arrays, overwrite):
    path = os.fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path}: file exists and overwrite=False")
    meta = {"format": fmt, "version": FORMAT_VERSION, "cnnfast_version": _version()}
    members = [(_META, _dumps(meta))]
    if config is not None:
        members.append((_CONFIG, _dumps(config)))
    members.append((_INDEX, _dumps(index)))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                for name, data in members:
                    zf.writestr(_zipinfo(name, True), data)
                with zf.open(_zipinfo(_BIN, False), "w",
                             force_zip64=index["nbytes"] >= 2**31 - 1) as w:
                    _write_arrays(w, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)      # atomic, and fails if the name appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{path}: file exists and overwrite=False") from None
            except (AttributeError, OSError):   # no hard links here: check, then rename
                if os.path.lexists(path):
                    raise FileExistsError(f"{path}: file exists and overwrite=False") from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# =============================================================================================
# reading
# =============================================================================================
_PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".npy", ".pt", ".pth")


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


class _Archive(_Source):
    """An opened, sanity-checked cnnfast ZIP file; every failure is a ValueError naming it."""

    def __init__(self, filepath):
        super().__init__(os.fspath(filepath) if not isinstance(filepath, str) else filepath)
        path = self.path
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            self.fail("is a directory, not a cnnfast file (a Keras SavedModel directory? load "
                      "it with keras, then use cnnfast.from_keras(model))")
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            self.fail("is an HDF5 file (a Keras .h5 model or weights file), not a cnnfast file: "
                      "load it with keras (keras.models.load_model / model.load_weights) and "
                      "convert the model with cnnfast.from_keras(keras_model)")
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            self.fail("is a Python pickle, not a cnnfast file; cnnfast never unpickles files "
                      "(unpickling can run arbitrary code)")
        if head.startswith(b"\x93NUMPY"):
            self.fail("is a NumPy .npy file, not a cnnfast file")
        if not zipfile.is_zipfile(path):
            self.fail("is not a cnnfast file: not a ZIP archive, or a truncated one "
                      f"({os.path.getsize(path)} bytes)")
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except Exception as e:  # noqa: BLE001 - zipfile raises many types on corrupt input
            self.fail(f"corrupt ZIP archive: {type(e).__name__}: {e}")
        self.names = [i.filename for i in infos]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def expect(self, *formats):
        names = set(self.names)
        if len(names) != len(self.names):
            self.fail("corrupt archive: duplicate member names")
        if "model.weights.h5" in names or (_CONFIG in names and _BIN not in names and
                                           _META in names and self._is_keras_meta()):
            self.fail("is a Keras .keras file, not a cnnfast file: load it with "
                      "keras.models.load_model(path), then convert it with "
                      "cnnfast.from_keras(keras_model)")
        pickles = sorted(n for n in names if n.lower().endswith(_PICKLE_EXT))
        if pickles:
            self.fail(f"contains {pickles}: pickled / NumPy object members are never loaded "
                      "by cnnfast (unpickling can run arbitrary code); this is not a cnnfast "
                      "file")
        if _META not in names:
            self.fail(f"is not a cnnfast file: the ZIP archive has no {_META} "
                      f"(members: {sorted(names)[:10]})")
        meta = self.json(_META)
        if not isinstance(meta, dict) or not isinstance(meta.get("format"), str):
            self.fail(f"{_META}: no 'format' string; not a cnnfast file")
        fmt, version = meta["format"], meta.get("version")
        if fmt not in _MEMBERS:
            if "keras_version" in meta:
                self.fail("is a Keras .keras file, not a cnnfast file: load it with "
                          "keras.models.load_model(path), then convert it with "
                          "cnnfast.from_keras(keras_model)")
            self.fail(f"unknown format {fmt!r} in {_META}; expected one of {sorted(_MEMBERS)}")
        if not _is_int(version) or version < 1:
            self.fail(f"{_META}: invalid format version {version!r}")
        if version > FORMAT_VERSION:
            self.fail(f"was written by a newer cnnfast ({meta.get('cnnfast_version')!r}) in "
                      f"format version {version}; this cnnfast ({_version()}) reads versions "
                      f"<= {FORMAT_VERSION}: upgrade cnnfast")
        if fmt not in formats:
            if fmt == WEIGHTS_FORMAT:
                self.fail("is a weights-only file (save_weights): build the model in code and "
                          "call model.load_weights(path)")
            self.fail(f"has format {fmt!r}, expected {' or '.join(map(repr, formats))}")
        required = _MEMBERS[fmt]
        missing = [n for n in required if n not in names]
        if missing:
            self.fail(f"missing member(s) {missing}: the file is incomplete or corrupt")
        extra = sorted(names - set(required))
        if extra:
            self.fail(f"unexpected member(s) {extra} in a {fmt!r} file; refusing to load it")
        self.format = fmt

    def _is_keras_meta(self):
        try:
            return "keras_version" in self.json(_META)
        except ValueError:
            return False

    def _read(self, name, limit):
        info = self.zf.getinfo(name)
        if info.flag_bits & 0x1:
            self.fail(f"member {name} is encrypted")
        if info.file_size > limit:
            self.fail(f"member {name} is too large ({info.file_size} bytes, limit {limit})")
        try:
            data = self.zf.read(name)
        except Exception as e:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError...
            self.fail(f"member {name} is corrupt ({type(e).__name__}: {e})")
        if len(data) != info.file_size:
            self.fail(f"member {name} is truncated")
        return data

    def json(self, name):
        data = self._read(name, _JSON_LIMIT)
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                              object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            self.fail(f"member {name} is not valid JSON: {e}")

    def weights_blob(self, index):
        info = self.zf.getinfo(_BIN)
        if info.compress_type != zipfile.ZIP_STORED:
            self.fail(f"member {_BIN} must be stored uncompressed")
        if not isinstance(index, dict) or not _is_int(index.get("nbytes")):
            self.fail(f"{_INDEX}: invalid index (no integer 'nbytes')")
        if info.file_size != index["nbytes"]:
            self.fail(f"{_BIN} holds {info.file_size} bytes but {_INDEX} declares "
                      f"{index['nbytes']}: truncated or corrupt")
        blob = self._read(_BIN, info.file_size)
        if hashlib.sha256(blob).hexdigest() != index.get("sha256"):
            self.fail(f"{_BIN} does not match its SHA-256 in {_INDEX}: the weights are corrupt")
        return blob
