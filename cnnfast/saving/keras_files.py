"""Real Keras files, both ways, without TensorFlow (docs/file_format.md#keras-files).

    .keras        Keras 3's zip: config.json, metadata.json, model.weights.h5
                  (keras/src/saving/saving_lib.py and its H5IOStore layout)
    .h5 / .hdf5   the legacy Keras HDF5 model file: a model_config attribute, model_weights
                  and optimizer_weights groups (keras/src/legacy/saving/legacy_h5_format.py)
    .weights.h5   Keras 3's weights file (the model.weights.h5 layout on its own)

HDF5 is read and written with h5py (imported on first use). A model is read only through its
public view (get_config, layers, nodes, optimizer, ...) and rebuilt through the registered
model classes, so this module imports no model code; the per-layer mapping is
saving/keras_layers.py. Every problem with a file is a ValueError naming it; a Keras layer,
argument, loss, metric or optimizer that cnnfast does not run is a NotImplementedError naming
it.
"""
from __future__ import annotations

import datetime
import io
import json
import warnings
import zipfile
import zlib

import numpy as np

from .. import __version__, backend
from . import keras_layers as kl
from . import serialization
from .archive import Source, atomic_write

KERAS_VERSION = "3.15.1"   # the Keras file format written (the version whose files it matches)
CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_JSON_LIMIT = 64 << 20
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HINT = ("reading and writing Keras .keras / .h5 files needs h5py: pip install 'cnnfast[keras]' "
        "(or pip install h5py); cnnfast's own format (model.save('x.cnnfast')) does not")


def h5py():
    try:
        import h5py as mod
    except ImportError as e:
        raise ImportError(f"{HINT} ({e})") from e
    return mod


def is_hdf5(path):
    with open(path, "rb") as f:
        return f.read(8) == _HDF5_MAGIC


def is_keras_zip(path):
    if not zipfile.is_zipfile(path):
        return False
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:   # an end record, a broken directory
        raise ValueError(f"{path}: corrupt zip archive: {e}") from e
    with zf:
        return WEIGHTS in zf.namelist() or (CONFIG in zf.namelist() and
                                            "weights.bin" not in zf.namelist())


# =============================================================================================
# the model <-> Keras config
# =============================================================================================
def _shape(t):
    return None if t is None else [None if d is None else int(d) for d in t.shape]


def _layer_entry(layer, where):
    entry = serialization.serialize_layer(layer)
    cls = entry["class_name"]
    out = kl.keras_object("keras.layers", cls, kl.layer_to_keras(cls, entry["config"], where))
    spec = kl.LAYERS.get(cls)
    if spec is not None and spec.build_config and getattr(layer, "input", None) is not None:
        out["build_config"] = {"input_shape": _shape(layer.input)}
    return out


def keras_model_config(model):
    """config.json's dict (less compile_config) for a Sequential or functional model."""
    kind = serialization.model_class_name(model)
    if kind == "Sequential":
        layers = [_layer_entry(n.layer, f"layer '{n.layer.name}'") for n in model.nodes]
        out = kl.keras_object("keras", "Sequential", {
            "name": model.name, "trainable": bool(model.trainable), "dtype": kl.DTYPE_POLICY,
            "layers": layers})
        if model.built:
            out["config"]["build_input_shape"] = _shape(model.inputs[0])
            out["build_config"] = {"input_shape": _shape(model.inputs[0])}
        return out
    model.get_config()        # unique layer names, saveable classes
    layers = []
    for node in functional_order(model):
        e = _layer_entry(node.layer, f"layer '{node.layer.name}'")
        e["name"] = node.layer.name
        e["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {
            "shape": _shape(src.output), "dtype": "float32",
            "keras_history": [src.name, 0, 0]}} for src in node.inbound_layers],
            "kwargs": {}}] if node.inbound_layers else []
        layers.append(e)

    def io_spec(ls, single):
        specs = [[layer.name, 0, 0] for layer in ls]
        return specs[0] if single else specs
    cfg = {"name": model.name, "trainable": bool(model.trainable), "layers": layers,
           "input_layers": io_spec(model.input_layers, model._single_input),
           "output_layers": io_spec(model.output_layers, model._single_output)}
    out = kl.keras_object("keras.src.models.functional", "Functional", cfg, "Functional")
    out["build_config"] = {"input_shape": None}
    return out


def keras_layers_of(model):
    """The layers Keras keeps in `model.layers` (and names in its weights files), in order:
    a Sequential's without its InputLayer, a functional model's with them, by depth."""
    if serialization.model_class_name(model) == "Sequential":
        return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    return [n.layer for n in functional_order(model)]


def functional_order(model):
    """The nodes of a functional model in Keras's operation order (keras/src/ops/function.py
    map_graph): by depth from the outputs, deepest (the inputs) first, ties in the order a
    depth-first walk from the outputs first meets them. Keras names a layer's weights group
    by its place in this order, so a writer must follow it exactly."""
    nodes = {id(n.layer): n for n in model.nodes}
    first_seen, post = {}, []

    def walk(node):
        key = id(node.layer)
        if key in first_seen and key in done:
            return
        first_seen.setdefault(key, len(first_seen))
        for src in node.inbound_layers:
            walk(nodes[id(src)])
        if key not in done:
            done.add(key)
            post.append(node)
    done = set()
    for layer in model.output_layers:
        walk(nodes[id(layer)])
    depth, op_depth = {}, {}
    for node in reversed(post):
        key = id(node.layer)
        d = depth.setdefault(key, 0)
        d = max(d, op_depth.get(key, 0))
        op_depth[key] = depth[key] = d
        for src in node.inbound_layers:
            depth[id(src)] = max(d + 1, depth.get(id(src), 0))
    return sorted(post, key=lambda n: (-op_depth[id(n.layer)], first_seen[id(n.layer)]))


def _h5_paths(class_names):
    """Keras's group names for a list of layers: snake_case(class), then _1, _2, ..."""
    used, out = {}, []
    for cls in class_names:
        name = kl.snake_case(cls)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        out.append(name)
    return out


# ---- compile configuration --------------------------------------------------------------
_METRIC_TO_KERAS = {("sparse", False): "SparseCategoricalAccuracy",
                    ("categorical", False): "CategoricalAccuracy",
                    ("binary", False): "BinaryAccuracy",
                    ("sparse_top_k", False): "SparseTopKCategoricalAccuracy",
                    ("top_k", False): "TopKCategoricalAccuracy"}
_METRIC_FROM_KERAS = {"SparseCategoricalAccuracy": ("Accuracy", {"kind": "sparse"}),
                      "CategoricalAccuracy": ("Accuracy", {"kind": "categorical"}),
                      "BinaryAccuracy": ("Accuracy", {"kind": "binary"}),
                      "Accuracy": None,    # Keras's exact-match Accuracy: cnnfast has none
                      "SparseTopKCategoricalAccuracy": ("TopKAccuracy", {"sparse": True}),
                      "TopKCategoricalAccuracy": ("TopKAccuracy", {"sparse": False}),
                      "MeanSquaredError": ("MeanSquaredError", {}),
                      "MeanAbsoluteError": ("MeanAbsoluteError", {}),
                      "Precision": ("Precision", {}), "Recall": ("Recall", {}),
                      "AUC": ("AUC", {}), "TruePositives": ("TruePositives", {}),
                      "FalsePositives": ("FalsePositives", {}),
                      "TrueNegatives": ("TrueNegatives", {}),
                      "FalseNegatives": ("FalseNegatives", {})}


_WRAPPED_ACCURACY = {"sparse_categorical_accuracy": "sparse",
                     "categorical_accuracy": "categorical", "binary_accuracy": "binary"}


def _metric_to_keras(m):
    cls = type(m).__name__
    cfg = m.get_config()
    if cls == "Accuracy":
        if cfg["name"] in ("accuracy", "acc"):
            return cfg["name"]          # Keras resolves it from the loss, as cnnfast did
        kcls = _METRIC_TO_KERAS[(cfg["kind"], False)]
        kcfg = {"name": cfg["name"], "dtype": "float32"}
        if cfg["kind"] == "binary":
            kcfg["threshold"] = cfg["threshold"]
    elif cls == "TopKAccuracy":
        kcls = "SparseTopKCategoricalAccuracy" if cfg["sparse"] else "TopKCategoricalAccuracy"
        kcfg = {"name": cfg["name"], "dtype": "float32", "k": cfg["k"]}
    else:
        kcls = cls
        kcfg = {"dtype": "float32", **cfg}
    return kl.keras_object("keras.metrics", kcls, kcfg)


def keras_compile_config(model):
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return None
    cc = serialization.serialize_compile(model.optimizer, model.loss, model._metrics,
                                         model._weighted_metrics)
    opt = cc["optimizer"]
    loss = cc["loss"]
    metrics = [_metric_to_keras(m) for m in model._metrics]
    weighted = [_metric_to_keras(m) for m in model._weighted_metrics]
    if loss is not None:
        loss = kl.keras_object("keras.losses", loss["class_name"],
                               {**loss["config"], "reduction": "sum_over_batch_size"})
    return {"optimizer": kl.keras_object("keras.optimizers", opt["class_name"], opt["config"]),
            "loss": loss, "loss_weights": None, "metrics": metrics or None,
            "weighted_metrics": weighted or None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _strip_module(obj):
    """A Keras 3 object dict in the legacy {"class_name", "config"} form (nested objects, as
    the dtype policy, keep their module, as Keras's legacy writer keeps them)."""
    return {k: v for k, v in obj.items() if k not in ("module", "registered_name",
                                                      "build_config")}


def legacy_model_config(config):
    """The legacy .h5 model_config for a Keras 3 config.json dict."""
    cfg = dict(config["config"])
    cfg["layers"] = [_strip_module(e) for e in cfg["layers"]]
    return {"class_name": config["class_name"], "config": cfg}


def _class_and_config(src, spec, what):
    if isinstance(spec, str):
        return spec, None
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or \
            not isinstance(spec.get("config", {}), dict):
        src.fail(f"invalid {what} {spec!r} in the compile configuration")
    return spec["class_name"], dict(spec.get("config") or {})


def _deserialize_compile(src, cc, optimizer_key):
    """(optimizer, loss, metrics, weighted metrics) for model.compile from Keras's
    compile/training config."""
    name, cfg = _class_and_config(src, cc.get(optimizer_key), "optimizer")
    if isinstance(name, str) and name.startswith("Custom>"):    # tf.keras 2.11+ .h5 files
        name = name[len("Custom>"):]
    opt_cls = serialization.OPTIMIZER_CLASSES.get(name)
    if opt_cls is None:
        raise NotImplementedError(f"{src.path}: Keras optimizer {name!r} is not supported by "
                                  f"cnnfast; supported {sorted(serialization.OPTIMIZER_CLASSES)}")
    if cfg is None:
        cfg = {}
    for key, default in (("jit_compile", None), ("is_legacy_optimizer", False)):
        if key in cfg and (default is None or cfg[key] == default):
            del cfg[key]          # Keras 2 bookkeeping, no effect on the update
    try:
        opt = opt_cls.from_config(cfg)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise NotImplementedError(f"{src.path}: Keras optimizer {name} config: {e}") from e
    if cc.get("loss_weights") not in (None, [], {}):
        raise NotImplementedError(f"{src.path}: compile argument loss_weights="
                                  f"{cc['loss_weights']!r} is not supported by cnnfast")
    loss = cc.get("loss")
    if isinstance(loss, dict):
        lname, lcfg = _class_and_config(src, loss, "loss")
        lcls = serialization.LOSS_CLASSES.get(lname)
        if lcls is None:
            raise NotImplementedError(f"{src.path}: Keras loss {lname!r} is not supported by "
                                      f"cnnfast; supported {sorted(serialization.LOSS_CLASSES)}")
        if kl.dtype_name(lcfg.get("dtype")) in (None, "float32"):
            lcfg.pop("dtype", None)
        try:
            loss = lcls(**lcfg)
        except (TypeError, ValueError, NotImplementedError) as e:
            raise NotImplementedError(f"{src.path}: Keras loss {lname} config: {e}") from e
    elif loss is not None and not isinstance(loss, str):
        raise NotImplementedError(f"{src.path}: loss {loss!r} is not supported by cnnfast")
    return opt, loss, _deserialize_metrics(src, cc, "metrics"), \
        _deserialize_metrics(src, cc, "weighted_metrics")


def _deserialize_metrics(src, cc, key):
    """compile's metrics or weighted_metrics (cnnfast instances, or the strings Keras keeps)
    from Keras's compile config."""
    metrics = []
    raw = cc.get(key) or []
    if isinstance(raw, dict) or not isinstance(raw, list):
        raise NotImplementedError(f"{src.path}: {key} {raw!r}: only a list is supported")
    for m in raw:
        if isinstance(m, list) and len(m) == 1:       # Keras 2: one list per output
            m = m[0]
        if isinstance(m, str):
            metrics.append(m)
            continue
        mname, mcfg = _class_and_config(src, m, "metric")
        if mname == "MeanMetricWrapper" and isinstance(mcfg.get("fn"), str):   # tf.keras 2.x
            kind = _WRAPPED_ACCURACY.get(mcfg["fn"])
            if kind is None:
                raise NotImplementedError(f"{src.path}: Keras metric function "
                                          f"{mcfg['fn']!r} is not supported by cnnfast")
            metrics.append(serialization.metrics_mod.Accuracy(
                name=mcfg.get("name") or mcfg["fn"], kind=kind))
            continue
        target = _METRIC_FROM_KERAS.get(mname)
        if target is None:
            supported = sorted(k for k, v in _METRIC_FROM_KERAS.items() if v)
            raise NotImplementedError(f"{src.path}: Keras metric {mname!r} is not supported by "
                                      f"cnnfast; supported {supported}")
        cls_name, extra = target
        if kl.dtype_name(mcfg.get("dtype")) in (None, "float32"):
            mcfg.pop("dtype", None)
        try:
            metrics.append(serialization.metrics_mod.METRIC_CLASSES[cls_name](**mcfg, **extra))
        except (TypeError, ValueError, NotImplementedError) as e:
            raise NotImplementedError(f"{src.path}: Keras metric {mname} config: {e}") from e
    return metrics


# ---- optimizer variables: Keras's optimizer.variables order -------------------------------
# Per optimizer, the add_optimizer_variables calls of its build(), in order: each a tuple of
# (cnnfast slot index, Keras variable name), interleaved per model variable within a call.
def _groups(opt):
    name = type(opt).__name__
    if name in ("Adam", "AdamW"):
        return [((0, "momentum"), (1, "velocity"))] + \
            ([((2, "velocity_hat"),)] if opt.amsgrad else [])
    if name == "SGD":
        return [((0, "momentum"),)] if opt.momentum != 0 else []
    if name == "RMSprop":
        return [((0, "velocity"),)] + ([((1, "momentum"),)] if opt.momentum > 0 else []) + \
            ([((2, "average_gradient"),)] if opt.centered else [])
    if name == "Nadam":
        return [((0, "momentum"), (1, "velocity"))]
    if name == "Adamax":
        return [((0, "momentum"), (1, "norm"))]
    if name == "Adagrad":
        return [((0, "accumulator"),)]
    if name == "Adadelta":
        return [((0, "accumulated_grad"), (1, "accumulated_delta_var"))]
    raise NotImplementedError(f"optimizer {name} has no Keras variable mapping")


def _trained_params(model):
    return [w for layer in model.layers if model.trainable for w in layer._trainable_arrays()]


def _param_names(model):
    """Keras's optimizer variable names use the weight's path, '/' -> '_'."""
    prefix = f"{model.name}_" if serialization.model_class_name(model) == "Sequential" else ""
    names = {}
    for layer in model.layers:
        cfg = layer.get_config()
        for wname, w in zip(kl.weight_names(type(layer).__name__, cfg), layer.weights_list):
            names[id(w)] = f"{prefix}{layer.name}_{wname}"
    return names


def _nadam_u_product(opt):
    if opt._u_step == opt.iterations:
        return float(opt._u_product[0])
    u = np.float32(1.0)
    for k in range(1, int(opt.iterations) + 1):
        u = backend.nadam_u_product_next(u, opt.beta_1, k)
    return float(u)


def optimizer_variables(model):
    """[(name, array)] in Keras's optimizer.variables order (iteration, learning_rate, the
    slots), or [] for a model that is not compiled."""
    opt = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or opt is None:
        return []
    params = _trained_params(model)
    built = opt._slots is not None and opt._weights_ids == [id(w) for w in params]
    slots = opt._slots if built else [opt._make_slots(w) for w in params]
    names = _param_names(model)
    out = [(f"{opt.name}/iteration", np.array(int(opt.iterations), np.int64))]
    if opt._schedule is None:
        out.append((f"{opt.name}/learning_rate", np.array(opt._lr, np.float32)))
    for group in _groups(opt):
        for w, s in zip(params, slots):
            for idx, vname in group:
                out.append((f"{opt.name}/{names.get(id(w), 'weight')}_{vname}",
                            np.asarray(s[idx], np.float32)))
    if type(opt).__name__ == "Nadam":
        out.append((f"{opt.name}/u_product", np.array(_nadam_u_product(opt), np.float32)))
    return out


def restore_optimizer(src, model, values):
    """Set the optimizer's iterations, learning rate and slots from Keras's variables (in
    optimizer.variables order). A file saved before the first update holds iteration and
    learning_rate only; Keras 2's optimizers keep no learning_rate variable."""
    opt = model.optimizer
    params = _trained_params(model)
    groups = _groups(opt)
    n_slots = sum(len(g) for g in groups) * len(params) + \
        (1 if type(opt).__name__ == "Nadam" else 0)
    head = len(values) - n_slots
    has_lr = opt._schedule is None
    if head not in (1, 2) and len(values) not in (1, 2):
        src.fail(f"the optimizer state holds {len(values)} variables, but "
                 f"{type(opt).__name__}({opt.get_config()}) on the {len(params)} trained "
                 f"weights of model '{model.name}' has {n_slots} slot variables plus iteration "
                 "and learning_rate: different optimizer or architecture")
    if head not in (1, 2):           # before the first update: no slots
        head, values = len(values), list(values)
        n_slots = 0
    it = np.asarray(values[0])
    if it.shape != () or not np.isfinite(it) or it < 0:
        src.fail(f"invalid optimizer iteration count {it!r}")
    pending, k = [], head
    for group in groups if n_slots else []:
        for i, w in enumerate(params):
            for idx, vname in group:
                a = np.asarray(values[k], np.float32)
                if a.shape != w.shape:
                    src.fail(f"optimizer variable {k} ({vname}) has shape {a.shape}, the "
                             f"weight it belongs to {w.shape}: different architecture")
                if not np.isfinite(a).all():
                    src.fail(f"optimizer variable {k} ({vname}) holds NaN or infinite values")
                pending.append((i, idx, a))
                k += 1
    if n_slots:                      # every variable checked: now change the optimizer
        opt.build(params)
        for i, idx, a in pending:
            opt._slots[i][idx][...] = a
    opt.iterations = int(it)
    if head == 2 and has_lr:
        opt.learning_rate = float(np.float32(values[1]))


# =============================================================================================
# writing
# =============================================================================================
def _h5_bytes(fill):
    buf = io.BytesIO()
    with h5py().File(buf, "w") as f:
        fill(f)
    return buf.getvalue()


def _write_vars(group, arrays):
    for i, a in enumerate(arrays):
        group.create_dataset(str(i), data=np.asarray(a))


def _fill_weights_store(f, model, with_optimizer=True):
    """The H5IOStore layout: layers/<snake_case class>/vars/<i>, optimizer/vars/<i>, vars."""
    ls = keras_layers_of(model)
    f.create_group("layers")
    for layer, path in zip(ls, _h5_paths(type(x).__name__ for x in ls)):
        g = f.create_group(f"layers/{path}").create_group("vars")
        g.attrs["name"] = layer.name
        _write_vars(g, layer.weights_list)
    ov = optimizer_variables(model) if with_optimizer else []
    if ov:
        g = f.create_group("optimizer").create_group("vars")
        g.attrs["name"] = model.optimizer.name
        _write_vars(g, [a for _, a in ov])
    f.create_group("vars").attrs["name"] = model.name


def _check_weights(model):
    for layer in model.layers:
        for w in layer.weights_list:
            if not np.isfinite(w).all():
                raise ValueError(f"cannot save model '{model.name}': layer '{layer.name}' has "
                                 "NaN or infinite weights")


def save_keras(model, filepath, overwrite=True):
    """model.save("x.keras"): Keras 3's zip, which tf.keras.models.load_model opens."""
    config = keras_model_config(model)
    cc = keras_compile_config(model)
    # Keras 3 (tf 2.21) writes {} for a model that was never compiled
    config["compile_config"] = cc if cc is not None else {}
    _check_weights(model)
    weights = _h5_bytes(lambda f: _fill_weights_store(f, model))
    meta = {"keras_version": KERAS_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "cnnfast_version": __version__}

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr(METADATA, json.dumps(meta))
            zf.writestr(CONFIG, json.dumps(config))
            zf.writestr(WEIGHTS, weights)
    atomic_write(filepath, overwrite, write)


def save_keras_weights(model, filepath, overwrite=True):
    """model.save_weights("x.weights.h5"): Keras 3's weights file (optimizer included, as
    Keras writes it for a compiled model)."""
    _check_weights(model)
    data = _h5_bytes(lambda f: _fill_weights_store(f, model))
    atomic_write(filepath, overwrite, lambda f: f.write(data))


def _str_attr(values):
    """A list of names as Keras stores it: variable-length strings (an empty float array
    for none, as np.asarray([]) gives Keras)."""
    if not values:
        return np.array([])
    return np.array(values, dtype=h5py().string_dtype("ascii" if all(
        v.isascii() for v in values) else "utf-8"))


def save_h5(model, filepath, overwrite=True):
    """model.save("x.h5"): the legacy Keras HDF5 model file."""
    config = keras_model_config(model)
    cc = keras_compile_config(model)
    _check_weights(model)
    model_config = legacy_model_config(config)

    def fill(f):
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["model_config"] = json.dumps(model_config)
        if cc is not None:
            tc = {k: v for k, v in cc.items() if k != "optimizer"}
            tc["loss"] = tc["loss"] and _strip_module(tc["loss"])
            for key in ("metrics", "weighted_metrics"):
                tc[key] = tc[key] and [m if isinstance(m, str) else _strip_module(m)
                                       for m in tc[key]]
            tc["optimizer_config"] = _strip_module(cc["optimizer"])
            f.attrs["training_config"] = json.dumps(tc)
        mw = f.create_group("model_weights")
        ls = keras_layers_of(model)
        # weight names are Keras 3's variable paths (a Sequential's start with its name)
        prefix = f"{model.name}/" if serialization.model_class_name(model) == "Sequential" \
            else ""
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = KERAS_VERSION
        mw.attrs["layer_names"] = _str_attr([layer.name for layer in ls])
        for layer in ls:
            g = mw.create_group(layer.name)
            wn = kl.weight_names(type(layer).__name__, layer.get_config())
            names = [f"{prefix}{layer.name}/{n}" for n in wn[:len(layer.weights_list)]]
            g.attrs["weight_names"] = _str_attr(names)
            for n, w in zip(names, layer.weights_list):
                g.create_dataset(n, data=w)
        mw.create_group("top_level_model_weights").attrs["weight_names"] = _str_attr([])
        ov = optimizer_variables(model)
        if ov:
            og = f.create_group("optimizer_weights")
            og.attrs["weight_names"] = _str_attr([n for n, _ in ov])
            for n, a in ov:
                og.create_dataset(n, data=a)
    data = _h5_bytes(fill)
    atomic_write(filepath, overwrite, lambda f: f.write(data))


# =============================================================================================
# reading: Keras config -> cnnfast config -> model
# =============================================================================================
def _layer_where(src, i, cls, cfg):
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return f"{src.path}: layer {i} ({cls} '{name}')"


def _cnnfast_layer(src, i, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) or \
            not isinstance(entry.get("config"), dict):
        src.fail(f"layer {i}: invalid entry in the model config")
    cls, cfg = entry["class_name"], entry["config"]
    where = _layer_where(src, i, cls, cfg)
    if cls in ("Sequential", "Functional", "Model"):
        raise NotImplementedError(f"{where}: a model nested as a layer is not supported by "
                                  "cnnfast's Keras reader")
    if cls == "InputLayer":
        c = kl.check_input_config(cfg, where)
        return {"class_name": "InputLayer", "config": {**c, "dtype": "float32"}}
    kwargs = kl.layer_kwargs_from_keras(cls, cfg, where)
    kl.check_runs(cls, kwargs, where)
    return {"class_name": cls, "config": kwargs}


def _inbound(src, entry, where):
    nodes = entry.get("inbound_nodes", [])
    if not nodes:
        return None
    if len(nodes) != 1:
        raise NotImplementedError(f"{where} is called {len(nodes)} times; shared layers are "
                                  "not supported by cnnfast")
    node = nodes[0]
    if isinstance(node, dict):                      # Keras 3
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        flat = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        if len(flat) != 1 or not isinstance(flat[0], dict) or \
                flat[0].get("class_name") != "__keras_tensor__":
            raise NotImplementedError(f"{where} takes {len(flat)} inputs; cnnfast layers take "
                                      "one")
        if kwargs not in ({}, None) and set(kwargs) - {"training", "mask"}:
            raise NotImplementedError(f"{where}: call arguments {sorted(kwargs)} are not "
                                      "supported by cnnfast")
        hist = (flat[0].get("config") or {}).get("keras_history")
    else:                                           # Keras 2: [[name, node, tensor, kwargs]]
        if not isinstance(node, list) or len(node) != 1:
            raise NotImplementedError(f"{where} takes {len(node)} inputs; cnnfast layers take "
                                      "one")
        hist = node[0]
    if not isinstance(hist, list) or len(hist) < 3 or not isinstance(hist[0], str):
        src.fail(f"{where}: invalid inbound node {node!r}")
    if hist[1] != 0 or hist[2] != 0:
        raise NotImplementedError(f"{where}: input {hist[:3]} is a shared layer's or a "
                                  "multi-output layer's tensor; not supported by cnnfast")
    return hist[0]


def _io_names(src, spec, what, keras2=False):
    """(layer names, single): Keras 3 writes [name, 0, 0] for one tensor and a list of those
    for a list; Keras 2 always wrote the list, and a model of one input/output took and gave
    one tensor."""
    if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str):
        return [spec[0]], True                      # Keras 3: one tensor
    if isinstance(spec, list) and spec and all(isinstance(s, list) and s and
                                               isinstance(s[0], str) for s in spec):
        for s in spec:
            if len(s) >= 3 and (s[1] != 0 or s[2] != 0):
                raise NotImplementedError(f"{src.path}: model {what} {s!r}: shared or "
                                          "multi-output layers are not supported by cnnfast")
        return [s[0] for s in spec], keras2 and len(spec) == 1
    if isinstance(spec, dict):
        raise NotImplementedError(f"{src.path}: models with dict {what} are not supported by "
                                  "cnnfast")
    src.fail(f"invalid model {what} {spec!r}")


def cnnfast_model_config(src, top, keras2=False):
    """(class_name, cnnfast model config, keras layer names in Keras's weight order) for a
    Keras model config (config.json's dict or a legacy model_config; keras2: written by
    tf.keras 2.x)."""
    if not isinstance(top, dict) or not isinstance(top.get("config"), dict):
        src.fail("the model config is not a Keras model config")
    cls, cfg = top.get("class_name"), top["config"]
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        src.fail(f"the {cls} config has no 'layers' list")
    name = cfg.get("name") if isinstance(cfg.get("name"), str) else "model"
    trainable = bool(cfg.get("trainable", True))
    if cls == "Sequential":
        entries = [_cnnfast_layer(src, i, e) for i, e in enumerate(layers)]
        shape = (top.get("build_config") or {}).get("input_shape")
        if entries and entries[0]["class_name"] != "InputLayer" and isinstance(shape, list) \
                and not any("batch_input_shape" in e["config"] for e in entries[:1]):
            entries.insert(0, {"class_name": "InputLayer", "config": {
                "name": "input_layer", "batch_shape": shape, "dtype": "float32"}})
        order = [e["config"]["name"] for e in entries if e["class_name"] != "InputLayer"]
        return "Sequential", {"name": name, "trainable": trainable, "layers": entries}, order
    if cls in ("Functional", "Model"):
        entries = []
        for i, e in enumerate(layers):
            c = _cnnfast_layer(src, i, e)
            c["inbound"] = _inbound(src, e, _layer_where(src, i, e["class_name"], e["config"]))
            entries.append(c)
        ins, single_in = _io_names(src, cfg.get("input_layers"), "inputs", keras2)
        outs, single_out = _io_names(src, cfg.get("output_layers"), "outputs", keras2)
        keras_order = [e["config"]["name"] for e in entries]
        return "Model", {"name": name, "trainable": trainable,
                         "layers": _graph_order(src, entries, outs),
                         "input_layers": ins, "output_layers": outs, "single_input": single_in,
                         "single_output": single_out}, keras_order
    raise NotImplementedError(f"{src.path}: Keras model class {cls!r} is not supported by "
                              "cnnfast (subclassed models cannot be loaded without their code); "
                              "supported: Sequential and functional models")


def _graph_order(src, entries, outs):
    """The entries in cnnfast's graph order (depth first from the outputs, inputs first, as
    Model builds it); Keras lists a functional model's layers by depth."""
    by_name = {e["config"]["name"]: e for e in entries}
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        if name not in by_name:
            src.fail(f"the model config refers to an unknown layer {name!r}")
        seen.add(name)
        inbound = by_name[name]["inbound"]
        if inbound is not None:
            visit(inbound)
        order.append(by_name[name])
    for name in outs:
        visit(name)
    extra = [e["config"]["name"] for e in entries if e["config"]["name"] not in seen]
    if extra:
        src.fail(f"layers {extra} are not connected to the model's outputs")
    return order


def _build(src, top, keras2=False):
    kind, cfg, order = cnnfast_model_config(src, top, keras2)
    cls = serialization.MODEL_CLASSES[kind]
    try:
        model = cls.from_config(cfg)
    except ValueError as e:
        src.fail(str(e))
    return model, order


def _set_layer_weights(src, layer, arrays, where):
    want = [tuple(w.shape) for w in layer.weights_list]
    got = [tuple(a.shape) for a in arrays]
    if want != got:
        src.fail(f"{where}: layer '{layer.name}' ({type(layer).__name__}) has weight shapes "
                 f"{want}, the file has {got}: different architecture")
    for a in arrays:
        if not np.issubdtype(a.dtype, np.floating):
            src.fail(f"{where}: weights of layer '{layer.name}' have dtype {a.dtype}, expected "
                     "floats")
        if not np.isfinite(a).all():
            src.fail(f"{where}: weights of layer '{layer.name}' hold NaN or infinite values")
    return [np.asarray(a, np.float32) for a in arrays]


def _read_vars(group):
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
        raise ValueError(f"unexpected variable names {keys}")
    return [np.asarray(group[k][()]) for k in keys]


def _vars_at(f, path):
    for p in (path, path.replace("layers", "_layer_checkpoint_dependencies", 1)):
        if p in f and "vars" in f[p]:
            return f[p]["vars"]
    return None


def _load_weights_store(src, f, model, order):
    """Set the weights of `model` (Keras layer names `order`) from an H5IOStore file; return
    the optimizer variables (or None)."""
    layers = [model.get_layer(n) for n in order]
    paths = _h5_paths(type(x).__name__ for x in layers)
    pending = []
    for layer, path in zip(layers, paths):
        g = _vars_at(f, f"layers/{path}")
        if g is None:
            if layer.weights_list:
                src.fail(f"no weights for layer '{layer.name}' (group layers/{path}): the file "
                         "belongs to a different architecture")
            continue
        try:
            arrays = _read_vars(g)
        except ValueError as e:
            src.fail(f"layers/{path}: {e}")
        pending.append((layer, _set_layer_weights(src, layer, arrays, f"layers/{path}")))
    for layer, arrays in pending:
        if layer.weights_list:
            layer.set_weights(arrays)
    if "optimizer" in f and "vars" in f["optimizer"]:
        try:
            return _read_vars(f["optimizer"]["vars"])
        except ValueError as e:
            src.fail(f"optimizer/vars: {e}")
    return None


def _open_zip(src, path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        src.fail(f"corrupt .keras archive: {e}")
    names = zf.namelist()
    for need_name in (CONFIG, WEIGHTS):
        if need_name not in names:
            zf.close()
            src.fail(f"a Keras .keras file needs {need_name}; the archive holds "
                     f"{sorted(names)[:10]}")
    return zf


def _json(src, raw, what):
    if len(raw) > _JSON_LIMIT:
        src.fail(f"{what} is too large ({len(raw)} bytes)")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        src.fail(f"{what} is not valid JSON: {e}")


def _zip_entry(src, zf, name):
    """The bytes of one archive entry; a damaged entry (bad CRC, header or deflate stream) is
    the file's error, naming the entry."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        src.fail(f"{name} is corrupt: {e}")


def _h5_from_zip(src, zf):
    data = _zip_entry(src, zf, WEIGHTS)
    try:
        return h5py().File(io.BytesIO(data), "r")
    except OSError as e:
        src.fail(f"{WEIGHTS} is not a valid HDF5 file: {e}")


def _is_keras2(version):
    return isinstance(version, (str, bytes)) and str(
        version.decode() if isinstance(version, bytes) else version).startswith("2.")


def _compile(src, model, cc, optimizer_key, opt_values, keras2=False):
    opt, loss, metrics, weighted = _deserialize_compile(src, cc, optimizer_key)
    model.compile(optimizer=opt, loss=loss, metrics=metrics, weighted_metrics=weighted)
    if opt_values is not None and keras2:
        warnings.warn(f"{src.path}: written by tf.keras 2.x, whose optimizer variable order "
                      "cnnfast has not verified: the optimizer state (step count and moments) "
                      "is not restored; training restarts them", stacklevel=4)
    elif opt_values is not None:
        restore_optimizer(src, model, opt_values)


def load_keras(filepath, compile=True):
    """A cnnfast model from a Keras 3 `.keras` file (no TensorFlow needed)."""
    src = Source(str(filepath))
    with _open_zip(src, filepath) as zf:
        config = _json(src, _zip_entry(src, zf, CONFIG), CONFIG)
        meta = _json(src, _zip_entry(src, zf, METADATA), METADATA) \
            if METADATA in zf.namelist() else {}
        keras2 = _is_keras2(meta.get("keras_version") if isinstance(meta, dict) else None)
        model, order = _build(src, config, keras2)
        with _h5_from_zip(src, zf) as f:
            opt_values = _load_weights_store(src, f, model, order)
    cc = config.get("compile_config")
    if compile and cc:
        _compile(src, model, cc, "optimizer", opt_values, keras2)
    return model


def _attr_json(src, f, key):
    raw = f.attrs.get(key)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return _json(src, raw if isinstance(raw, str) else str(raw), f"attribute {key}")


def _names_attr(g, key):
    raw = g.attrs.get(key)
    if raw is None:
        return None
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in np.atleast_1d(raw)]


def _load_legacy_weights(src, g, model, by_name):
    """Legacy layout: layer_names, and per layer its weight_names (in weight order)."""
    names = _names_attr(g, "layer_names")
    if names is None:
        src.fail("the HDF5 file has no layer_names: not a Keras weights layout")
    with_w = [n for n in names if _names_attr(g[n], "weight_names")]
    own = [layer for layer in model.layers if layer.weights_list]
    if by_name:
        pairs = []
        for n in with_w:
            try:
                pairs.append((model.get_layer(n), n))
            except ValueError:
                src.fail(f"the file has weights for layer '{n}', which the model lacks")
    else:
        if len(with_w) != len(own):
            src.fail(f"the file has weights for {len(with_w)} layers, model '{model.name}' has "
                     f"{len(own)} layers with weights: different architecture")
        pairs = list(zip(own, with_w))
    pending = []
    for layer, n in pairs:
        arrays = [np.asarray(g[n][w][()]) for w in _names_attr(g[n], "weight_names")]
        pending.append((layer, _set_layer_weights(src, layer, arrays, f"model_weights/{n}")))
    for layer, arrays in pending:
        layer.set_weights(arrays)


def _open_h5(src, path):
    mod = h5py()
    try:
        return mod.File(path, "r")
    except OSError as e:
        src.fail(f"is not a readable HDF5 file (truncated or corrupt): {e}")


def load_h5(filepath, compile=True):
    """A cnnfast model from a legacy Keras `.h5` model file (no TensorFlow needed)."""
    src = Source(str(filepath))
    with _open_h5(src, filepath) as f:
        top = _attr_json(src, f, "model_config")
        if top is None:
            src.fail("is an HDF5 file without a model_config attribute: a weights-only file? "
                     "Build the model in code and call model.load_weights(path)")
        keras2 = _is_keras2(f.attrs.get("keras_version"))
        model, _ = _build(src, top, keras2)
        if "model_weights" not in f:
            src.fail("the HDF5 model file has no model_weights group")
        _load_legacy_weights(src, f["model_weights"], model, by_name=True)
        tc = _attr_json(src, f, "training_config")
        opt_values = None
        if "optimizer_weights" in f:
            og = f["optimizer_weights"]
            opt_values = [np.asarray(og[n][()]) for n in _names_attr(og, "weight_names") or []]
    if compile and tc:
        _compile(src, model, tc, "optimizer_config", opt_values, keras2)
    return model


def load_weights(model, filepath):
    """Keras weights into a built cnnfast model of the same architecture: a `.weights.h5`
    (Keras 3), a legacy `.h5` (model or weights file) or the weights of a `.keras` file. The
    optimizer state in the file is restored too when the model is compiled, as Keras does."""
    src = Source(str(filepath))
    order = [layer.name for layer in keras_layers_of(model)]
    if not is_hdf5(filepath):
        with _open_zip(src, filepath) as zf, _h5_from_zip(src, zf) as f:
            opt_values = _load_weights_store(src, f, model, order)
    else:
        with _open_h5(src, filepath) as f:
            opt_values = None
            if "model_weights" in f:
                _load_legacy_weights(src, f["model_weights"], model, by_name=False)
            elif "layer_names" in f.attrs:
                _load_legacy_weights(src, f, model, by_name=False)
            elif "layers" in f or "_layer_checkpoint_dependencies" in f:
                opt_values = _load_weights_store(src, f, model, order)
            else:
                src.fail("is an HDF5 file without Keras weights (no layers or model_weights)")
    if opt_values is not None and getattr(model, "compiled", False) and model.optimizer:
        try:
            restore_optimizer(src, model, opt_values)
        except ValueError as e:      # Keras skips a mismatching optimizer with a warning
            warnings.warn(f"optimizer state not loaded: {e}", stacklevel=3)
