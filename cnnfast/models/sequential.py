"""Sequential: a linear stack of layers (list constructor or .add())."""
from __future__ import annotations

from .. import utils
from ..layers.base import InputLayer, KerasTensor, Layer, unique_name
from ..saving import archive, serialization
from . import keras_export
from .model import Model
from .node import Node


@serialization.register_model_class
class Sequential(Model):
    """Sequential([...]) or Sequential() + .add(layer). The input shape comes from an
    Input(...)/InputLayer first, an `input_shape=` on the first layer, or the first data seen
    by fit/predict/evaluate."""

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or unique_name("sequential")
        self._trainable = bool(trainable)  # as Keras: the constructor does not set the layers'
        self._init_training_state()
        self._layers = []
        self._outs = []  # output tensor of each layer's call in this model
        self._input_layer = None
        self._tensors = None
        # One input, one output, before the first data builds the graph (fit on an
        # input-less Sequential builds it from x).
        self._single_input = self._single_output = True
        self.built = False
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor):
            if not isinstance(layer._layer, InputLayer):
                raise ValueError("Sequential.add: only keras.Input(...) tensors can be added")
            layer = layer._layer
        if not isinstance(layer, (Layer, Model)):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("Sequential: an Input/InputLayer must be the first layer")
            self._input_layer = layer
        else:
            if not self._layers and self._input_layer is None and \
                    layer._batch_input_shape is not None:
                self._input_layer = InputLayer(batch_shape=layer._batch_input_shape)
            self._layers.append(layer)
        if self._input_layer is not None:
            self._connect()

    def pop(self):
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if len(self._outs) > len(self._layers):
            self._outs.pop()
        self._finish_graph()
        return layer

    def _connect(self):
        """Call each layer not yet connected on the previous output (once: `layer.output` of
        every layer then belongs to this model's graph)."""
        for layer in self._layers[len(self._outs):]:
            prev = self._outs[-1] if self._outs else self._input_layer.output
            built = layer.built
            self._outs.append(layer(prev))
            if not built:   # built here: Keras names its variables in the model's scope
                layer._variable_prefix = f"{self.name}/"
        self._finish_graph()

    def _finish_graph(self):
        if not self._outs:
            self._tensors = None
            self.built = False
            return
        self._build_graph(self._input_layer.output, self._outs[-1])

    def _build_from_shape(self, shape):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers")
        self._input_layer = InputLayer(shape=tuple(shape[1:]))
        self._connect()

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input(self):
        if self._tensors is None:
            raise ValueError(f"The model '{self.name}' has never been called and thus has no "
                             "defined input: give it an Input or an input_shape, or call it on "
                             "data first.")
        return self.inputs[0]

    @input.setter
    def input(self, value):
        pass  # set by _build_graph; the property above is the source of truth

    @property
    def output(self):
        if self._tensors is None:
            raise ValueError(f"The model '{self.name}' has never been called and thus has no "
                             "defined output.")
        return self.outputs[0]

    @output.setter
    def output(self, value):
        pass

    # ---- graph view, config ------------------------------------------------------------
    @property
    def nodes(self):
        """The stack as [Node(layer, inbound_layers)]: the InputLayer first when there is one
        (also before the model is built), then each layer fed by the one before it."""
        stack = ([self._input_layer] if self._input_layer is not None else []) + self._layers
        return [Node(layer, tuple(stack[i - 1:i])) for i, layer in enumerate(stack)]

    def get_config(self):
        """The architecture as JSON-able data (config.json's "config", docs/file_format.md):
        name, trainable and each layer's {"class_name", "config"}, the InputLayer first."""
        return serialization.jsonable({
            "name": self.name, "trainable": bool(self.trainable),
            "layers": [serialization.serialize_layer(node.layer) for node in self.nodes]})

    @classmethod
    def from_config(cls, config):
        """A new (uncompiled, freshly initialised) Sequential from get_config() output;
        ValueError naming the problem for an invalid config. The global rng is left as it
        was."""
        src = archive.Source(None)
        archive.check_dict(src, config, "Sequential config", ("name", "trainable", "layers"))
        archive.need(src, isinstance(config["name"], str) and
                     isinstance(config["trainable"], bool),
                     "Sequential config: 'name' must be a string and 'trainable' a bool")
        archive.need(src, isinstance(config["layers"], list), "Sequential config: 'layers' must "
                     "be a list")
        rng_state = utils.rng().bit_generator.state   # building draws initial weights
        try:
            model = cls(name=config["name"], trainable=config["trainable"])
            for i, e in enumerate(config["layers"]):
                layer = serialization.deserialize_layer(src, i, e)
                try:
                    model.add(layer)
                except (TypeError, ValueError, NotImplementedError) as err:
                    src.fail(f"layer {i} ('{layer.name}') does not fit the model: {err}")
            return model
        finally:
            utils.rng().bit_generator.state = rng_state

    def to_keras(self):
        """The equivalent keras.Sequential with the same weights, uncompiled (needs
        TensorFlow)."""
        return keras_export.sequential_to_keras(self)
