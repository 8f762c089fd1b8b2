"""The per-layer mapping between cnnfast layers and Keras 3 layer configs, both ways.

One table, LAYERS, used by every Keras path: writing `.keras` / `.h5` files
(saving/keras_files.py), reading them without TensorFlow, and the in-memory conversion with
TensorFlow (cnnfast.interop.from_keras). An entry says, for one class:

    args      the config keys passed between the two sides unchanged (initializers and
              regularizers converted: Keras's serialized objects <-> cnnfast's specs)
    fixed     keys Keras has and cnnfast runs with one value only: written with that value,
              and on reading any other value is a NotImplementedError naming the argument
    weights   the Keras variable names of the layer's weights, in Keras's (= cnnfast's) order,
              from the cnnfast config (legacy .h5 files name each weight)
    build_config  whether Keras writes the layer's build_config (its input shape)
    optional  args cnnfast's config has only when set (activity_regularizer), each with
              what Keras writes when it is not: a value, or OMIT (Keras leaves the key out)
    plain     Keras's config has no `trainable` and a plain-string dtype (SpatialDropout2D)

A new layer is one entry here (and its class in serialization.LAYER_CLASSES). The keys every
layer has (name, trainable, dtype) are handled here for all of them. Pure data: imports no
model code and no TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import layers as layers_mod

_COMMON = ("name", "trainable", "dtype")
_CL = {"data_format": "channels_last"}
_RESAMPLE = ("seed", "fill_mode", "interpolation", "fill_value")
OMIT = object()


@dataclass(frozen=True)
class Spec:
    args: tuple = ()
    fixed: dict = field(default_factory=dict)
    weights: object = None          # cnnfast config -> [names]; None: the layer has none
    build_config: bool = False      # Keras writes the layer's input shape (layers with build())
    optional: dict = field(default_factory=dict)   # args cnnfast's config may lack
    plain: bool = False             # Keras's config has no `trainable`, its dtype a string


def _kernel_bias(cfg):
    return ["kernel", "bias"] if cfg.get("use_bias", True) else ["kernel"]


def _bn_weights(cfg):
    return (["gamma"] if cfg.get("scale", True) else []) + \
        (["beta"] if cfg.get("center", True) else []) + ["moving_mean", "moving_variance"]


_INITS = ("kernel_initializer", "bias_initializer")
_REGS = ("kernel_regularizer", "bias_regularizer")
_NO_CONSTRAINT = {"kernel_constraint": None, "bias_constraint": None}
_DW_FIXED = {**_CL, "depthwise_regularizer": None, "bias_regularizer": None,
             "activity_regularizer": None, "depthwise_constraint": None, "bias_constraint": None}
_DW_ARGS = ("depth_multiplier", "kernel_size", "strides", "padding", "dilation_rate",
            "activation", "use_bias", "depthwise_initializer", "bias_initializer")
LAYERS = {
    "Conv2D": Spec(("filters", "kernel_size", "strides", "padding", "dilation_rate",
                    "activation", "use_bias") + _INITS + _REGS,
                   {**_CL, "groups": 1, **_NO_CONSTRAINT}, _kernel_bias, True,
                   {"activity_regularizer": None}),
    "Dense": Spec(("units", "activation", "use_bias") + _INITS + _REGS,
                  {**_NO_CONSTRAINT, "quantization_config": None}, _kernel_bias, True,
                  {"activity_regularizer": OMIT}),
    "DepthwiseConv2D": Spec(_DW_ARGS, dict(_DW_FIXED), _kernel_bias, True),
    "SeparableConv2D": Spec(("filters",) + _DW_ARGS + ("pointwise_initializer",),
                            {**_DW_FIXED, "pointwise_regularizer": None,
                             "pointwise_constraint": None},
                            lambda cfg: ["depthwise_kernel", "pointwise_kernel"] +
                            (["bias"] if cfg.get("use_bias", True) else []), True),
    "MaxPooling2D": Spec(("pool_size", "strides", "padding"), dict(_CL)),
    "AveragePooling2D": Spec(("pool_size", "strides", "padding"), dict(_CL)),
    "Flatten": Spec((), dict(_CL), build_config=True),
    "Dropout": Spec(("rate", "seed"), {"noise_shape": None}),
    # Keras's SpatialDropout2D takes no `trainable` and writes its dtype as a plain string
    "SpatialDropout2D": Spec(("rate", "seed"), dict(_CL), plain=True),
    "Activation": Spec(("activation",)),
    "ReLU": Spec(("max_value", "negative_slope", "threshold")),
    "LeakyReLU": Spec(("negative_slope",)),
    "ELU": Spec(("alpha",)),
    "PReLU": Spec(("alpha_initializer", "shared_axes"),
                  {"alpha_regularizer": None, "alpha_constraint": None},
                  lambda cfg: ["alpha"], True),
    "Softmax": Spec(("axis",)),
    "BatchNormalization": Spec(
        ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
         "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer"),
        {"beta_regularizer": None, "gamma_regularizer": None,
         "beta_constraint": None, "gamma_constraint": None, "synchronized": False,
         "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99}, _bn_weights, True),
    "GlobalAveragePooling2D": Spec(("keepdims",), dict(_CL)),
    "GlobalMaxPooling2D": Spec(("keepdims",), dict(_CL)),
    "Rescaling": Spec(("scale", "offset"), build_config=True),
    "Reshape": Spec(("target_shape",), build_config=True),
    "ZeroPadding2D": Spec(("padding",), dict(_CL), build_config=True),
    "RandomFlip": Spec(("seed", "mode"), dict(_CL)),
    "RandomRotation": Spec(("factor",) + _RESAMPLE, dict(_CL)),
    "RandomZoom": Spec(("height_factor", "width_factor") + _RESAMPLE, dict(_CL)),
    "RandomTranslation": Spec(("height_factor", "width_factor") + _RESAMPLE, dict(_CL),
                              build_config=True),
    "RandomContrast": Spec(("factor", "value_range", "seed"), dict(_CL), build_config=True),
    "RandomCrop": Spec(("height", "width", "seed"), dict(_CL), build_config=True),
}
INPUT_FIXED = {"sparse": False, "ragged": False, "optional": False}

# cnnfast initializer names <-> Keras initializer classes
_INIT_TO_KERAS = {"glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal",
                  "he_normal": "HeNormal", "he_uniform": "HeUniform", "zeros": "Zeros",
                  "ones": "Ones"}
_INIT_FROM_KERAS = {v: k for k, v in _INIT_TO_KERAS.items()}
_SEEDED = ("GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform")
# the regularizers cnnfast runs (cnnfast/regularizers.py), with their config keys
_REGULARIZERS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
_GLOROT_DEFAULT = ("kernel_initializer", "depthwise_initializer", "pointwise_initializer")
_ONES_DEFAULT = ("gamma_initializer", "moving_variance_initializer")


def keras_object(module, class_name, config, registered_name=None):
    """Keras's serialize_keras_object form."""
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": registered_name}


DTYPE_POLICY = keras_object("keras", "DTypePolicy", {"name": "float32"})


def snake_case(name):
    """keras.src.utils.naming.to_snake_case: the h5 group name of a layer class."""
    import re
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# =============================================================================================
# cnnfast -> Keras
# =============================================================================================
def _initializer_to_keras(value):
    if isinstance(value, str):
        cls, seed = _INIT_TO_KERAS.get(value), None
    elif isinstance(value, dict):
        cls, seed = value.get("class_name"), (value.get("config") or {}).get("seed")
    else:
        cls = seed = None
    if cls not in _INIT_FROM_KERAS:
        raise ValueError(f"cannot write initializer {value!r} to a Keras file")
    return keras_object("keras.initializers", cls, {"seed": seed} if cls in _SEEDED else {})


def _regularizer_to_keras(value, where, key):
    """Keras's serialized regularizer for cnnfast's (regularizers.serialize: the same form)."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("class_name") in _REGULARIZERS and \
            isinstance(value.get("config"), dict) and \
            set(value["config"]) <= set(_REGULARIZERS[value["class_name"]]):
        return keras_object("keras.regularizers", value["class_name"],
                            {k: float(v) for k, v in value["config"].items()})
    raise ValueError(f"{where}: cannot write {key}={value!r} to a Keras file")


def _listify(v):
    if isinstance(v, (list, tuple)):
        return [_listify(x) for x in v]
    return v


def _same(value, required):
    """Whether a config value equals the one cnnfast requires (ints broadcast to tuples)."""
    if isinstance(required, tuple):
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,) * len(required)
        return isinstance(value, (list, tuple)) and tuple(value) == required
    if required is None or isinstance(required, (str, bool)):
        return value == required and type(value) is type(required)
    if isinstance(value, (list, tuple)) and len(value) == 1:   # Softmax(axis=[-1]), BN [3]
        value = value[0]
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == required


def layer_to_keras(class_name, cfg, where):
    """The Keras config of a cnnfast layer config (class_name, cnnfast get_config())."""
    if class_name == "InputLayer":
        return {"batch_shape": _listify(cfg["batch_shape"]), "dtype": "float32",
                **INPUT_FIXED, "name": cfg["name"]}
    spec = LAYERS.get(class_name)
    if spec is None:
        raise NotImplementedError(f"{where}: layer class {class_name} has no Keras mapping "
                                  f"(cnnfast.saving.keras_layers.LAYERS: {sorted(LAYERS)})")
    out = {"name": cfg["name"], "dtype": "float32"} if spec.plain else \
        {"name": cfg["name"], "trainable": bool(cfg.get("trainable", True)),
         "dtype": DTYPE_POLICY}
    for key, value in cfg.items():
        if key in _COMMON or key == "batch_input_shape":
            continue
        if key in spec.args or key in spec.optional:
            continue
        if key not in spec.fixed or not _same(value, spec.fixed[key]):
            raise ValueError(f"{where}: config key {key}={value!r} has no Keras mapping "
                             f"(cnnfast.saving.keras_layers.LAYERS['{class_name}'])")
    for key in spec.args + tuple(spec.optional):
        if key not in cfg:
            if key not in spec.optional:
                raise ValueError(f"{where}: config has no {key!r}")
            if spec.optional[key] is not OMIT:
                out[key] = spec.optional[key]
            continue
        value = cfg[key]
        if key.endswith("_initializer"):
            out[key] = _initializer_to_keras(value)
        elif key.endswith("_regularizer"):
            out[key] = _regularizer_to_keras(value, where, key)
        else:
            out[key] = _listify(value)
    for key, value in spec.fixed.items():
        out[key] = _listify(value)
    return out


def weight_names(class_name, cfg):
    spec = LAYERS.get(class_name)
    return [] if spec is None or spec.weights is None else spec.weights(cfg)


# =============================================================================================
# Keras -> cnnfast
# =============================================================================================
def dtype_name(dtype):
    if isinstance(dtype, dict):
        return (dtype.get("config") or {}).get("name")
    return getattr(dtype, "name", dtype)


def _unsupported(where, arg, value):
    return NotImplementedError(f"{where}: argument {arg}={value!r} is not supported by "
                               "cnnfast")


def _initializer_from_keras(value, default):
    """A cnnfast initializer spec for a Keras one; unknown ones get the default (initializers
    only matter for fresh weights, and the weights are loaded)."""
    if value is None or isinstance(value, str):
        return value or default
    if isinstance(value, dict):
        name = _INIT_FROM_KERAS.get(value.get("class_name"))
        seed = (value.get("config") or {}).get("seed")
        if name is None:
            return default
        if seed is None or name in ("zeros", "ones"):
            return name
        return {"class_name": value["class_name"], "config": {"seed": int(seed)}}
    return default


def _regularizer_from_keras(value, where, key):
    """cnnfast's regularizer spec for a serialized Keras one (Keras 3's {module, class_name,
    config, registered_name}, or Keras 2's {class_name, config}); the L1, L2 and L1L2 cnnfast
    runs, anything else a NotImplementedError naming the argument."""
    if value is None:
        return None
    cls = value.get("class_name") if isinstance(value, dict) else value
    cfg = value.get("config") if isinstance(value, dict) else None
    module = value.get("module", "keras.regularizers") if isinstance(value, dict) else None
    ok = cls in _REGULARIZERS and isinstance(cfg, dict) and \
        module in ("keras.regularizers", "keras.src.regularizers.regularizers") and \
        value.get("registered_name") in (None, cls) and set(cfg) <= set(_REGULARIZERS[cls])
    if not ok:
        raise NotImplementedError(
            f"{where}: argument {key}={cls!r} is not supported by cnnfast (it runs the "
            f"regularizers {sorted(_REGULARIZERS)})")
    return {"class_name": cls, "config": dict(cfg)}


def check_input_config(cfg, where):
    """The cnnfast InputLayer config for a Keras InputLayer config (Keras 3 'batch_shape' or
    Keras 2 'batch_input_shape')."""
    for key in ("sparse", "ragged", "optional"):
        if cfg.get(key):
            raise _unsupported(where, key, cfg[key])
    dtype = dtype_name(cfg.get("dtype"))
    if dtype not in (None, "float32"):
        raise _unsupported(where, "dtype", dtype)
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, (list, tuple)) or not shape:
        raise ValueError(f"{where}: InputLayer config has no batch_shape")
    return {"name": cfg.get("name"), "batch_shape": list(shape)}


def layer_kwargs_from_keras(class_name, cfg, where):
    """cnnfast constructor kwargs for a Keras layer (class_name, Keras get_config()); raises
    NotImplementedError naming the layer class or the argument cnnfast does not run."""
    spec = LAYERS.get(class_name)
    if spec is None:
        raise NotImplementedError(
            f"{where}: Keras layer class {class_name} is not supported by cnnfast; supported "
            f"layers: InputLayer, {', '.join(sorted(LAYERS))}")
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: layer config must be an object")
    dtype = dtype_name(cfg.get("dtype"))
    if dtype not in (None, "float32"):
        raise _unsupported(where, "dtype", dtype)
    kwargs = {"name": cfg.get("name"), "trainable": bool(cfg.get("trainable", True))}
    for key, value in cfg.items():
        if key in _COMMON:
            continue
        if key == "batch_input_shape":          # Keras 2: the first layer's input shape
            if value is not None:
                kwargs[key] = value
            continue
        if key in spec.args or key in spec.optional:
            if key.endswith("_initializer"):
                value = _initializer_from_keras(
                    value, "glorot_uniform" if key in _GLOROT_DEFAULT else
                    "ones" if key in _ONES_DEFAULT else "zeros")
            elif key.endswith("_regularizer"):
                value = _regularizer_from_keras(value, where, key)
            elif key == "axis" and isinstance(value, list) and len(value) == 1:
                value = value[0]                # Keras 2 wrote BatchNormalization axis [3]
            elif key == "activation" and not isinstance(value, str):
                raise _unsupported(where, key, value.get("class_name", value)
                                   if isinstance(value, dict) else value)
            kwargs[key] = value
        elif key in spec.fixed:
            if not _same(value, spec.fixed[key]):
                raise _unsupported(where, key, value)
        elif value not in (None, False):
            raise _unsupported(where, key, value)
    return kwargs


def check_runs(class_name, kwargs, where):
    """NotImplementedError naming the argument when the cnnfast layer refuses these kwargs (a
    value the table passes on, e.g. Softmax over several axes); other errors are left to the
    model's from_config, which reports an invalid config."""
    try:
        getattr(layers_mod, class_name).from_config(dict(kwargs))
    except NotImplementedError as e:
        raise NotImplementedError(f"{where}: {e}") from e
    except (ValueError, TypeError):
        pass


def layer_from_keras(class_name, cfg, where):
    """A new cnnfast layer for a Keras layer config."""
    kwargs = layer_kwargs_from_keras(class_name, cfg, where)
    try:
        return getattr(layers_mod, class_name).from_config(kwargs)
    except (NotImplementedError, ValueError, TypeError) as e:
        raise NotImplementedError(f"{where}: {e}") from e
