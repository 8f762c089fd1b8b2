"""Model (functional graph) with compile / fit / evaluate / predict / summary.

A model is a list of layer calls in topological order over symbolic tensors. Training runs
the layers' native forward kernels in order, the fused loss, the backward kernels in reverse
and the optimizer's fused update; every buffer is owned by a layer and reused across steps.
"""
from __future__ import annotations

import math

import numpy as np

from .. import callbacks as callbacks_mod
from .. import executor, utils
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..layers.base import InputLayer, KerasTensor, shape_str, unique_name
from ..saving import archive, saving_lib, serialization
from . import keras_export
from .node import Node


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _positive_int(value, what, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


@serialization.register_model_class
class Model:
    """A functional model: Model(inputs=Input(...), outputs=tensor_or_list)."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unrecognized keyword arguments {sorted(kwargs)}")
        if inputs is None or outputs is None:
            raise NotImplementedError("Model subclassing is not supported; build a functional "
                                      "model with Model(inputs=..., outputs=...) or use "
                                      "Sequential")
        self.name = name or unique_name("functional")
        self.trainable = trainable
        self._init_training_state()
        self._build_graph(inputs, outputs)

    def _init_training_state(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metrics = []

    # ---- graph ------------------------------------------------------------------------------
    def _build_graph(self, inputs, outputs):
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        ins = [inputs] if self._single_input else list(inputs)
        outs = [outputs] if self._single_output else list(outputs)
        for t in ins + outs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model inputs/outputs must be symbolic tensors from "
                                f"keras.Input / layer calls, got {type(t).__name__}")
        for t in ins:
            if not isinstance(t._layer, InputLayer):
                raise ValueError("Model inputs must come from keras.Input(...)")
        order, seen = [], set()

        def visit(t):
            if id(t) in seen:
                return
            seen.add(id(t))
            for s in t._inbound:
                visit(s)
            order.append(t)

        for t in outs:
            visit(t)
        index = {id(t): i for i, t in enumerate(order)}
        for t in order:
            if isinstance(t._layer, InputLayer) and not any(t is s for s in ins):
                raise ValueError(f"Graph disconnected: output depends on input "
                                 f"'{t._layer.name}', which is not in Model(inputs=...)")
        self._tensors = order
        self._input_ids = [index[id(t)] for t in ins]
        self._output_ids = [index[id(t)] for t in outs]
        self._plan = []
        used = set()
        for t in order:
            if isinstance(t._layer, InputLayer):
                continue
            if id(t._layer) in used:
                raise NotImplementedError(f"layer '{t._layer.name}' is called more than once in "
                                          "this model; shared layers are not supported")
            used.add(id(t._layer))
            self._plan.append((t._layer, index[id(t._inbound[0])], index[id(t)]))
        self.inputs, self.outputs = ins, outs
        self.input = ins[0] if len(ins) == 1 else ins
        self.output = outs[0] if len(outs) == 1 else outs
        layers = []
        for t in order:
            if t._layer not in layers:
                layers.append(t._layer)
        self._all_layers = layers
        self.built = True

    @property
    def layers(self):
        return list(self._all_layers)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}.")

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights_list]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights] \
            if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights] \
            if self.trainable else self.weights

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"Model '{self.name}' has {len(own)} weight arrays, got "
                             f"{len(weights)}")
        for layer in self.layers:
            n = len(layer.weights_list)
            layer.set_weights(weights[:n])
            weights = weights[n:]

    def count_params(self):
        return int(sum(layer.count_params() for layer in self.layers))

    # ---- graph view, config, saving ------------------------------------------------------
    # cnnfast.saving and cnnfast.interop read a model through this view and these methods;
    # the models call down into cnnfast.saving's modules, which never import the models.
    @property
    def nodes(self):
        """The layer calls of the graph in topological order, as [Node(layer, inbound_layers)];
        InputLayers are included, with inbound_layers ()."""
        return [Node(t._layer, tuple(s._layer for s in t._inbound)) for t in self._tensors]

    @property
    def input_layers(self):
        """The InputLayers of `inputs`, in order ([] for a Sequential not built yet)."""
        if self._tensors is None:
            return []
        return [self._tensors[i]._layer for i in self._input_ids]

    @property
    def output_layers(self):
        """The layers producing `outputs`, in order ([] for a Sequential not built yet)."""
        if self._tensors is None:
            return []
        return [self._tensors[i]._layer for i in self._output_ids]

    def get_config(self):
        """The architecture as JSON-able data (config.json's "config", docs/file_format.md):
        each layer's {"class_name", "config"} plus its "inbound" layer name, the input and
        output layer names, and whether inputs/outputs were one tensor or a list."""
        entries = []
        for node in self.nodes:
            e = serialization.serialize_layer(node.layer)
            e["inbound"] = node.inbound_layers[0].name if node.inbound_layers else None
            entries.append(e)
        names = [e["config"]["name"] for e in entries]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"cannot save model '{self.name}': layer names must be unique, "
                             f"{dup} occur more than once")
        return serialization.jsonable({
            "name": self.name, "trainable": bool(self.trainable), "layers": entries,
            "input_layers": [layer.name for layer in self.input_layers],
            "output_layers": [layer.name for layer in self.output_layers],
            "single_input": bool(self._single_input),
            "single_output": bool(self._single_output)})

    @classmethod
    def from_config(cls, config):
        """A new (uncompiled, freshly initialised) model from get_config() output; ValueError
        naming the problem for an invalid config. The global rng is left as it was."""
        src = archive.Source(None)
        archive.check_dict(src, config, "Model config", (
            "name", "trainable", "layers", "input_layers", "output_layers", "single_input",
            "single_output"))
        archive.need(src, isinstance(config["name"], str) and all(
            isinstance(config[k], bool) for k in ("trainable", "single_input", "single_output")),
            "Model config: 'name' must be a string, 'trainable'/'single_*' bools")
        for k in ("layers", "input_layers", "output_layers"):
            archive.need(src, isinstance(config[k], list) and config[k], f"Model config: '{k}' "
                         "must be a non-empty list")
        rng_state = utils.rng().bit_generator.state   # building draws initial weights
        try:
            tensors, layers = {}, []
            for i, e in enumerate(config["layers"]):
                layer = serialization.deserialize_layer(src, i, e, functional=True)
                archive.need(src, layer.name not in tensors, f"layer {i}: duplicate layer name "
                             f"'{layer.name}'")
                inbound = e["inbound"]
                if isinstance(layer, InputLayer):
                    archive.need(src, inbound is None, f"layer {i} ('{layer.name}'): an "
                                 "InputLayer has no inbound layer")
                    tensors[layer.name] = layer.output
                else:
                    archive.need(src, isinstance(inbound, str) and inbound in tensors,
                                 f"layer {i} ('{layer.name}'): inbound layer {inbound!r} is not "
                                 "defined before it")
                    try:
                        tensors[layer.name] = layer(tensors[inbound])
                    except (TypeError, ValueError, NotImplementedError) as err:
                        src.fail(f"layer {i} ('{layer.name}') does not fit its input: {err}")
                layers.append(layer)

            def pick(key, single):
                names = config[key]
                archive.need(src, all(isinstance(n, str) and n in tensors for n in names),
                             f"Model config: '{key}' names unknown layers: {names!r}")
                archive.need(src, not single or len(names) == 1, f"Model config: '{key}' has "
                             f"{len(names)} entries but the model takes a single tensor")
                ts = [tensors[n] for n in names]
                return ts[0] if single else ts

            ins = pick("input_layers", config["single_input"])
            for t in (ins if isinstance(ins, list) else [ins]):
                archive.need(src, isinstance(t._layer, InputLayer),
                             f"Model config: input '{t._layer.name}' is not an InputLayer")
            outs = pick("output_layers", config["single_output"])
            try:
                model = cls(inputs=ins, outputs=outs, name=config["name"],
                            trainable=config["trainable"])
            except (TypeError, ValueError, NotImplementedError) as err:
                src.fail(f"invalid model graph: {err}")
            archive.need(src, [id(x) for x in model.layers] == [id(x) for x in layers],
                         "Model config: the layer list does not match the graph from inputs to "
                         "outputs (unconnected layers, or not in topological order)")
            return model
        finally:
            utils.rng().bit_generator.state = rng_state

    def get_compile_config(self):
        """What compile() was given, as JSON-able data (config.json's "compile_config"), or
        None when the model is not compiled."""
        if not self.compiled or self.optimizer is None:
            return None
        return serialization.serialize_compile(self.optimizer, self.loss, self._metrics)

    def save(self, filepath, overwrite=True):
        """Save the whole model (docs/file_format.md); reload with cnnfast.models.load_model."""
        saving_lib.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only (see cnnfast.saving.save_weights)."""
        saving_lib.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved from a model of the same architecture."""
        saving_lib.load_weights(self, filepath)

    def to_keras(self):
        """The equivalent tf.keras model with the same weights, uncompiled (needs TensorFlow)."""
        return keras_export.functional_to_keras(self, self._single_input, self._single_output)

    # ---- execution --------------------------------------------------------------------------
    def _forward(self, xs, training):
        vals = [None] * len(self._tensors)
        for i, x in zip(self._input_ids, xs):
            vals[i] = x
        for layer, i, o in self._plan:
            vals[o] = layer.forward(vals[i], training)
        return [vals[i] for i in self._output_ids]

    def _backward(self, dout, dout_is_dlogits, need_dinp=False):
        """Backpropagate d(output); fills every layer's grads. Returns d(input) when asked
        (a model nested as a layer), else None (the first layer skips computing it)."""
        grads = {self._output_ids[0]: dout}
        inputs = set(self._input_ids)
        first = True
        for layer, i, o in reversed(self._plan):
            g = grads.pop(o, None)
            if g is None:
                continue
            need = need_dinp or i not in inputs
            dx = layer.backward(g, need_dinp=need, dout_is_dlogits=dout_is_dlogits and first)
            first = False
            if need:
                grads[i] = dx if i not in grads else grads[i] + dx
        return grads.get(self._input_ids[0]) if need_dinp else None

    # ---- a model used as a layer (Sequential([model, Softmax()]), model(tensor)) ----------
    @property
    def weights_list(self):
        return self.weights

    @property
    def grads(self):
        return [g for layer in self.layers for g in layer.grads]

    @property
    def _batch_input_shape(self):
        return self.inputs[0].shape if self._tensors is not None else None

    def _ensure_built(self, input_shape):
        if self._tensors is None:
            self._build_from_shape(tuple(input_shape))
        ref = self.inputs[0].shape
        if len(ref) != len(input_shape) or any(
                a is not None and b is not None and a != b for a, b in zip(ref[1:],
                                                                           input_shape[1:])):
            raise ValueError(f"Input of model '{self.name}' is incompatible: expected shape "
                             f"{shape_str(ref)}, found shape {shape_str(input_shape)}")

    def _check_nestable(self):
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise NotImplementedError(f"model '{self.name}' has several inputs or outputs and "
                                      "cannot be used as a layer")

    def compute_output_shape(self, input_shape):
        self._ensure_built(input_shape)
        return (input_shape[0],) + tuple(self.outputs[0].shape[1:])

    def forward(self, x, training):
        self._check_nestable()
        return self._forward([x], training)[0]

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        return self._backward(dout, dout_is_dlogits, need_dinp=need_dinp)

    # ---- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True, **kwargs):
        """Configure training: optimizer (name or instance), loss (name, Loss or loss
        function), metrics (['accuracy'])."""
        if kwargs:
            raise TypeError(f"compile: unrecognized keyword arguments {sorted(kwargs)}")
        for name, value, default in (("loss_weights", loss_weights, None),
                                     ("weighted_metrics", weighted_metrics, None),
                                     ("steps_per_execution", steps_per_execution, 1)):
            if value != default:
                raise NotImplementedError(f"compile: argument {name}={value!r} is not supported")
        self.optimizer = optimizers_mod.get(optimizer)
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError("compile: one loss per output is not supported")
        self.loss = None if loss is None else losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_mod.Accuracy)):
            raise TypeError("compile: metrics must be a list, e.g. metrics=['accuracy']")
        if isinstance(metrics, dict):
            raise NotImplementedError("compile: per-output metric dicts are not supported")
        sparse = self.loss.sparse if self.loss is not None else True
        self._metrics = [metrics_mod.get(m, sparse) for m in metrics]
        self.compiled = True
        self._train_fn_ready = False

    # ---- data checks ------------------------------------------------------------------------
    def _check_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}().")
        if self.loss is None:
            raise ValueError(f"{what}(): compile the model with a loss, e.g. "
                             "loss='sparse_categorical_crossentropy'")
        if not self._single_output or len(self.outputs) != 1:
            raise NotImplementedError(f"{what}(): training/evaluating models with several "
                                      "outputs is not supported")

    def _prepare_x(self, x, what):
        """float32 C-contiguous array matching the model input (channel axis added if the
        model expects a trailing 1, as Keras does). Raises naming the input layer."""
        if x is None:
            raise ValueError(f"{what}(): x is required")
        if isinstance(x, (list, tuple)) and len(x) == 1 and len(self.inputs) == 1:
            x = x[0]
        if isinstance(x, dict) or (isinstance(x, (list, tuple)) and len(self.inputs) > 1):
            raise NotImplementedError(f"{what}(): models with several inputs are not supported")
        if not isinstance(x, np.ndarray):
            if hasattr(x, "__next__") or type(x).__name__.endswith("Dataset"):
                raise NotImplementedError(f"{what}(): x must be a NumPy array; generators and "
                                          "datasets are not supported")
            x = np.asarray(x)
        if x.dtype == object or x.dtype.kind in "USVMmc":
            raise TypeError(f"{what}(): x must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 0 or x.shape[0] == 0 or x.size == 0:
            raise ValueError(f"{what}(): x is empty (shape {x.shape})")
        if self._tensors is None:
            self._build_from_shape(x.shape)
        ref = self.inputs[0].shape
        if x.ndim == len(ref) - 1 and ref[-1] == 1:
            x = x.reshape(x.shape + (1,))
        consumer = next((layer for layer, i, _ in self._plan if i == self._input_ids[0]), None)
        who = f"layer '{consumer.name}' ({type(consumer).__name__})" if consumer else \
            f"model '{self.name}'"
        if x.ndim != len(ref) or any(r is not None and r != d for r, d in zip(ref[1:],
                                                                             x.shape[1:])):
            raise ValueError(f"{what}(): input of {who} is incompatible: expected shape "
                             f"{shape_str(ref)}, found shape {shape_str(x.shape)}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(f"{what}(): x contains {bad} NaN or infinite values")
        return x

    def _prepare_y(self, y, n, what):
        if y is None:
            raise ValueError(f"{what}(): y is required for training and evaluation")
        y = np.asarray(y)
        if y.dtype == object or y.dtype.kind in "USVMmc":
            raise TypeError(f"{what}(): y must be numeric, got dtype {y.dtype}")
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{what}(): x and y have different numbers of samples: x has {n}, "
                             f"y has shape {y.shape}")
        k = self.outputs[0].shape[-1]
        if self.loss.sparse:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1:
                hint = " (labels look one-hot: use loss='categorical_crossentropy')" \
                    if y.ndim == 2 and y.shape[1] == k else ""
                raise ValueError(f"{what}(): {self.loss.name} needs integer labels of shape "
                                 f"({n},), got shape {y.shape}{hint}")
            if y.dtype.kind == "f":
                if not np.isfinite(y).all() or np.any(y != np.round(y)):
                    raise ValueError(f"{what}(): labels must be integers, got non-integer "
                                     "values")
            elif y.dtype.kind not in "iub":
                raise TypeError(f"{what}(): labels must be integers, got dtype {y.dtype}")
            lo, hi = (y.min(), y.max())
            if lo < 0 or hi >= k:
                raise ValueError(f"{what}(): labels must be in [0, {k}) for an output of shape "
                                 f"{shape_str(self.outputs[0].shape)}, got values in "
                                 f"[{lo}, {hi}]")
            return np.ascontiguousarray(y, dtype=np.int32)
        if y.ndim != 2 or y.shape[1] != k:
            hint = " (integer labels: use loss='sparse_categorical_crossentropy' or " \
                "to_categorical)" if y.ndim == 1 else ""
            raise ValueError(f"{what}(): {self.loss.name} needs one-hot targets of shape "
                             f"({n}, {k}), got shape {y.shape}{hint}")
        y = np.ascontiguousarray(y, dtype=np.float32)
        if not np.isfinite(y).all():
            raise ValueError(f"{what}(): y contains NaN or infinite values")
        return y

    def _build_from_shape(self, shape):
        raise ValueError(f"Model '{self.name}' has no input shape")

    # ---- one step ---------------------------------------------------------------------------
    def _loss_setup(self):
        last = None
        for layer, _, o in self._plan:
            if o == self._output_ids[0]:
                last = layer
        # TF's cached-logits rule: softmax output + cross-entropy(from_logits=False) -> use the
        # logits (unclipped), exactly as Keras's TF backend does.
        self._fused = (not self.loss.from_logits and last is not None and
                       getattr(last, "activation", None) == "softmax")
        self._last_layer = last

    def _buf(self, key, shape, dtype=np.float32):
        bufs = self.__dict__.setdefault("_model_bufs", {})
        k = (key, tuple(shape))
        if k not in bufs:
            bufs[k] = np.empty(shape, dtype=dtype)
        return bufs[k]

    def _loss_and_grad(self, y_pred, yb, with_grad):
        n = y_pred.shape[0]
        inp = self._last_layer.logits if self._fused else y_pred
        inp = inp.reshape(n, -1)
        loss = self._buf("loss", (n,))
        grad = self._buf("dloss", inp.shape) if with_grad else None
        # Keras reduces with sum / batch_size; its gradient is (1/B) * d(per-sample loss).
        self.loss.per_sample(yb, inp, self._fused or self.loss.from_logits, loss, grad,
                             np.float32(1.0) / np.float32(n))
        mean = np.float32(loss.sum(dtype=np.float32) / np.float32(n))
        return mean, grad

    def _train_step(self, xb, yb, trackers):
        (y_pred,) = self._forward([xb], training=True)
        mean, grad = self._loss_and_grad(y_pred, yb, True)
        self._backward(grad.reshape(y_pred.shape) if not self._fused else grad, self._fused)
        params, grads = [], []
        for layer in self.layers:
            if layer.trainable and self.trainable:
                params += layer.weights_list
                grads += layer.grads
        self.optimizer.apply(params, grads)
        self._update_trackers(trackers, mean, y_pred, yb)

    def _update_trackers(self, trackers, mean, y_pred, yb):
        n = y_pred.shape[0]
        trackers[0].update_state(np.float32(mean) * np.float32(n), n)
        for m, t in zip(self._metrics, trackers[1:]):
            t.update_state(m.correct(yb, y_pred), n)

    def _update_trackers_counts(self, trackers, mean, correct, n):
        trackers[0].update_state(np.float32(mean) * np.float32(n), n)
        for t in trackers[1:]:
            t.update_state(correct, n)

    def _new_trackers(self):
        return [metrics_mod.Mean("loss")] + [metrics_mod.Mean(m.name) for m in self._metrics]

    def _logs(self, trackers, prefix=""):
        logs = {prefix + t.name: t.result() for t in trackers}
        return dict(sorted(logs.items()))

    # ---- fit / evaluate / predict -----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns a History (also stored as model.history)."""
        self._check_compiled("fit")
        for name, value in (("class_weight", class_weight), ("sample_weight", sample_weight),
                            ("steps_per_epoch", steps_per_epoch),
                            ("validation_steps", validation_steps)):
            if value is not None:
                raise NotImplementedError(f"fit(): argument {name} is not supported")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "fit(): batch_size", 32)
        val_batch = _positive_int(validation_batch_size, "fit(): validation_batch_size",
                                  batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit(): epochs must be a non-negative integer, got {epochs!r}")
        validation_freq = _positive_int(validation_freq, "fit(): validation_freq")
        if shuffle not in (True, False):
            raise NotImplementedError(f"fit(): shuffle={shuffle!r} is not supported "
                                      "(True or False)")
        x = self._prepare_x(x, "fit")
        y = self._prepare_y(y, x.shape[0], "fit")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit(): validation_data must be a tuple (x_val, y_val)")
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise NotImplementedError("fit(): validation sample weights are not supported")
            vx = self._prepare_x(validation_data[0], "fit(validation_data)")
            val = (vx, self._prepare_y(validation_data[1], vx.shape[0], "fit(validation_data)"))
        elif validation_split:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"fit(): validation_split must be in (0, 1), got "
                                 f"{validation_split}")
            # Keras: the LAST samples become validation, taken before shuffling.
            split_at = int(math.floor(x.shape[0] * (1.0 - float(validation_split))))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"fit(): validation_split={validation_split} leaves an empty "
                                 f"training or validation set for {x.shape[0]} samples")
            val = (x[split_at:], y[split_at:])
            x, y = x[:split_at], y[:split_at]
        self._loss_setup()
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        # As Keras: the user's callbacks, then History and (verbose != 0) ProgbarLogger.
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                       model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        trackers = self._new_trackers()
        perm = np.arange(n, dtype=np.int64)
        gen = utils.rng()
        net = executor.for_model(self, batch_size, "train")
        cbl.on_train_begin()
        logs = {}
        training_logs = None
        for epoch in range(initial_epoch, epochs):
            for t in trackers:
                t.reset_state()
            cbl.on_epoch_begin(epoch)
            if shuffle:
                perm = gen.permutation(n)
            for step in range(steps):
                cbl.on_train_batch_begin(step)
                idx = perm[step * batch_size:(step + 1) * batch_size]
                b = idx.shape[0]
                if net is not None:  # the whole step in C++: gather, fwd, loss, bwd, update
                    loss, correct = executor.train_step(net, self, x, y, idx,
                                                        int(gen.integers(0, 2**63)))
                    self._update_trackers_counts(trackers, loss, correct, b)
                else:
                    xb = np.take(x, idx, axis=0, out=self._buf("xb", (b,) + x.shape[1:]))
                    yb = np.take(y, idx, axis=0,
                                 out=self._buf("yb", (b,) + y.shape[1:], y.dtype))
                    self._train_step(xb, yb, trackers)
                logs = self._logs(trackers)
                cbl.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            logs = self._logs(trackers)
            if val is not None and (epoch + 1) % validation_freq == 0:
                # Keras runs validation through evaluate(callbacks=<fit's list>): the
                # on_test_* hooks fire (ProgbarLogger stays silent inside fit).
                vlogs = self._evaluate_arrays(val[0], val[1], val_batch, cbl)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
            cbl.on_epoch_end(epoch, logs)
            training_logs = logs
            if self.stop_training:
                break
        cbl.on_train_end(training_logs)
        return self.history

    def _evaluate_arrays(self, x, y, batch_size, cbl):
        trackers = self._new_trackers()
        n = x.shape[0]
        steps = math.ceil(n / batch_size)
        net = executor.for_model(self, batch_size, "evaluate")
        self.stop_evaluating = False
        cbl.on_test_begin()
        for step in range(steps):
            cbl.on_test_batch_begin(step)
            s = slice(step * batch_size, (step + 1) * batch_size)
            xb, yb = x[s], y[s]
            if net is not None:
                mean, correct = net.evaluate(xb, yb)
                self._update_trackers_counts(trackers, mean, correct, xb.shape[0])
            else:
                (y_pred,) = self._forward([xb], training=False)
                mean, _ = self._loss_and_grad(y_pred, yb, False)
                self._update_trackers(trackers, mean, y_pred, yb)
            cbl.on_test_batch_end(step, self._logs(trackers))
            if self.stop_evaluating:
                break
        logs = self._logs(trackers)
        cbl.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """[loss, *metrics] (a scalar without metrics), means over the whole dataset."""
        self._check_compiled("evaluate")
        if sample_weight is not None or steps is not None:
            raise NotImplementedError("evaluate(): sample_weight/steps are not supported")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "evaluate(): batch_size", 32)
        x = self._prepare_x(x, "evaluate")
        y = self._prepare_y(y, x.shape[0], "evaluate")
        self._loss_setup()
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=math.ceil(x.shape[0] / batch_size),
                                       model=self)
        logs = self._evaluate_arrays(x, y, batch_size, cbl)
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for x as float32 arrays (a list for several outputs); dropout off."""
        if steps is not None:
            raise NotImplementedError("predict(): steps is not supported")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "predict(): batch_size", 32)
        x = self._prepare_x(x, "predict")
        n = x.shape[0]
        outs = [np.empty((n,) + tuple(t.shape[1:]), np.float32) for t in self.outputs]
        nsteps = math.ceil(n / batch_size)
        net = executor.for_model(self, batch_size, "predict") if self._single_output \
            else None
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=nsteps, model=self)
        self.stop_predicting = False
        cbl.on_predict_begin()
        for step in range(nsteps):
            cbl.on_predict_batch_begin(step)
            s = slice(step * batch_size, (step + 1) * batch_size)
            if net is not None:
                net.predict(x[s], outs[0][s])
            else:
                for dst, src in zip(outs, self._forward([x[s]], training=False)):
                    dst[s] = src
            batch_out = outs[0][s] if self._single_output else [o[s] for o in outs]
            cbl.on_predict_batch_end(step, {"outputs": batch_out})
            if self.stop_predicting:
                break
        cbl.on_predict_end()
        if self.stop_predicting:  # as Keras: only the batches predicted so far
            outs = [o[:min(n, (step + 1) * batch_size)] for o in outs]
        return outs[0] if self._single_output else outs

    def __call__(self, x, training=False):
        """On a symbolic tensor: use this model as a layer of a bigger graph. On an array:
        the outputs (as predict, in one batch)."""
        if isinstance(x, KerasTensor):
            self._ensure_built(x.shape)
            self._check_nestable()
            return KerasTensor(self.compute_output_shape(x.shape), self, [x])
        x = self._prepare_x(x, "__call__")
        res = [o.copy() for o in self._forward([x], training=bool(training))]
        return res[0] if self._single_output else res

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns the step's loss (and metrics)."""
        self._check_compiled("train_on_batch")
        if sample_weight is not None or class_weight is not None:
            raise NotImplementedError("train_on_batch(): sample/class weights are not supported")
        x = self._prepare_x(x, "train_on_batch")
        y = self._prepare_y(y, x.shape[0], "train_on_batch")
        self._loss_setup()
        trackers = self._new_trackers()
        self._train_step(x, y, trackers)
        logs = self._logs(trackers)
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)

    # ---- summary ----------------------------------------------------------------------------
    def _summary_rows(self):
        return [(f"{layer.name} ({type(layer).__name__})", shape_str(layer.output.shape),
                 layer.count_params()) for layer in self.layers]

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the layer table like Keras 3: name (type), output shape, param #, totals."""
        if not self.built or self._tensors is None:
            raise ValueError(f"Model '{self.name}' has not been built yet: give the first layer "
                             "an input_shape, start with keras.Input(...), or call fit/predict "
                             "first.")
        if expand_nested or show_trainable or layer_range is not None or positions is not None:
            raise NotImplementedError("summary(): expand_nested/show_trainable/layer_range/"
                                      "positions are not supported")
        w = (33, 24, 15)
        out = [f'Model: "{self.name}"']
        line = lambda left, mid, right, c: left + mid.join(c * n for n in w) + right  # noqa: E731
        out.append(line("┏", "┳", "┓", "━"))
        out.append(f"┃ {'Layer (type)':<{w[0] - 2}} ┃ {'Output Shape':<{w[1] - 2}} ┃ "
                   f"{'Param #':>{w[2] - 2}} ┃")
        out.append(line("┡", "╇", "┩", "━"))
        rows = self._summary_rows()
        for i, (name, shape, params) in enumerate(rows):
            out.append(f"│ {name:<{w[0] - 2}} │ {shape:<{w[1] - 2}} │ {params:>{w[2] - 2},} │")
            out.append(line("├", "┼", "┤", "─") if i + 1 < len(rows) else line("└", "┴", "┘", "─"))
        trainable = sum(int(a.size) for a in self.trainable_weights)
        total = self.count_params()
        opt = self.optimizer.variables_count() if self.optimizer is not None else 0
        out.append(f" Total params: {total + opt:,} ({_readable((total + opt) * 4)})")
        out.append(f" Trainable params: {trainable:,} ({_readable(trainable * 4)})")
        out.append(f" Non-trainable params: {total - trainable:,} "
                   f"({_readable((total - trainable) * 4)})")
        if opt:
            out.append(f" Optimizer params: {opt:,} ({_readable(opt * 4)})")
        text = "\n".join(out)
        (print_fn or print)(text)


def _readable(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
