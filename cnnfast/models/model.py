"""Model: the functional graph (Keras: models/functional.py).

A model is a list of layer calls in topological order over symbolic tensors. `_forward` and
`_backward` run that graph; a model nested in another runs as one of its layers. Training
(compile, fit, ...) comes from `Trainer` (training.py), the data checks from data.py, the
table `summary()` prints from summary.py.
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import executor, utils
from ..layers.base import InputLayer, KerasTensor, Layer, _snake, shape_str, unique_name
from ..saving import archive, onnx_export, saving_lib, serialization
from ..tensor import as_tensor
from . import data, keras_export
from . import summary as summary_mod
from .node import Node
from .training import Trainer


@serialization.register_model_class
class Model(Trainer):
    """A functional model: Model(inputs=Input(...), outputs=tensor_or_list); or a subclass
    with layers assigned in `__init__` and a `call(inputs, training=None)` composing them
    (traced once on a symbolic input into the same graph, see `_trace`)."""

    _subclassed = False
    _auto_config = None

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        if _is_subclass_form(cls):
            obj._auto_config = _auto_config(cls, args, kwargs)
        return obj

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, dtype=None,
                 **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments "
                            f"{sorted(kwargs)}")
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r}; cnnfast "
                                      "computes in float32 only")
        if inputs is None and outputs is None and _is_subclass_form(type(self)):
            self._init_subclassed(name, trainable)
            return
        if inputs is None or outputs is None:
            raise TypeError(f"{type(self).__name__}: a functional model needs both inputs= and "
                            "outputs=; a subclass of keras.Model defines call(self, inputs) "
                            "instead")
        self.name = name or unique_name("functional")
        self._trainable = bool(trainable)  # as Keras: the constructor does not set the layers'
        self._init_training_state()
        self._build_graph(inputs, outputs)

    # ---- subclassed models ----------------------------------------------------------------
    def call(self, inputs, training=None):
        """A subclass defines the forward pass here; a functional model runs its graph."""
        if self._subclassed:
            raise NotImplementedError(f"{type(self).__name__} must define call()")
        return self(inputs, training=training)

    def _init_subclassed(self, name, trainable):
        self.name = name or unique_name(_snake(type(self).__name__))
        self._trainable = bool(trainable)
        self._init_training_state()
        self._subclassed = True
        self._tensors = None
        self._single_input = self._single_output = True
        self._summary_batch = None   # the batch size of the first eager call (Keras's summary)
        self._layers_traced = None
        self.built = False

    def _tracked_layers(self):
        """The layers assigned to attributes (also in lists, tuples and dicts), in assignment
        order, as Keras tracks them."""
        out, seen = [], set()

        def add(v):
            if isinstance(v, (Layer, Model)) and v is not self:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
            elif isinstance(v, (list, tuple)):
                for item in v:
                    add(item)
            elif isinstance(v, dict):
                for item in v.values():
                    add(item)

        for key, value in vars(self).items():
            if key in ("optimizer", "loss", "_metrics", "_engine_cache", "history",
                       "_tensors", "_plan", "_all_layers", "_layers_traced", "inputs",
                       "outputs", "input", "output"):
                continue
            add(value)
        return out

    def _call_graph(self, inp, training):
        """One symbolic run of the user's call(); errors name the model and say why."""
        who = f"model '{self.name}' ({type(self).__name__})"
        kwargs = {}
        try:
            params = inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            params = {}
        if "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs["training"] = training
        why = ("cnnfast runs a subclassed model as the layer graph its call() builds when "
               "traced once on a symbolic input: call() may compose layers and use Python "
               "control flow on static values (shapes, constructor arguments), but not branch "
               "on tensor values or apply NumPy/tf functions or operators to tensors (use "
               "layers, e.g. Activation, Rescaling, Reshape)")
        try:
            out = self.call(inp, **kwargs)
        except (TypeError, AttributeError) as err:
            raise TypeError(f"{who}: call() failed on a symbolic input of shape "
                            f"{shape_str(inp.shape)}: {err}. {why}.") from err
        except (ValueError, NotImplementedError) as err:
            raise type(err)(f"{who}: call() on a symbolic input of shape "
                            f"{shape_str(inp.shape)}: {err}") from err
        outs = out if isinstance(out, (list, tuple)) else [out]
        if not outs or not all(isinstance(t, KerasTensor) for t in outs):
            raise TypeError(f"{who}: call() returned {type(out).__name__}, not the output of "
                            f"a layer; {why}.")
        return out

    @staticmethod
    def _signature(out):
        """The layer calls behind `out`, as comparable data (layer ids and wiring)."""
        outs = out if isinstance(out, (list, tuple)) else [out]
        order, index = [], {}

        def visit(t):
            if id(t) in index:
                return
            for s in t._inbound:
                visit(s)
            index[id(t)] = len(order)
            order.append((id(t._layer) if not isinstance(t._layer, InputLayer) else None,
                          tuple(index[id(s)] for s in t._inbound)))

        for t in outs:
            visit(t)
        return order, [index[id(t)] for t in outs]

    def _trace(self, shape):
        """Build the graph: call() once on a symbolic Input of `shape` (batch axis free).
        When call() takes `training`, it is traced with False (the graph kept) and True; a
        call() whose layers differ between the two (Python `if training:` around a layer) is
        refused, since one graph runs both training and inference."""
        if len(shape) < 2:
            raise ValueError(f"model '{self.name}': an input shape needs a batch axis and at "
                             f"least one more, got {shape_str(shape)}")
        inp = InputLayer(batch_shape=(None,) + tuple(shape[1:]), name=f"{self.name}_input")
        unbuilt = [x for x in self._tracked_layers() if not x.built]
        out = self._call_graph(inp.output, False)
        for x in unbuilt:   # Keras names their variables in the model's scope
            if x.built:
                x._variable_prefix = f"{self.name}/"
        try:
            takes_training = "training" in inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            takes_training = False
        if takes_training:
            out_t = self._call_graph(inp.output, True)
            if self._signature(out) != self._signature(out_t):
                raise NotImplementedError(
                    f"model '{self.name}' ({type(self).__name__}): call() composes different "
                    "layers for training=True and training=False; cnnfast runs one graph for "
                    "both, so call every layer in both modes and pass training=training to "
                    "it (Dropout and BatchNormalization switch by themselves)")
        self._build_graph(inp.output, out)
        tracked = self._tracked_layers()
        in_graph = [layer for layer in self._all_layers if not isinstance(layer, InputLayer)]
        # Keras's order: the tracked layers as assigned (unused ones too), then any layer
        # call() reached that no attribute holds
        tracked_ids = {id(x) for x in tracked}
        self._layers_traced = tracked + [x for x in in_graph if id(x) not in tracked_ids]

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
        if self._subclassed:
            if self._layers_traced is None:
                return self._tracked_layers()
            return list(self._layers_traced)
        return list(self._all_layers)

    def build(self, input_shape):
        """Build the graph for `input_shape` (batch axis included, as Keras): traces a
        subclassed model's call(), gives an input-less Sequential its Input; a functional
        model is built already."""
        if self._tensors is None:
            self._build_from_shape(tuple(input_shape))
        else:
            self._ensure_built(tuple(input_shape))

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Keras's rule: setting a model's flag sets every layer's, nested models' too (so a
        frozen model's BatchNormalization layers run in inference mode)."""
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = bool(value)

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
        """Every layer's Variables (cnnfast.layers.base.Variable), in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    variables = weights

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights] \
            if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights] \
            if self.trainable else self.weights

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def _trainable_arrays(self):
        """The arrays of trainable_weights (what the engines hand to the optimizer)."""
        return [w for layer in self.layers for w in layer._trainable_arrays()] \
            if self.trainable else []

    def get_weights(self):
        return [w.copy() for w in self.weights_list]

    def set_weights(self, weights):
        weights = list(weights)
        own = self.weights_list
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
        """The architecture as JSON-able data. A subclassed model (as Keras): name, trainable,
        dtype and the constructor's arguments when they are all plain Python values;
        otherwise the class must override get_config (NotImplementedError).

        A functional model: the architecture as JSON-able data (config.json's "config",
        docs/file_format.md): each layer's {"class_name", "config"} plus its "inbound" layer
        name, the input and output layer names, and whether inputs/outputs were one tensor
        or a list."""
        if self._subclassed:
            base = {"name": self.name, "trainable": bool(self.trainable), "dtype": "float32"}
            if self._auto_config is not None:
                return {**base, **self._auto_config}
            raise NotImplementedError(
                f"Model {type(self).__name__} has arguments in `__init__()` that are not plain "
                "Python values and therefore must override `get_config()` (and "
                "`from_config()` when the constructor does not take the config's keys)")
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
        naming the problem for an invalid config. The global rng is left as it was.
        A subclassed model's class: cls(**config), as Keras."""
        if _is_subclass_form(cls):
            return cls(**config)
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
        return serialization.serialize_compile(self.optimizer, self.loss, self._metrics,
                                               self._weighted_metrics)

    def _not_writer(self):
        """True on the ranks other than 0 of a data-parallel job (a DistributedOptimizer):
        they hold the same weights as rank 0, which alone writes the files."""
        dist = getattr(self.optimizer, "_distributed", None)
        return dist is not None and dist.rank != 0

    def save(self, filepath, overwrite=True):
        """Save the whole model: `.keras` (Keras 3) or `.h5` (legacy Keras) files tf.keras
        loads, any other name cnnfast's own format (docs/file_format.md); reload any of them
        with cnnfast.models.load_model. In a cnnfast.distributed job only rank 0 writes."""
        if self._not_writer():
            return
        saving_lib.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights only: `.weights.h5` is Keras 3's weights file (see
        cnnfast.saving.save_weights); rank 0 only in a cnnfast.distributed job."""
        if self._not_writer():
            return
        saving_lib.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved from a model of the same architecture."""
        saving_lib.load_weights(self, filepath)

    def export(self, filepath, format=None, verbose=None, input_signature=None,
               opset_version=None, **kwargs):
        """Export for inference elsewhere, as Keras 3's `model.export`: format="onnx" (the
        default for a `.onnx` name) writes an ONNX graph with a dynamic batch dimension and
        the model's NHWC input (needs the `onnx` package: pip install 'cnnfast[onnx]')."""
        if format is None and str(filepath).lower().endswith(".onnx"):
            format = "onnx"
        if format != "onnx":
            raise NotImplementedError(f"model.export: format={format!r} is not supported by "
                                      "cnnfast; use format='onnx' (save a Keras file with "
                                      "model.save('model.keras'))")
        if input_signature is not None or kwargs:
            bad = ["input_signature"] * (input_signature is not None) + sorted(kwargs)
            raise NotImplementedError(f"model.export: arguments {bad} are not supported")
        onnx_export.export_onnx(self, filepath, opset=opset_version or onnx_export.OPSET)
        if verbose:
            print(f"Saved ONNX model to {filepath}")

    def to_keras(self):
        """The equivalent tf.keras model with the same weights, uncompiled (needs TensorFlow)."""
        return keras_export.functional_to_keras(self, self._single_input, self._single_output)

    # ---- execution --------------------------------------------------------------------------
    def _forward(self, xs, training, seed=None):
        """The outputs (a list) for inputs xs. Training with a step `seed`: the random layer
        at plan position k takes the stream executor.layer_seed(seed, k), as the Net does."""
        vals = [None] * len(self._tensors)
        for i, x in zip(self._input_ids, xs):
            vals[i] = x
        for k, (layer, i, o) in enumerate(self._plan):
            if training and seed is not None and layer.stochastic:
                vals[o] = layer.forward(vals[i], training, seed=executor.layer_seed(seed, k))
            else:
                vals[o] = layer.forward(vals[i], training)
        return [vals[i] for i in self._output_ids]

    def _backward(self, dout, dout_is_dlogits, need_dinp=False):
        """Backpropagate d(output); fills every layer's grads. Returns d(input) when asked
        (a model nested as a layer), else None (the first layer skips computing it)."""
        grads = {self._output_ids[0]: dout}
        # d(tensor) is needed only above a layer with weights (augmentation layers, which have
        # no backward, sit below all of them).
        below = set()
        for layer, i, o in self._plan:
            if i in below or layer.weights_list:
                below.add(o)
        first = True
        for layer, i, o in reversed(self._plan):
            g = grads.pop(o, None)
            if g is None:
                continue
            need = need_dinp or i in below
            dx = layer.backward(g, need_dinp=need, dout_is_dlogits=dout_is_dlogits and first)
            first = False
            if need:
                grads[i] = dx if i not in grads else grads[i] + dx
        return grads.get(self._input_ids[0]) if need_dinp else None

    # ---- a model used as a layer (Sequential([model, Softmax()]), model(tensor)) ----------
    @property
    def weights_list(self):
        return [w for layer in self.layers for w in layer.weights_list]

    @property
    def grads(self):
        return [g for layer in self.layers for g in layer.grads]

    @property
    def trainable_grads(self):
        """The gradients of trainable_weights, in the same order."""
        return [g for layer in self.layers for g in layer.trainable_grads] \
            if self.trainable else []

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

    @property
    def stochastic(self):
        return any(layer.stochastic for layer in self.layers)

    def forward(self, x, training, seed=None):
        self._check_nestable()
        return self._forward([x], training, seed)[0]

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        return self._backward(dout, dout_is_dlogits, need_dinp=need_dinp)

    def _build_from_shape(self, shape):
        if self._subclassed:
            self._trace(tuple(shape))
            return
        raise ValueError(f"Model '{self.name}' has no input shape")

    def __call__(self, x, training=False):
        """On a symbolic tensor: use this model as a layer of a bigger graph. On an array:
        the outputs (as predict, in one batch)."""
        if isinstance(x, KerasTensor):
            self._ensure_built(x.shape)
            self._check_nestable()
            return KerasTensor(self.compute_output_shape(x.shape), self, [x])
        if self._subclassed and self._tensors is None and np.ndim(x) > 0:
            self._summary_batch = int(np.shape(x)[0])   # Keras's summary shows this batch
        x = data.prepare_x(self, x, "__call__")
        seed = executor.step_seed(utils.rng()) if training else None
        # Tensors (ndarrays with .numpy()), as TF's eager call returns: model(x).numpy()
        res = [as_tensor(o.copy())
               for o in executor.layer_engine(self).forward(x, bool(training), seed)]
        return res[0] if self._single_output else res

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the layer table like Keras 3: name (type), output shape, param #, totals."""
        summary_mod.print_summary(self, line_length, positions, print_fn, expand_nested,
                                  show_trainable, layer_range)


def _is_subclass_form(cls):
    """A keras.Model subclass that defines call() (not Sequential, not Model itself)."""
    return cls is not Model and cls.call is not Model.call


_PLAIN = (str, int, float, bool, type(None))


def _plain(v):
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return isinstance(v, _PLAIN)


def _auto_config(cls, args, kwargs):
    """Keras's auto-config: the constructor's arguments (defaults included) when all are
    plain Python values, else None."""
    try:
        sig = inspect.signature(cls.__init__)
        bound = sig.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    cfg = {}
    for i, (key, value) in enumerate(bound.arguments.items()):
        kind = sig.parameters[key].kind
        if i == 0:
            continue    # self
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        elif kind is inspect.Parameter.VAR_KEYWORD:
            cfg.update(value)
        else:
            cfg[key] = value
    return cfg if _plain(cfg) else None
