"""Layer base class, symbolic KerasTensor, Input / InputLayer.

Every layer has Keras's public face (`build`, `call`, `compute_output_shape`, `get_config`,
`get_weights`/`set_weights`, `name`, `input`, `output`) and cnnfast's execution face:
`forward(x, training)` returns the output (a buffer the layer owns and reuses), and
`backward(dout)` fills `self.grads` (same order and shapes as `self.weights`) and returns
d(input). Buffers are cached per shape, so a training loop allocates nothing after its first
two steps (a full and a last partial batch).
"""
from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from .. import backend, regularizers

_name_counts: dict = defaultdict(int)


def _snake(name):
    # Keras's to_snake_case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d.
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base):
    """Keras-style automatic names: conv2d, conv2d_1, conv2d_2, ..."""
    n = _name_counts[base]
    _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def reset_names():
    _name_counts.clear()


def shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


# The position of this batch's first row in a larger global batch, set around a data-parallel
# train step on the LayerEngine (executor._SampleOffset, cnnfast.distributed): Dropout and the
# augmentation layers then draw what the global batch gives these rows. 0 everywhere else.
sample_offset = 0


class KerasTensor:
    """A symbolic tensor: a shape (batch axis None) and the layer call that produces it."""

    def __init__(self, shape, layer=None, inbound=(), name=None):
        self.shape = tuple(shape)
        self.dtype = "float32"
        self._layer = layer
        self._inbound = list(inbound)
        self.name = name or (layer.name if layer is not None else "keras_tensor")

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={shape_str(self.shape)}, dtype=float32, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("A symbolic KerasTensor has no value; call model.predict() to compute it")

    def __bool__(self):
        raise TypeError(f"A symbolic KerasTensor ({self.name}, shape {shape_str(self.shape)}) "
                        "has no truth value: Python control flow cannot depend on its values")


_COMMON_KWARGS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim",
                  "batch_size"}


class Layer:
    """Base class of every cnnfast layer."""

    # A layer whose training forward draws random numbers (Dropout): it takes `seed=`, the
    # stream the engine derives for it from the step's seed (cnnfast/executor.py).
    stochastic = False
    # How many of the last weights are state no optimizer updates, whatever `trainable` says
    # (BatchNormalization's moving statistics): they get no gradient and are never trainable.
    _n_state_weights = 0
    # Regularizers (cnnfast/regularizers.py), set by a layer that takes them through
    # _set_regularizers: {weight attribute name: regularizer} and the output's one.
    _weight_regularizers: dict = {}
    activity_regularizer = None

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, batch_size=None, **kwargs):
        # Keras's base Layer takes activity_regularizer for every layer; cnnfast runs it on the
        # layers that take it themselves (Conv2D, Dense), so any other layer refuses one.
        if kwargs.pop("activity_regularizer", None) is not None:
            raise NotImplementedError(f"{type(self).__name__}: argument activity_regularizer is "
                                      "not supported by cnnfast on this layer (Conv2D and Dense "
                                      "take one)")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments "
                            f"{sorted(kwargs)}")
        if dtype not in (None, "float32", np.float32):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r}; cnnfast "
                                      "computes in float32 only")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self.weights_list: list = []    # Keras order: kernel, bias
        self.grads: list = []
        self._bufs: dict = {}
        self.input = None
        self.output = None
        self._n_calls = 0
        self._batch_input_shape = None
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(_as_shape(input_shape, self.name))
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, int(input_dim))

    # ---- Keras face -------------------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs, training=False):
        """Eager call on a NumPy array (returns a new array)."""
        return np.array(self.forward(_as_input(inputs), bool(training)), copy=True)

    def get_config(self):
        """JSON-able constructor arguments: `type(layer).from_config(layer.get_config())`
        makes an equivalent (unbuilt) layer."""
        c = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self._batch_input_shape is not None:
            c["batch_input_shape"] = self._batch_input_shape
        for attr, reg in self._weight_regularizers.items():
            c[attr + "_regularizer"] = regularizers.serialize(reg)
        if self.activity_regularizer is not None:  # as Keras: only when set
            c["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return c

    @classmethod
    def from_config(cls, config):
        """A new layer from get_config() output (tuples may arrive as lists, initializers as
        names or {'class_name', 'config'} dicts of the built-in initializer classes)."""
        from ._util import deserialize_initializer
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict, got "
                            f"{type(config).__name__}")
        config = dict(config)
        for key in ("kernel_initializer", "bias_initializer", "beta_initializer",
                    "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer"):
            if key in config:
                config[key] = deserialize_initializer(config[key],
                                                      f"{cls.__name__}.from_config: {key}")
        for key, value in config.items():
            if key.endswith("_regularizer") and isinstance(value, dict):
                config[key] = regularizers.deserialize(value)
        return cls(**config)

    # The weights as Keras shows them: Variables (name 'kernel', path 'dense/kernel', .numpy(),
    # .assign()) over the arrays in weights_list, which the engines and optimizers use.
    @property
    def weights(self):
        return self._variables()

    @property
    def variables(self):
        return self._variables()

    def _n_updatable(self):
        return len(self.weights_list) - self._n_state_weights

    @property
    def trainable_weights(self):
        return self._variables()[:self._n_updatable()] if self.trainable else []

    @property
    def non_trainable_weights(self):
        vs = self._variables()
        return vs[self._n_updatable():] if self.trainable else vs

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def _trainable_arrays(self):
        """The arrays of trainable_weights (what the engines hand to the optimizer)."""
        return list(self.weights_list[:self._n_updatable()]) if self.trainable else []

    def _variables(self):
        cache = self.__dict__.get("_variables_cache")
        if cache is None or len(cache) != len(self.weights_list) or any(
                v._value is not w for v, w in zip(cache, self.weights_list)):
            cache = self._variables_cache = [
                Variable(self, i, _weight_name(self, i, w))
                for i, w in enumerate(self.weights_list)]
        return list(cache)

    @property
    def trainable_grads(self):
        """The gradients of trainable_weights, in the same order (what the engines hand to
        the optimizer)."""
        return list(self.grads) if self.trainable else []

    def get_weights(self):
        return [w.copy() for w in self.weights_list]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.weights_list):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects "
                             f"{len(self.weights_list)} weight arrays, got {len(weights)}")
        for i, (dst, src) in enumerate(zip(self.weights_list, weights)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): weight {i} has "
                                 f"shape {shape_str(dst.shape)}, got {shape_str(src.shape)}")
            if not np.all(np.isfinite(src)):
                raise ValueError(f"Layer '{self.name}': weight {i} contains NaN or inf")
            dst[...] = src  # in place: optimizer slots and buffers keep pointing at it

    def count_params(self):
        return int(sum(w.size for w in self.weights_list))

    def __call__(self, inputs, training=None, **kwargs):
        if kwargs:
            raise NotImplementedError(f"{type(self).__name__}.__call__: arguments "
                                      f"{sorted(kwargs)} are not supported")
        if isinstance(inputs, (list, tuple)) and inputs and \
                all(isinstance(t, KerasTensor) for t in inputs):
            if len(inputs) == 1:
                inputs = inputs[0]
            else:
                raise NotImplementedError(f"{type(self).__name__} takes one input, got "
                                          f"{len(inputs)}")
        if isinstance(inputs, KerasTensor):
            if type(self).forward is Layer.forward:
                raise _custom_layer_error(self)
            self._ensure_built(inputs.shape)
            out = KerasTensor(self.compute_output_shape(inputs.shape), self, [inputs])
            if self._n_calls == 0:
                self.input, self.output = inputs, out
            self._n_calls += 1
            return out
        x = _as_input(inputs)
        self._ensure_built((None,) + x.shape[1:])
        return self.call(x, training=bool(training))

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, name=None,
                   **kwargs):
        raise _custom_layer_error(self)

    # ---- regularizers (docs/keras_semantics.md#regularizers) ---------------------------------
    def _set_regularizers(self, activity=None, **weights):
        """The layer's regularizers, in one line of its __init__:
        `self._set_regularizers(activity_regularizer, kernel=kernel_regularizer, bias=...)`,
        each weight named by the attribute that holds it after build. A layer that sets an
        activity regularizer returns `self._activity(y)` from forward and starts backward with
        `dout = self._activity_backward(dout, dout_is_dlogits)`."""
        where = f"{type(self).__name__} '{self.name}'"
        self._weight_regularizers = {
            attr: regularizers.for_layer(r, where, attr + "_regularizer")
            for attr, r in weights.items()}
        self.activity_regularizer = regularizers.for_layer(activity, where,
                                                           "activity_regularizer")
        self._activity_penalty = None

    def regularizer_factors(self):
        """Per entry of trainable_weights, the (l1, l2) of its regularizer or None: what
        both engines add to the loss and its gradient (cnnfast/executor.py)."""
        regs = {id(getattr(self, attr, None)): r
                for attr, r in self._weight_regularizers.items() if r is not None}
        return [regs[id(w)].factors() if id(w) in regs else None
                for w in self._trainable_arrays()]

    def _activity(self, y):
        """Records the activity penalty of output y (B, ...): Keras's regularizer(y) / B
        (keras/src/layers/layer.py), float32."""
        if self.activity_regularizer is not None:
            l1, l2 = self.activity_regularizer.factors()
            pen = backend.weight_penalty(None, np.ascontiguousarray(y), l1, l2, 1.0)
            self._activity_penalty = np.float32(pen) / np.float32(max(y.shape[0], 1))
            self._activity_out = y
        return y

    def _activity_backward(self, dout, dout_is_dlogits=False):
        """dout plus the activity penalty's gradient, reg'(y) / B (a new buffer)."""
        if self.activity_regularizer is None:
            return dout
        if dout_is_dlogits:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': an activity_regularizer on the output "
                "layer whose activation the loss reads as logits (softmax with a "
                "cross-entropy, sigmoid with binary_crossentropy) is not supported")
        y = self._activity_out
        d = self._buffer("activity_dout", dout.shape)
        d[...] = dout
        l1, l2 = self.activity_regularizer.factors()
        backend.weight_penalty(d, np.ascontiguousarray(y), l1, l2,
                               float(np.float32(1.0) / np.float32(y.shape[0])))
        return d

    @property
    def losses(self):
        """The layer's current penalties (float32 scalars), as Keras's layer.losses: its
        activity penalty of the last call, then its trainable weights' penalties."""
        out = []
        if self.activity_regularizer is not None and self._activity_penalty is not None:
            out.append(self._activity_penalty)
        for w, f in zip(self._trainable_arrays(), self.regularizer_factors()):
            if f is not None:
                out.append(np.float32(backend.weight_penalty(None, w, f[0], f[1], 1.0)))
        return out

    # ---- execution face ---------------------------------------------------------------------
    def forward(self, x, training):
        """The output for batch x; stochastic layers also take `seed=` (their stream)."""
        raise _custom_layer_error(self)

    def backward(self, dout, need_dinp=True):
        raise _custom_layer_error(self)

    def _ensure_built(self, input_shape):
        if not self.built:
            self._check_input_shape(tuple(input_shape))
            self.build(tuple(input_shape))
            self.built = True
            self._built_input_shape = tuple(input_shape)
            self.grads = [np.zeros_like(w) for w in self.weights_list[:self._n_updatable()]]
        else:
            self._check_compatible(tuple(input_shape))

    def _check_input_shape(self, input_shape):
        """Subclasses raise ValueError naming the layer when the rank/shape is unusable."""

    def _check_compatible(self, input_shape):
        ref = getattr(self, "_built_input_shape", None)
        if ref is None:
            return
        ok = len(ref) == len(input_shape) and all(
            a is None or b is None or a == b for a, b in zip(ref[1:], input_shape[1:]))
        if not ok:
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) is "
                             f"incompatible with the layer: expected shape {shape_str(ref)}, "
                             f"found shape {shape_str(input_shape)}")

    def _add_weight(self, shape, initializer):
        w = np.ascontiguousarray(initializer(tuple(shape)), dtype=np.float32)
        if w.shape != tuple(shape):
            raise ValueError(f"Layer '{self.name}': initializer returned shape {w.shape}, "
                             f"expected {tuple(shape)}")
        self.weights_list.append(w)
        return w

    def _buffer(self, key, shape, dtype=np.float32):
        """A reusable array for (key, shape): allocated once per distinct batch size."""
        k = (key, tuple(shape))
        b = self._bufs.get(k)
        if b is None:
            b = self._bufs[k] = np.empty(shape, dtype=dtype)
        return b

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _as_shape(shape, where):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(None if d is None else int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        if d is not None and d <= 0:
            raise ValueError(f"{where}: shape dimensions must be positive, got {shape}")
    return shape


def _as_input(x):
    x = np.asarray(x)
    if x.dtype == object:
        raise TypeError("layer input must be a numeric array")
    return np.ascontiguousarray(x, dtype=np.float32)


class InputLayer(Layer):
    """The graph's entry: holds the input shape (batch axis None)."""

    def __init__(self, shape=None, batch_size=None, name=None, input_shape=None,
                 batch_shape=None, dtype=None, sparse=None, **kwargs):
        if sparse:
            raise NotImplementedError("InputLayer: sparse inputs are not supported")
        if shape is None and input_shape is not None:
            shape = input_shape
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        if batch_shape is not None:
            full = tuple(batch_shape)
        elif shape is not None:
            full = (batch_size,) + _as_shape(shape, "Input")
        else:
            raise ValueError("Input/InputLayer needs shape=(...) (without the batch axis)")
        self._batch_input_shape = full
        self.built = True
        self._built_input_shape = full
        self.output = KerasTensor(full, self, [], name=self.name)
        self.input = self.output
        self._n_calls = 1

    def compute_output_shape(self, input_shape):
        return self._batch_input_shape

    def forward(self, x, training):
        return x

    def backward(self, dout, need_dinp=True):
        return dout

    def get_config(self):
        return {"name": self.name, "batch_shape": self._batch_input_shape,
                "dtype": "float32"}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, sparse=None,
          tensor=None, **kwargs):
    """A symbolic input tensor, as keras.Input(shape=(28, 28, 1))."""
    if tensor is not None:
        raise NotImplementedError("Input(tensor=...) is not supported")
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype,
                       batch_shape=batch_shape, sparse=sparse, **kwargs)
    return layer.output


# =============================================================================================
# variables and user-defined layers
# =============================================================================================
def _custom_layer_error(layer):
    cls = type(layer).__name__
    return NotImplementedError(
        f"layer '{layer.name}' ({cls}): cnnfast cannot run user-defined layers (subclasses of "
        f"keras.layers.Layer with their own build/call/add_weight), since it differentiates "
        "only its own layers, in C++; compose built-in layers instead (a subclassed "
        "keras.Model whose call() chains them is supported)")


def _weight_name(layer, i, w):
    """Keras's variable name: the layer attribute holding the array ('kernel', 'bias',
    'gamma', 'moving_mean', ...), else 'variable'."""
    for key, value in vars(layer).items():
        if value is w and not key.startswith("_") and key != "weights_list":
            return key
    return "variable" if i == 0 else f"variable_{i}"


class Variable(np.lib.mixins.NDArrayOperatorsMixin):
    """A layer weight as Keras 3 shows it: `name` ('kernel'), `path` ('dense/kernel'),
    `shape`, `dtype` ('float32'), `trainable`, `numpy()` (a copy), `assign(value)` (in place),
    `value`; NumPy functions and operators see the values (`np.asarray(v)`, `v * 2`). It is a
    view of the layer's weight array: `assign` changes what the layer computes with."""

    __array_priority__ = 20

    def __init__(self, layer, index, name):
        self._layer = layer
        self._index = index
        self._value = layer.weights_list[index]
        self.name = name

    @property
    def path(self):
        return f"{getattr(self._layer, '_variable_prefix', '')}{self._layer.name}/{self.name}"

    @property
    def value(self):
        return self._value

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return "float32"

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    @property
    def trainable(self):
        """Keras's rule: a weight trains with its layer, except state (moving statistics)."""
        return bool(self._layer.trainable) and self._index < self._layer._n_updatable()

    def numpy(self):
        return self._value.copy()

    def assign(self, value):
        value = np.asarray(value, dtype=np.float32)
        if value.shape != self._value.shape:
            raise ValueError(f"Variable '{self.path}': cannot assign a value of shape "
                             f"{shape_str(value.shape)} to a variable of shape "
                             f"{shape_str(self._value.shape)}")
        self._value[...] = value
        return self

    def assign_add(self, delta):
        return self.assign(self._value + np.asarray(delta, dtype=np.float32))

    def assign_sub(self, delta):
        return self.assign(self._value - np.asarray(delta, dtype=np.float32))

    def __array__(self, dtype=None, copy=None):
        a = self._value if dtype is None else self._value.astype(dtype, copy=False)
        return a.copy() if copy else a

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x._value if isinstance(x, Variable) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(x._value if isinstance(x, Variable) else x
                                  for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __len__(self):
        return len(self._value)

    def __getitem__(self, key):
        return self._value[key]

    def __iter__(self):
        return iter(self._value)

    def __bool__(self):
        return bool(self._value)

    def __hash__(self):
        return id(self)

    def __getattr__(self, name):
        # the rest of the array's face (.copy(), .sum(), .reshape(), .T, ...)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._value, name)

    def __repr__(self):
        return (f"<Variable path={self.path}, shape={shape_str(self.shape)}, dtype=float32, "
                f"value={self._value}>")
