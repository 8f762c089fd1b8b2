"""The native executor: a chain model's whole training step in one C++ call (csrc/net.h).

`for_model(model, batch, mode)` returns a `_core.Net` for models it can run — a single-input,
single-output chain of Conv2D / MaxPooling2D / AveragePooling2D / Dense (on flat inputs) /
Flatten / Dropout / Activation, trained with a cross-entropy loss and Adam / SGD / RMSprop —
and None otherwise; the model then runs its per-layer Python path, which computes the same
numbers with the same kernels. Weights, gradients and optimizer slots are the NumPy arrays the
layers and the optimizer own, so both paths (and get_weights/set_weights) share one state.

Set CNNFAST_EXECUTOR=0 (or `model.use_native_executor = False`) to force the Python path.
"""
from __future__ import annotations

import os

import numpy as np

from . import backend
from .layers import Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .optimizers import SGD, Adam, RMSprop

_UNSET = object()  # the cached Net has no optimizer wired yet
_POOLS = {MaxPooling2D: backend.OpKind.max_pool2d, AveragePooling2D: backend.OpKind.avg_pool2d}


def _net_op(layer):
    """The typed _core.Op for one layer (csrc/net.h), or None when the Net cannot run it."""
    Op, act = backend.Op, backend.ACTIVATIONS
    kind = type(layer)
    if kind is Conv2D:
        return Op.conv2d(layer.kernel, layer.bias if layer.use_bias else None, layer.grads[0],
                         layer.grads[1] if layer.use_bias else None, layer.kernel_size,
                         layer.strides, layer.padding, act[layer.activation])
    if kind in _POOLS:
        return Op.pool(_POOLS[kind], layer.pool_size, layer.strides, layer.padding)
    if kind is Dense:
        if len(layer._built_input_shape) != 2:
            return None  # Dense on rank > 2 inputs: the Python path handles it
        return Op.dense(layer.kernel, layer.bias if layer.use_bias else None, layer.grads[0],
                        layer.grads[1] if layer.use_bias else None, act[layer.activation])
    if kind is Flatten:
        return Op.flatten()
    if kind is Dropout:
        if layer.rate >= 1.0 or layer.seed is not None:
            return None  # rate 1 and per-layer seeds keep the Python path's exact semantics
        return Op.dropout(layer.rate)
    if isinstance(layer, Activation):
        return Op.activation(act[layer.activation])
    return None


def _net_ops(layers):
    """The typed op list _core.Net takes for a chain of layers, or None when one is not
    supported."""
    ops = [_net_op(layer) for layer in layers]
    return None if any(op is None for op in ops) else ops


def _opt_spec(opt):
    """The typed _core.OptSpec for the model's optimizer, or None when the Net has no kernel."""
    if type(opt) is Adam:
        return backend.OptSpec.adam(opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad)
    if type(opt) is SGD:
        return backend.OptSpec.sgd(opt.momentum, opt.nesterov)
    if type(opt) is RMSprop:
        return backend.OptSpec.rmsprop(opt.rho, opt.momentum, opt.epsilon, opt.centered)
    return None


def _enabled(model):
    return getattr(model, "use_native_executor", True) and \
        os.environ.get("CNNFAST_EXECUTOR", "1") != "0"


def _chain(model):
    """The layers of a single-input, single-output chain, else None."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    prev = model._input_ids[0]
    layers = []
    for layer, i, o in model._plan:
        if i != prev:
            return None
        layers.append(layer)
        prev = o
    return layers if prev == model._output_ids[0] and layers else None


def for_model(model, batch, mode):
    """A cached _core.Net able to run batches of up to `batch` rows for `mode` ('train',
    'evaluate' or 'predict'), or None when the model needs the Python path."""
    if mode not in ("train", "evaluate", "predict"):
        raise ValueError(f"for_model: unknown mode {mode!r}")
    training = mode == "train"
    if not _enabled(model):
        return None
    layers = _chain(model)
    if layers is None:
        return None
    ops = _net_ops(layers)
    if ops is None:
        return None
    out_shape = model.outputs[0].shape[1:]
    if model.loss is None or len(out_shape) != 1:
        if mode != "predict":
            return None  # no loss, or a loss over a (batch, ..., classes) output: Python path
        # predict only: the loss part of the Net is never used
        loss_kind, fused = backend.LossKind.sparse_logits, False
    else:
        sparse = model.loss.sparse
        if any(m.kind != ("sparse" if sparse else "categorical") for m in model._metrics):
            return None  # the Net counts correct rows the loss's way only
        model._loss_setup()
        fused = model._fused
        logits = fused or model.loss.from_logits
        kinds = backend.LossKind
        loss_kind = (kinds.sparse_logits if sparse else kinds.dense_logits) if logits else \
            (kinds.sparse_probs if sparse else kinds.dense_probs)
    trainable = tuple(layer.trainable and model.trainable for layer in layers)
    opt = model.optimizer
    opt_spec = _opt_spec(opt) if training else None
    if training and opt_spec is None:
        return None
    key = (id(opt), trainable, loss_kind, fused, tuple(id(s) for s in model._metrics))
    cache = model.__dict__.get("_net_cache")
    if cache is not None and cache[0] == key and cache[1].max_batch >= batch:
        net = cache[1]
    else:
        in_shape = [int(d) for d in model.inputs[0].shape[1:]]
        net = backend.Net(ops, in_shape, int(batch), loss_kind,
                          int(np.prod(out_shape)), bool(fused))
        model.__dict__["_net_cache"] = (key, net, _UNSET)
        cache = model.__dict__["_net_cache"]
    if training and cache[2] is not opt.__dict__.get("_slots"):
        params = [w for layer, t in zip(layers, trainable) if t for w in layer.weights_list]
        grads = [g for layer, t in zip(layers, trainable) if t for g in layer.grads]
        opt._ensure_built(params)
        slots = [tuple(s) + (None,) * (3 - len(s)) for s in opt._slots]
        net.set_optimizer(opt_spec, [(w, g) + s for w, g, s in zip(params, grads, slots)])
        model.__dict__["_net_cache"] = (key, net, opt._slots)
    return net


def train_step(net, model, x, y, idx, seed):
    """One optimizer step on rows idx of (x, y); returns (mean loss, correct count)."""
    opt = model.optimizer
    loss, correct = net.train_step(x, y, idx, seed, float(np.float32(opt.learning_rate)),
                                   opt.iterations + 1)
    opt.iterations += 1
    return loss, correct
