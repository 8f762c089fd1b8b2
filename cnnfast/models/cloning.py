"""keras.models.clone_model (Keras: models/cloning.py): the same architecture with new layers
(same configs, freshly initialised weights)."""
from __future__ import annotations

from ..layers.base import Input, InputLayer, KerasTensor
from ..saving import archive, serialization
from .model import Model, _is_subclass_form
from .sequential import Sequential


def _default_clone(layer):
    return type(layer).from_config(layer.get_config())


def _compile_like(new, model):
    """Keras: a clone of a compiled model is compiled from its compile config (a fresh
    optimizer, no state)."""
    cc = model.get_compile_config() if getattr(model, "compiled", False) else None
    if cc is not None:
        src = archive.Source(None)
        opt, loss, metrics = serialization.deserialize_compile(src, cc)
        new.compile(optimizer=opt, loss=loss, metrics=metrics,
                    weighted_metrics=serialization.deserialize_weighted_metrics(src, cc))
    return new


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False, **kwargs):
    """A new model reproducing `model` on new inputs with new layers: each non-input layer
    is `clone_function(layer)` (default: `type(layer).from_config(layer.get_config())`, so
    the same names and configs with freshly initialised weights). Sequential and functional
    models; a subclassed model is rebuilt with `type(model).from_config(model.get_config())`
    (no clone_function/input_tensors there, as Keras). A compiled model's clone is compiled
    the same way, with a fresh optimizer."""
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs)}")
    if not isinstance(model, Model):
        raise ValueError(f"Expected `model` argument to be a Model instance. Received: "
                         f"model={model!r}")
    for name, value in (("call_function", call_function), ("recursive", recursive)):
        if value not in (None, False):
            raise NotImplementedError(f"clone_model: argument {name}={value!r} is not "
                                      "supported")
    if clone_function is not None and not callable(clone_function):
        raise ValueError(f"Expected `clone_function` argument to be a callable. Received: "
                         f"clone_function={clone_function!r}")
    cache = {}

    def clone(layer):
        if id(layer) not in cache:
            new = (clone_function or _default_clone)(layer)
            if not hasattr(new, "compute_output_shape"):
                raise TypeError(f"clone_function returned {type(new).__name__} for layer "
                                f"'{layer.name}', not a layer")
            cache[id(layer)] = new
        return cache[id(layer)]

    if isinstance(model, Sequential):
        return _compile_like(_clone_sequential(model, clone, input_tensors), model)
    if model._subclassed or _is_subclass_form(type(model)):
        if clone_function is not None or input_tensors is not None:
            raise ValueError("Arguments `clone_function` and `input_tensors` are only "
                             "supported for Sequential models or Functional models. Received "
                             f"model of type '{type(model).__name__}'")
        new = type(model).from_config(model.get_config())
        if model._tensors is not None:
            new.build(model.inputs[0].shape)
        return _compile_like(new, model)
    return _compile_like(_clone_functional(model, clone, input_tensors), model)


def _single_input(input_tensors):
    if isinstance(input_tensors, (list, tuple)):
        if len(input_tensors) != 1:
            raise ValueError("Argument `input_tensors` must contain a single tensor.")
        input_tensors = input_tensors[0]
    if not isinstance(input_tensors, KerasTensor):
        raise ValueError(f"Argument `input_tensors` must be a KerasTensor. Received invalid "
                         f"value: input_tensors={input_tensors!r}")
    return input_tensors


def _clone_sequential(model, clone, input_tensors):
    new_layers = [clone(layer) for layer in model.layers]
    ref = model._input_layer
    if input_tensors is not None:
        new_layers = [_single_input(input_tensors)] + new_layers
    elif ref is not None:
        new_layers = [InputLayer(batch_shape=ref._batch_input_shape, name=ref.name)] + \
            new_layers
    return Sequential(new_layers, name=model.name, trainable=model.trainable)


def _clone_functional(model, clone, input_tensors):
    if input_tensors is not None:
        given = list(input_tensors) if isinstance(input_tensors, (list, tuple)) else \
            [input_tensors]
        if not all(isinstance(t, KerasTensor) for t in given):
            raise ValueError(f"All entries in `input_tensors` must be KerasTensors. Received "
                             f"invalid values: inputs_tensors={input_tensors!r}")
        if len(given) != len(model.inputs) or (isinstance(input_tensors, (list, tuple))
                                               == model._single_input):
            raise ValueError(f"`input_tensors` must have the same structure as model.input\n"
                             f"Reference structure: {model.input}\nReceived structure: "
                             f"{input_tensors}")
    else:
        given = [Input(batch_shape=t.shape, name=t._layer.name) for t in model.inputs]
    new = {}
    for t, g in zip(model.inputs, given):
        new[id(t)] = g
    for t in model._tensors:
        if id(t) in new:
            continue
        if isinstance(t._layer, InputLayer):
            raise ValueError(f"input '{t._layer.name}' is not among the model's inputs")
        src = [new[id(s)] for s in t._inbound]
        new[id(t)] = clone(t._layer)(src[0] if len(src) == 1 else src)
    ins = given[0] if model._single_input else given
    outs = [new[id(t)] for t in model.outputs]
    return Model(inputs=ins, outputs=outs[0] if model._single_output else outs,
                 name=model.name)
