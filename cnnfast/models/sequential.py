"""Sequential: a linear stack of layers (list constructor or .add())."""
from __future__ import annotations

from ..layers.base import InputLayer, KerasTensor, Layer, unique_name
from .model import Model


class Sequential(Model):
    """Sequential([...]) or Sequential() + .add(layer). The input shape comes from an
    Input(...)/InputLayer first, an `input_shape=` on the first layer, or the first data seen
    by fit/predict/evaluate."""

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or unique_name("sequential")
        self.trainable = trainable
        self._init_training_state()
        self._layers = []
        self._input_layer = None
        self._tensors = None
        self.built = False
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor):
            if not isinstance(layer._layer, InputLayer):
                raise ValueError("Sequential.add: only keras.Input(...) tensors can be added")
            layer = layer._layer
        if isinstance(layer, Model):
            raise NotImplementedError("Sequential.add: nesting a model inside a Sequential is "
                                      "not supported")
        if not isinstance(layer, Layer):
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
            self._rebuild()

    def pop(self):
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if self._input_layer is not None:
            self._rebuild()
        return layer

    def _rebuild(self):
        t = self._input_layer.output
        for layer in self._layers:
            t = layer(t)
        if not self._layers:
            self._tensors = None
            self.built = False
            return
        self._build_graph(self._input_layer.output, t)

    def _build_from_shape(self, shape):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers")
        self._input_layer = InputLayer(shape=tuple(shape[1:]))
        self._rebuild()

    @property
    def layers(self):
        return list(self._layers)
