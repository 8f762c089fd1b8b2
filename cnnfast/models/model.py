"""Model: the functional graph (Keras: models/functional.py).

A model is a list of layer calls in topological order over symbolic tensors. `_forward` and
`_backward` run that graph; a model nested in another runs as one of its layers. Training
(compile, fit, ...) comes from `Trainer` (training.py), the data checks from data.py, the
table `summary()` prints from summary.py.
"""
from __future__ import annotations

from .. import executor, utils
from ..layers.base import InputLayer, KerasTensor, shape_str, unique_name
from ..saving import archive, onnx_export, saving_lib, serialization
from ..tensor import as_tensor
from . import data, keras_export
from . import summary as summary_mod
from .node import Node
from .training import Trainer


@serialization.register_model_class
class Model(Trainer):
    """A functional model: Model(inputs=Input(...), outputs=tensor_or_list)."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Model: unrecognized keyword arguments {sorted(kwargs)}")
        if inputs is None or outputs is None:
            raise NotImplementedError("Model subclassing is not supported; build a functional "
                                      "model with Model(inputs=..., outputs=...) or use "
                                      "Sequential")
        self.name = name or unique_name("functional")
        self._trainable = bool(trainable)  # as Keras: the constructor does not set the layers'
        self._init_training_state()
        self._build_graph(inputs, outputs)

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
        return self.weights

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
        raise ValueError(f"Model '{self.name}' has no input shape")

    def __call__(self, x, training=False):
        """On a symbolic tensor: use this model as a layer of a bigger graph. On an array:
        the outputs (as predict, in one batch)."""
        if isinstance(x, KerasTensor):
            self._ensure_built(x.shape)
            self._check_nestable()
            return KerasTensor(self.compute_output_shape(x.shape), self, [x])
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
