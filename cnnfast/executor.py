"""Engines: what runs a model's training step, evaluation and prediction.

Every model runs on one of two engines with the same interface (docs/training_step.md):

    train_step(x, y, idx, seed, sw=None) -> (mean loss, [correct rows per metric])
        one optimizer step on rows idx of the dataset (x, y), sw its sample weights (N,)
    evaluate(xb, yb, sw=None)   -> (mean loss, [correct rows per metric]), dropout off
    predict(xb, outs)           -> None; writes the outputs of rows xb into the arrays outs

- `NativeEngine`: a chain of Conv2D (undilated) / MaxPooling2D / AveragePooling2D / Dense (on
  flat inputs) / Flatten / Dropout / SpatialDropout2D / Activation / ReLU / LeakyReLU / ELU /
  PReLU / Softmax (over the last axis) / BatchNormalization / GlobalAveragePooling2D /
  GlobalMaxPooling2D / Rescaling / Reshape / ZeroPadding2D (RandomFlip / RandomRotation /
  RandomZoom below the first layer with weights), activity regularizers on any of them except
  the logits the loss reads, with a cross-entropy loss and any of cnnfast's
  optimizers (Adam, AdamW, SGD, RMSprop, Nadam, Adamax, Adagrad, Adadelta, with clipping and
  weight decay), runs its whole step in one C++ call (`_core.Net`, csrc/net.h).
- `LayerEngine`: any other model, layer by layer, with the same kernels in the same order.

The rules both engines must agree on live here, once: the per-step seed and how each random
layer derives its stream from it (`layer_seed`), the loss's input (the cached-logits rule,
`LossPlan`), the learning rate as applied (float32) and the iteration count. So the two
engines give the same run bit for bit; `CNNFAST_EXECUTOR=0` (or
`model.use_native_executor = False`) forces the LayerEngine to check it.

Weights, gradients and optimizer slots are the NumPy arrays the layers and the optimizer own;
the Net keeps raw pointers into them, which stays valid because `set_weights` copies in place
and `Optimizer.build` is the only place slots are allocated.
"""
from __future__ import annotations

import os

import numpy as np

from . import backend
from .layers import (
    ELU,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    PReLU,
    Rescaling,
    Reshape,
    SeparableConv2D,
    SpatialDropout2D,
    ZeroPadding2D,
)
from .layers import base as layers_base
from .layers.preprocessing import BaseAugmentation
from .metrics import Accuracy
from .optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    RMSprop,
    applied_learning_rate,
)


# ---- the shared rules -----------------------------------------------------------------------
def step_seed(gen):
    """The seed of one training step, drawn from the run's generator (one draw per step, by
    every engine, whether or not the model has a random layer)."""
    return int(gen.integers(0, 2**63))


def layer_seed(seed, i):
    """The stream of the random layer at position i (in the model's plan) in the step with
    `seed`: the Net's own function (csrc/net.h), so both engines draw the same masks."""
    return backend.layer_seed(seed, i)


class LossPlan:
    """Which tensor the loss reads, and the Net's loss kind.

    TF's cached-logits rule: a softmax output with cross-entropy(from_logits=False), or a
    sigmoid output with binary_crossentropy(from_logits=False), computes the loss from the
    activation's logits (unclipped), exactly as Keras's TF backend does
    (docs/keras_semantics.md#cached-logits). `fused` is that case; `from_logits` says whether
    the loss reads logits at all (fused, or the user's from_logits=True). `kind` is the Net's
    loss kind, None for a loss the Net does not compute (the elementwise losses)."""

    def __init__(self, model):
        loss = model.loss
        last = model.output_layers[0] if model.output_layers else None
        self.last_layer = last
        self.fused = (not loss.from_logits and last is not None and
                      loss.logits_activation is not None and
                      getattr(last, "activation", None) == loss.logits_activation)
        self.from_logits = self.fused or loss.from_logits
        self.sparse = loss.sparse
        k = backend.LossKind
        self.kind = None
        if loss.native:
            self.kind = (k.sparse_logits if self.sparse else k.dense_logits) \
                if self.from_logits else (k.sparse_probs if self.sparse else k.dense_probs)


# ---- regularizers and sample weights (docs/keras_semantics.md#regularizers) -----------------
def trainable_layers(model):
    """The model's layers whose weights are trained, nested models flattened, in the order
    of model.trainable_weights (the Net's parameter order for a chain)."""
    if not model.trainable:
        return []
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            out += trainable_layers(layer)
        elif layer.trainable:
            out.append(layer)
    return out


def regularized(layers):
    """[(w, g, (l1, l2))] of the trainable weights of `layers` that have a regularizer."""
    out = []
    for layer in layers:
        factors = layer.regularizer_factors() if hasattr(layer, "regularizer_factors") else []
        for w, g, f in zip(layer._trainable_arrays(), layer.trainable_grads, factors):
            if f is not None:
                out.append((w, g, f))
    return out


def weight_penalty(params, with_grad):
    """The weights' penalties, float32, summed in parameter order as the Net sums them
    (csrc/net_cpu.cpp); with_grad also adds their gradients to the weights' gradients."""
    pen = np.float32(0.0)
    for w, g, (l1, l2) in params:
        pen += np.float32(backend.weight_penalty(g if with_grad else None, w, l1, l2, 1.0))
    return pen


def activity_penalty(model):
    """The activity penalties of the model's last forward, float32, in layer order."""
    pen = np.float32(0.0)
    for layer in all_layers(model):
        if layer.activity_regularizer is not None and layer._activity_penalty is not None:
            pen += layer._activity_penalty
    return pen


def all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from all_layers(layer)
        else:
            yield layer


def total_loss(mean, activity, weights):
    """Keras's reported and minimised loss: the compiled loss, then model.losses (the
    activity penalties, then the weights'), added in float32."""
    return np.float32(np.float32(mean) + activity) + weights


def distributed_of(model):
    """The GradientReducer of a model whose optimizer is a cnnfast.distributed
    DistributedOptimizer, else None (docs/training_step.md#the-data-parallel-split)."""
    return getattr(model.optimizer, "_distributed", None)


def _shard_weight(dist, rows, shard):
    """This rank's share of a data-parallel step: its rows over the global batch's rows (fit's
    shard = (sample offset, global rows)); 1/size for a step on each rank's own batch."""
    return 1.0 / dist.size if shard is None else rows / shard[1]


class _SampleOffset:
    """Around a LayerEngine step on a shard: Dropout and the augmentation layers draw what
    the global batch gives these rows (layers.base.sample_offset)."""

    def __init__(self, offset):
        self.offset = offset

    def __enter__(self):
        layers_base.sample_offset = self.offset

    def __exit__(self, *exc):
        layers_base.sample_offset = 0


def optimizer_changed(model):
    """Tell the native engine that an optimizer hyper-parameter it holds (SGD's momentum, set
    by LearningRateWarmupCallback) changed: the next step rewires the Net's OptSpec."""
    engine = model._engine_cache.get("native")
    if engine is not None:
        engine._slots = None


class Engine:
    """What both engines share: the optimizer scalars of a step and its iteration count."""

    def __init__(self, model):
        self.model = model

    def _step_scalars(self):
        """(learning rate as applied, step number = iterations + 1) of the next update; the
        schedule, if any, is evaluated here, and the optimizer's per-step state advances here,
        once per step, for either engine."""
        opt = self.model.optimizer
        lr, step = applied_learning_rate(opt), opt.iterations + 1
        opt.prepare_step(step)
        return lr, step

    def _finish_step(self, step):
        self.model.optimizer.iterations = step


# ---- the per-layer engine -------------------------------------------------------------------
class LayerEngine(Engine):
    """Any model, one layer at a time: the graph's forward, the fused loss, the graph's
    backward and the optimizer's update, with every buffer owned by a layer or this engine."""

    def __init__(self, model):
        super().__init__(model)
        self.plan = LossPlan(model) if model.loss is not None else None
        if self.plan is not None and self.plan.fused and \
                getattr(self.plan.last_layer, "activity_regularizer", None) is not None:
            last = self.plan.last_layer
            raise NotImplementedError(
                f"{type(last).__name__} '{last.name}': an activity_regularizer on the output "
                "layer whose activation the loss reads as logits (softmax with a "
                "cross-entropy, sigmoid with binary_crossentropy) is not supported")
        self._bufs = {}

    def _buf(self, key, shape, dtype=np.float32):
        k = (key, tuple(shape), np.dtype(dtype))
        if k not in self._bufs:
            self._bufs[k] = np.empty(shape, dtype=dtype)
        return self._bufs[k]

    def _loss(self, y_pred, yb, with_grad, sw=None):
        """(mean loss, d(loss input) or None) of a batch; the binding returns the mean the Net
        computes (loss_batch_mean in csrc/activations.h: float32, summed in row order). With
        sample weights sw (B,): Keras's sum(w * loss) / B and its gradient."""
        n = y_pred.shape[0]
        inp = self.plan.last_layer.logits if self.plan.fused else y_pred
        if self.plan.kind is None:
            # an elementwise loss reduces the last axis: every other axis is a sample, as Keras
            k = inp.shape[-1]
            inp, yb = inp.reshape(-1, k), yb.reshape(-1, k)
            n = inp.shape[0]
        else:
            inp = inp.reshape(n, -1)
        loss = self._buf("loss", (n,))
        grad = self._buf("dloss", inp.shape) if with_grad else None
        # Keras reduces with sum / batch_size; its gradient is (1/B) * d(per-sample loss).
        mean = self.model.loss.per_sample(yb, inp, self.plan.from_logits, loss, grad,
                                          np.float32(1.0) / np.float32(n))
        if sw is not None:
            mean = backend.weighted_loss_mean(grad, loss, sw)
        return np.float32(mean), grad

    def _correct(self, y_pred, yb, sw=None):
        """Each metric's batch statistic, then each weighted metric's (weighted by sw)."""
        model = self.model
        stats = [m.batch_stat(yb, y_pred) for m in model._metrics]
        if model._weighted_metrics:
            stats += [m.weighted_stat(yb, y_pred, sw) for m in model._weighted_metrics]
        return stats

    def forward(self, x, training, seed=None):
        """The model's outputs (a list) for a batch x; random layers take their streams from
        `seed` when training."""
        return self.model._forward([x], training, seed)

    def train_step(self, x, y, idx, seed, sw=None, shard=None):
        """sw: the sample weights of the rows of x (N,) float32, or None. shard (data-parallel
        fit only): (these rows' offset in the global batch, its rows); a distributed step may
        have no rows on this rank (then loss 0.0, correct None)."""
        model = self.model
        dist = distributed_of(model)
        params, grads = [], []
        if model.trainable:
            for layer in model.layers:
                params += layer._trainable_arrays()
                grads += layer.trainable_grads
        if dist is not None and idx.shape[0] == 0:
            for g in grads:
                g.fill(0.0)
            mean, correct = np.float32(0.0), None
        else:
            if len(idx) == x.shape[0] and np.array_equal(idx, np.arange(len(idx))):
                xb, yb, swb = x, y, sw  # the whole batch in order (train_on_batch): no gather
            else:
                b = idx.shape[0]
                xb = np.take(x, idx, axis=0, out=self._buf("xb", (b,) + x.shape[1:]))
                yb = np.take(y, idx, axis=0, out=self._buf("yb", (b,) + y.shape[1:], y.dtype))
                swb = None if sw is None else np.take(sw, idx, out=self._buf("swb", (b,)))
            if shard is not None and shard[0]:
                with _SampleOffset(shard[0]):
                    (y_pred,) = model._forward([xb], True, seed)
            else:
                (y_pred,) = model._forward([xb], True, seed)
            mean, grad = self._loss(y_pred, yb, True, swb)
            model._backward(grad if self.plan.fused else grad.reshape(y_pred.shape),
                            self.plan.fused)
            correct = self._correct(y_pred, yb, swb)
            # the penalties of the weights as they were in the forward, before the update
            mean = total_loss(mean, activity_penalty(model),
                              weight_penalty(regularized(trainable_layers(model)), True))
        if dist is not None:  # the gradients of every rank, before any update
            dist.allreduce_gradients(grads, _shard_weight(dist, idx.shape[0], shard))
        lr, step = self._step_scalars()
        model.optimizer.apply(params, grads, lr, step)
        self._finish_step(step)
        return mean, correct

    def _forward_rows(self, xb, outs):
        """Forward (inference) of xb's rows into outs, in chunks of forward_rows rows (the
        layers' buffers then hold one chunk; the outputs are per row, so the same bits)."""
        n = xb.shape[0]
        rows = forward_rows(_graph_row_bytes(self.model), n)
        if any(layer.activity_regularizer is not None for layer in all_layers(self.model)):
            rows = n  # an activity penalty is one over the whole batch (activity_penalty)
        for s in range(0, n, rows):
            for dst, src in zip(outs, self.model._forward([xb[s:s + rows]], False)):
                dst[s:s + rows] = src

    def evaluate(self, xb, yb, sw=None):
        out = self.model.outputs[0]
        y_pred = self._buf("eval_pred", (xb.shape[0],) + tuple(out.shape[1:]))
        self._forward_rows(xb, [y_pred])
        mean, _ = self._loss(y_pred, yb, False, sw)
        mean = total_loss(mean, activity_penalty(self.model),
                          weight_penalty(regularized(trainable_layers(self.model)), False))
        return mean, self._correct(y_pred, yb, sw)

    def predict(self, xb, outs):
        self._forward_rows(xb, outs)


# ---- the native engine ----------------------------------------------------------------------
_POOLS = {MaxPooling2D: backend.OpKind.max_pool2d, AveragePooling2D: backend.OpKind.avg_pool2d}
_GLOBAL_POOLS = {GlobalAveragePooling2D: backend.OpKind.global_avg_pool2d,
                 GlobalMaxPooling2D: backend.OpKind.global_max_pool2d}


def _net_op(layer):
    """The typed _core.Op for one layer (csrc/net.h), or None when the Net cannot run it;
    without the layer's activity regularizer (_net_op_regularized)."""
    Op, act = backend.Op, backend.ACTIVATIONS
    kind = type(layer)
    # Softmax / log_softmax (fused or Activation) normalise the last axis on any rank, in the
    # Net as in the LayerEngine (activation_forward's (rows, last axis) view).
    # ---- issue #11: the activation layers with arguments, SpatialDropout2D
    if isinstance(layer, Activation) and layer.activation is None:
        if hasattr(layer, "_spec"):  # ReLU(max_value, negative_slope, threshold), LeakyReLU
            return Op.relu(layer._spec)
        if isinstance(layer, ELU):
            return Op.elu(layer.alpha)
        return None  # Softmax over another axis than the last: the LayerEngine's kernel
    if kind is PReLU:
        return Op.prelu(layer.alpha, layer.grads[0], layer._alpha_index)
    if kind is SpatialDropout2D:
        if layer.rate >= 1.0 or layer.seed is not None:
            return None  # rate 1 and a layer's own seed: the LayerEngine's exact semantics
        return Op.spatial_dropout2d(layer.rate)
    if kind is Conv2D:
        if layer.dilation_rate != (1, 1):
            return Op.conv2d_dilated(layer.kernel, layer.bias if layer.use_bias else None,
                                     layer.grads[0], layer.grads[1] if layer.use_bias else None,
                                     layer.kernel_size, layer.strides, layer.padding,
                                     layer.dilation_rate, act[layer.activation])
        return Op.conv2d(layer.kernel, layer.bias if layer.use_bias else None, layer.grads[0],
                         layer.grads[1] if layer.use_bias else None, layer.kernel_size,
                         layer.strides, layer.padding, act[layer.activation])
    if kind in _POOLS:
        return Op.pool(_POOLS[kind], layer.pool_size, layer.strides, layer.padding)
    if kind is Rescaling:
        return Op.rescale(layer.scale, layer.offset)
    if kind is Reshape:
        return Op.reshape(list(layer.compute_output_shape(layer._built_input_shape)[1:]))
    if kind is ZeroPadding2D:
        return Op.zero_pad2d(layer.padding)
    if kind in _GLOBAL_POOLS:
        return Op.global_pool(_GLOBAL_POOLS[kind], layer.keepdims)
    if kind is DepthwiseConv2D:
        return Op.depthwise_conv2d(layer.kernel, layer.bias if layer.use_bias else None,
                                   layer.grads[0], layer.grads[1] if layer.use_bias else None,
                                   layer.kernel_size, layer.strides, layer.padding,
                                   layer.dilation_rate, act[layer.activation])
    if kind is SeparableConv2D:  # weights: depthwise_kernel, pointwise_kernel, bias
        g = layer.grads
        return Op.separable_conv2d(layer.depthwise_kernel, layer.pointwise_kernel,
                                   layer.bias if layer.use_bias else None, g[0], g[1],
                                   g[2] if layer.use_bias else None, layer.kernel_size,
                                   layer.strides, layer.padding, layer.dilation_rate,
                                   act[layer.activation])
    if kind is Dense:  # on a rank > 2 input: the same GEMM over every position's last axis
        return Op.dense(layer.kernel, layer.bias if layer.use_bias else None, layer.grads[0],
                        layer.grads[1] if layer.use_bias else None, act[layer.activation])
    if kind is Flatten:
        return Op.flatten()
    if kind is Dropout:
        if layer.rate >= 1.0 or layer.seed is not None:
            return None  # rate 1 and a layer's own seed: the LayerEngine's exact semantics
        return Op.dropout(layer.rate)
    if isinstance(layer, Activation):
        if layer.activation is None:
            return None  # an activation layer's own kernel (ReLU(threshold=...), ...)
        return Op.activation(act[layer.activation])
    if kind is BatchNormalization:
        g = layer.grads
        # Frozen (trainable=False): normalises with the moving statistics inside train steps.
        return Op.batch_norm(layer.gamma, layer.beta, g[0] if layer.scale else None,
                             g[int(layer.scale)] if layer.center else None, layer.moving_mean,
                             layer.moving_variance, layer.epsilon, layer.momentum,
                             layer.trainable)
    if isinstance(layer, BaseAugmentation):
        if layer.seed is not None:
            return None  # a layer's own seed: its own stream, on the LayerEngine
        return Op.augment(layer.spec())
    return None


def _net_op_regularized(layer):
    """_net_op with the layer's activity regularizer: Keras's penalty of its output, whose
    gradient joins mid-chain in the Net's backward."""
    op = _net_op(layer)
    reg = getattr(layer, "activity_regularizer", None)
    return op if op is None or reg is None else op.with_activity(*reg.factors())


def _kind_spec(opt):
    S = backend.OptSpec
    kind = type(opt)
    if kind in (Adam, AdamW):
        return S.adam(opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad)
    if kind is SGD:
        return S.sgd(opt.momentum, opt.nesterov)
    if kind is RMSprop:
        return S.rmsprop(opt.rho, opt.momentum, opt.epsilon, opt.centered)
    if kind is Nadam:
        return S.nadam(opt.beta_1, opt.beta_2, opt.epsilon)
    if kind is Adamax:
        return S.adamax(opt.beta_1, opt.beta_2, opt.epsilon)
    if kind is Adagrad:
        return S.adagrad(opt.epsilon)
    if kind is Adadelta:
        return S.adadelta(opt.rho, opt.epsilon)
    return None


def _opt_spec(opt):
    """The typed _core.OptSpec for the model's optimizer (with its clipping and weight decay),
    or None when the Net has no kernel for it."""
    spec = _kind_spec(opt)
    if spec is None:
        return None
    kind, clip = opt.clip_spec()
    if kind != backend.ClipKind.none:
        spec = spec.with_clip(kind, clip)
    if opt.weight_decay is not None:
        spec = spec.with_weight_decay(opt.weight_decay)
    return spec


def _chain(model):
    """The layers of a single-input, single-output chain (in the order of the model's plan,
    which is the Net's op order), else None."""
    if len(model.input_layers) != 1 or len(model.output_layers) != 1:
        return None
    prev = model.input_layers[0]
    layers = []
    for node in model.nodes:
        if node.layer is prev and not layers:
            continue  # the InputLayer
        if node.inbound_layers != (prev,):
            return None
        layers.append(node.layer)
        prev = node.layer
    return layers if layers and prev is model.output_layers[0] else None


class NativeEngine(Engine):
    """A chain model's whole step in one C++ call: gather, forward, loss, backward, update."""

    def __init__(self, model, net, layers, trainable, key):
        super().__init__(model)
        self.net = net
        self.layers = layers
        self.trainable = trainable  # per layer: its weights are updated
        self.key = key  # what the Net was built for (_native)
        self._slots = None  # the optimizer's slot list the Net was wired to
        # some layer has an activity regularizer: the loss gains the Net's activity penalty
        self._activity = any(getattr(layer, "activity_regularizer", None) is not None
                             for layer in layers)

    def _wire_optimizer(self):
        """Point the Net at the optimizer's slots (again when the optimizer rebuilt them)."""
        opt = self.model.optimizer
        if self._slots is not None and self._slots is opt.slot_arrays:
            return
        pairs = [(layer, t) for layer, t in zip(self.layers, self.trainable) if t]
        params = [w for layer, _ in pairs for w in layer._trainable_arrays()]
        grads = [g for layer, _ in pairs for g in layer.trainable_grads]
        # each weight's regularizer factors (0, 0 for none): csrc/net.h ParamSlot
        factors = [f or (0.0, 0.0) for layer, _ in pairs for f in layer.regularizer_factors()]
        built = opt.slots(params)
        slots = [tuple(s) + (None,) * (3 - len(s)) for s in built]
        self.net.set_optimizer(_opt_spec(opt),
                               [(w, g) + s + f
                                for w, g, s, f in zip(params, grads, slots, factors)],
                               opt.state_array)
        self._slots = built
        self._regularized = regularized([layer for layer, _ in pairs])
        self._grads = grads

    def train_step(self, x, y, idx, seed, sw=None, shard=None):
        """sw, shard: as LayerEngine.train_step. A distributed step runs the Net's step without
        its update, all-reduces the gradients, then the Net's update (apply_update)."""
        self._wire_optimizer()
        lr, step = self._step_scalars()
        dist = distributed_of(self.model)
        if dist is None:
            loss, correct = self.net.train_step(x, y, idx, seed, lr, step, sw)
        else:
            if idx.shape[0]:
                loss, correct = self.net.train_step(
                    x, y, idx, seed, lr, step, sw,
                    sample_offset=0 if shard is None else shard[0], update=False)
            else:
                for g in self._grads:
                    g.fill(0.0)
                loss, correct = 0.0, None
            dist.allreduce_gradients(self._grads, _shard_weight(dist, idx.shape[0], shard))
            self.net.apply_update(lr, step)
        self._finish_step(step)
        if correct is not None:
            self._record_activity()
        if correct is not None and (self._regularized or self._activity):
            loss = total_loss(loss, np.float32(self.net.activity), np.float32(self.net.penalty))
        return np.float32(loss), None if correct is None else [correct] * len(
            self.model._metrics)

    def _record_activity(self):
        """The layers' activity penalties of the Net's last forward, as layer.losses reports
        them after a LayerEngine forward (Layer._activity)."""
        if self._activity:
            for layer, pen in zip(self.layers, self.net.activities):
                if getattr(layer, "activity_regularizer", None) is not None:
                    layer._activity_penalty = np.float32(pen)

    def evaluate(self, xb, yb, sw=None):
        loss, correct = self.net.evaluate(xb, yb, sw)
        self._record_activity()
        params = regularized([layer for layer, t in zip(self.layers, self.trainable) if t])
        if params or self._activity:
            loss = total_loss(loss, np.float32(self.net.activity), weight_penalty(params, False))
        return np.float32(loss), [correct] * len(self.model._metrics)

    def predict(self, xb, outs):
        self.net.predict(xb, outs[0])
        self._record_activity()


# Forward passes (predict, evaluate) run in chunks whose activations fit in about this many
# bytes, so a chunk's layers hand their outputs on in the L2 cache, and never fewer rows than
# FORWARD_MIN_ROWS (a Dense layer's weights are read once per chunk). Measured in
# bench/RESULTS.md#chunked-forward-passes; docs/training_step.md#chunked-forward-passes.
FORWARD_CHUNK_BYTES = 4 << 20
FORWARD_MIN_ROWS = 32


def forward_rows(row_bytes, batch):
    """Rows per forward chunk, for activations of `row_bytes` per row and a requested batch
    size. CNNFAST_FORWARD_ROWS=n forces n (bench/, tests)."""
    env = os.environ.get("CNNFAST_FORWARD_ROWS")
    if env:
        return max(1, min(batch, int(env)))
    return max(1, min(batch, max(FORWARD_MIN_ROWS, FORWARD_CHUNK_BYTES // max(row_bytes, 1))))


def _inner_row_floats(layer, in_shape):
    """Floats per row a layer holds besides its output, for a (None, ...) input shape:
    SeparableConv2D's depthwise stage (OH, OW, C * depth_multiplier) twice, as the Net keeps it
    and its gradient in every mode (csrc/net.h Layer::mid, dmid) and the LayerEngine both when
    training. The stage is larger than the output whenever C * depth_multiplier > filters."""
    if not isinstance(layer, SeparableConv2D):
        return 0
    return 2 * int(np.prod(layer._depthwise_shape(in_shape)[1:]))


def _chain_row_bytes(layers, in_shape):
    """Bytes of one row's activations through a chain of built layers (with the buffers
    inside a layer: _inner_row_floats)."""
    shape, total = (None, *in_shape), 0
    for layer in layers:
        total += 4 * _inner_row_floats(layer, shape)
        shape = layer.compute_output_shape(shape)
        total += 4 * int(np.prod(shape[1:]))
    return total


def _graph_row_bytes(model):
    """Bytes of one row's activations over a model's layer calls (their symbolic outputs)."""
    total = 0
    for node in model.nodes:
        out = getattr(node.layer, "output", None)
        shape = getattr(out, "shape", None)
        if shape is not None and all(isinstance(d, int) for d in shape[1:]):
            total += 4 * int(np.prod(shape[1:]))
    return total


def _native_enabled(model):
    return getattr(model, "use_native_executor", True) and \
        os.environ.get("CNNFAST_EXECUTOR", "1") != "0"


def _native(model, batch, mode):
    """A NativeEngine for this model and mode (reusing the model's cached one), or None when
    the model needs the LayerEngine."""
    if not _native_enabled(model):
        return None
    layers = _chain(model)
    if layers is None:
        return None
    ops = [_net_op_regularized(layer) for layer in layers]
    if any(op is None for op in ops):
        return None
    out_shape = model.outputs[0].shape[1:]
    if model.loss is None or len(out_shape) != 1 or not model.loss.native:
        # no loss, a loss over a (batch, ..., classes) output, or a loss the Net does not
        # compute (the elementwise losses): the LayerEngine's
        if mode != "predict":
            return None
        # predict only: the loss part of the Net is never used
        loss_kind, fused = backend.LossKind.sparse_logits, False
    else:
        kind = "sparse" if model.loss.sparse else "categorical"
        if not all(isinstance(m, Accuracy) and m.kind == kind for m in model._metrics) or \
                model._weighted_metrics:
            # the Net counts correct rows the loss's way only, nothing else (a weighted
            # metric needs the outputs: the LayerEngine computes it)
            return None
        plan = LossPlan(model)
        loss_kind, fused = plan.kind, plan.fused
        if fused and getattr(layers[-1], "activity_regularizer", None) is not None:
            return None  # the LayerEngine's NotImplementedError names the layer
    trainable = tuple(layer.trainable and model.trainable for layer in layers)
    if mode == "train" and _opt_spec(model.optimizer) is None:
        return None
    # The Net points into these layers' arrays: a different layer list (Sequential.pop/add) or
    # input shape is a new Net. The engine holds the layers, so their ids stay theirs.
    in_shape = [int(d) for d in model.inputs[0].shape[1:]]
    key = (tuple(id(layer) for layer in layers), tuple(in_shape), id(model.optimizer),
           trainable, loss_kind, fused, tuple(id(m) for m in model._metrics))
    # Training needs every row's activations at once; a forward pass runs in chunks of `rows`
    # (the Net loops over them), so any batch size costs the memory of one chunk.
    # An activity penalty is one over the whole batch: no chunks then (as the LayerEngine).
    activity = any(getattr(layer, "activity_regularizer", None) is not None for layer in layers)
    rows = int(batch) if mode == "train" or activity else \
        forward_rows(_chain_row_bytes(layers, in_shape), int(batch))
    cached = model._engine_cache.get("native")
    if cached is not None and cached.key == key and cached.net.max_batch >= rows:
        return cached
    net = backend.Net(ops, in_shape, rows, loss_kind, int(np.prod(out_shape)), bool(fused))
    engine = model._engine_cache["native"] = NativeEngine(model, net, layers, trainable, key)
    return engine


# ---- memory: refuse an engine the machine cannot hold, before allocating it ------------------
def memory_limit():
    """Bytes a new engine may allocate: `CNNFAST_MEMORY_LIMIT` (bytes) when set, else the
    kernel's MemAvailable (and what the cgroup's memory.max leaves), None when unknown."""
    env = os.environ.get("CNNFAST_MEMORY_LIMIT")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"CNNFAST_MEMORY_LIMIT must be a number of bytes, got {env!r}") \
                from None
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            cap = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if cap != "max":
            limits.append(int(cap) - used)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def activation_bytes(model, batch, mode):
    """(total, [(layer, bytes)]) an engine allocates for batches of `batch` rows, an upper
    bound of what the Net and the LayerEngine hold: per layer its float32 output (and the
    buffers inside it: _inner_row_floats), and when training also its saved pre-activation or
    mask / argmax and the two gradient buffers of the largest tensor; plus the gathered input
    batch."""
    train = mode == "train"
    per_layer, biggest = [], 0
    in_n = max(int(np.prod(model._tensors[i].shape[1:])) for i in model._input_ids)
    for layer, i, o in model._plan:
        n = int(np.prod(model._tensors[o].shape[1:]))
        biggest = max(biggest, n)
        inner = _inner_row_floats(layer, model._tensors[i].shape)
        per_layer.append((layer, 4 * batch * (n * (2 if train else 1) + inner)))
    total = sum(b for _, b in per_layer) + 4 * batch * in_n
    if train:
        total += 2 * 4 * batch * max(biggest, in_n)
    return total, per_layer


_METHOD = {"train": "fit", "evaluate": "evaluate", "predict": "predict"}


def check_memory(model, batch, mode, what=None):
    """MemoryError naming the largest layer and the bytes when an engine for `batch` rows
    cannot fit in memory_limit(): raised before anything is allocated, instead of the OOM
    killer. Nothing is checked when the limit is unknown."""
    limit = memory_limit()
    if limit is None or not model._plan:
        return
    total, per_layer = activation_bytes(model, batch, mode)
    if total <= limit:
        return
    layer, worst = max(per_layer, key=lambda p: p[1])
    gib = 2.0**30
    raise MemoryError(
        f"{what or _METHOD[mode]}(): a batch of {batch} rows needs {total / gib:.2f} GiB "
        f"({total} bytes) of activations, more than the {max(limit, 0) / gib:.2f} GiB "
        f"available; the largest is layer '{layer.name}' ({type(layer).__name__}, output "
        f"{tuple(layer.output.shape) if hasattr(layer, 'output') else ''}) with "
        f"{worst / gib:.2f} GiB. Use a smaller batch_size.")


def for_model(model, batch, mode):
    """The engine that runs `mode` ('train', 'evaluate' or 'predict') of `model` for batches
    of up to `batch` rows: a NativeEngine where the model allows, else a LayerEngine. A batch
    whose activations cannot fit in memory is a MemoryError before anything is allocated
    (check_memory); a cached engine already built for it is reused without the check."""
    if mode not in ("train", "evaluate", "predict"):
        raise ValueError(f"for_model: unknown mode {mode!r}")
    cached = model._engine_cache.get("native")
    if cached is None or cached.net.max_batch < batch:
        check_memory(model, batch, mode)
    native = _native(model, batch, mode)
    return native if native is not None else layer_engine(model)


def layer_engine(model):
    """The LayerEngine of a model (for calls on arrays, which run any graph)."""
    # The loss plan reads the output layer: a changed graph (Sequential.pop/add) is a new engine.
    key = (tuple(id(layer) for layer in model.output_layers), id(model.loss),
           id(model.optimizer), tuple(id(m) for m in model._metrics + model._weighted_metrics))
    cached = model._engine_cache.get("layer")
    if cached is None or cached[0] != key:
        cached = model._engine_cache["layer"] = (key, LayerEngine(model))
    return cached[1]
