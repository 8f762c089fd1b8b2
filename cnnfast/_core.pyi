"""Type stub of the native module (csrc/bindings.cpp). Arrays are float32 C-contiguous unless
noted; outputs come first and are overwritten."""
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

Arr = np.ndarray

class _Kind:
    """A pybind11 enum: members compare by identity, int(member) is the C++ value."""
    name: str
    value: int
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...

class Activation(_Kind):
    """csrc/activations.h; member names are the Keras activation strings."""
    __members__: ClassVar[dict[str, Activation]]
    linear: ClassVar[Activation]
    relu: ClassVar[Activation]
    sigmoid: ClassVar[Activation]
    tanh: ClassVar[Activation]
    softmax: ClassVar[Activation]
    elu: ClassVar[Activation]
    selu: ClassVar[Activation]
    gelu: ClassVar[Activation]
    silu: ClassVar[Activation]
    softplus: ClassVar[Activation]
    softsign: ClassVar[Activation]
    leaky_relu: ClassVar[Activation]
    relu6: ClassVar[Activation]
    hard_sigmoid: ClassVar[Activation]
    log_softmax: ClassVar[Activation]

class OpKind(_Kind):
    """csrc/net.h."""
    __members__: ClassVar[dict[str, OpKind]]
    conv2d: ClassVar[OpKind]
    max_pool2d: ClassVar[OpKind]
    avg_pool2d: ClassVar[OpKind]
    dense: ClassVar[OpKind]
    flatten: ClassVar[OpKind]
    dropout: ClassVar[OpKind]
    activation: ClassVar[OpKind]
    batch_norm: ClassVar[OpKind]
    augment: ClassVar[OpKind]
    global_avg_pool2d: ClassVar[OpKind]
    global_max_pool2d: ClassVar[OpKind]
    rescale: ClassVar[OpKind]
    reshape: ClassVar[OpKind]
    zero_pad2d: ClassVar[OpKind]
    # issue #11
    relu: ClassVar[OpKind]
    elu: ClassVar[OpKind]
    prelu: ClassVar[OpKind]
    spatial_dropout2d: ClassVar[OpKind]
    depthwise_conv2d: ClassVar[OpKind]
    separable_conv2d: ClassVar[OpKind]
    conv2d_dilated: ClassVar[OpKind]

class LossKind(_Kind):
    """csrc/net.h: cross-entropy from logits or probabilities, sparse or dense labels."""
    __members__: ClassVar[dict[str, LossKind]]
    sparse_logits: ClassVar[LossKind]
    dense_logits: ClassVar[LossKind]
    sparse_probs: ClassVar[LossKind]
    dense_probs: ClassVar[LossKind]

class ElementLoss(_Kind):
    """csrc/losses.h: the elementwise losses, named as Keras's loss functions."""
    __members__: ClassVar[dict[str, ElementLoss]]
    mean_squared_error: ClassVar[ElementLoss]
    mean_absolute_error: ClassVar[ElementLoss]
    huber: ClassVar[ElementLoss]
    binary_crossentropy: ClassVar[ElementLoss]
    kl_divergence: ClassVar[ElementLoss]
    hinge: ClassVar[ElementLoss]
    squared_hinge: ClassVar[ElementLoss]
    categorical_hinge: ClassVar[ElementLoss]

class OptKind(_Kind):
    """csrc/net.h."""
    __members__: ClassVar[dict[str, OptKind]]
    adam: ClassVar[OptKind]
    sgd: ClassVar[OptKind]
    rmsprop: ClassVar[OptKind]
    nadam: ClassVar[OptKind]
    adamax: ClassVar[OptKind]
    adagrad: ClassVar[OptKind]
    adadelta: ClassVar[OptKind]

class ClipKind(_Kind):
    """csrc/optim.h clip_gradients: Keras's clipvalue, clipnorm, global_clipnorm."""
    __members__: ClassVar[dict[str, ClipKind]]
    none: ClassVar[ClipKind]
    value: ClassVar[ClipKind]
    norm: ClassVar[ClipKind]
    global_norm: ClassVar[ClipKind]

def build_info() -> dict: ...
def num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def gemm_isa() -> str: ...
def set_gemm_isa(name: str) -> None: ...
def set_conv_algorithm(name: str) -> None: ...
def conv_algorithm() -> str: ...
def conv_uses_winograd(N: int, H: int, W: int, C: int, KH: int, KW: int, OC: int, SH: int,
                       SW: int, padding: str, direction: str = ...,
                       input_grad: bool = ...) -> bool: ...
def sgemm(c: Arr, a: Arr, b: Arr, trans_a: bool = ..., trans_b: bool = ..., alpha: float = ...,
          beta: float = ...) -> None: ...
def sgemm_reference(c: Arr, a: Arr, b: Arr, trans_a: bool = ..., trans_b: bool = ...,
                    alpha: float = ..., beta: float = ...) -> None: ...
def conv2d_geometry(in_shape: Sequence[int], kernel_shape: Sequence[int],
                    strides: tuple[int, int], padding: str) -> dict: ...
def conv2d_forward(out: Arr, inp: Arr, weight: Arr, bias: Arr | None, strides: tuple[int, int],
                   padding: str, workspace: Arr | None) -> None: ...
def conv2d_backward(dinp: Arr | None, dweight: Arr, dbias: Arr | None, dout: Arr, inp: Arr,
                    weight: Arr, strides: tuple[int, int], padding: str,
                    workspace: Arr | None) -> None: ...
def conv2d_dilated_forward(out: Arr, inp: Arr, weight: Arr, bias: Arr | None,
                           strides: tuple[int, int], padding: str,
                           dilation_rate: tuple[int, int]) -> None: ...
def conv2d_dilated_backward(dinp: Arr | None, dweight: Arr, dbias: Arr | None, dout: Arr,
                            inp: Arr, weight: Arr, strides: tuple[int, int], padding: str,
                            dilation_rate: tuple[int, int]) -> None: ...
def depthwise_conv2d_geometry(in_shape: Sequence[int], kernel_shape: Sequence[int],
                              strides: tuple[int, int], padding: str,
                              dilation_rate: tuple[int, int] = ...) -> dict: ...
def depthwise_conv2d_forward(out: Arr, inp: Arr, weight: Arr, bias: Arr | None,
                             strides: tuple[int, int], padding: str,
                             dilation_rate: tuple[int, int] = ...) -> None: ...
def depthwise_conv2d_backward(dinp: Arr | None, dweight: Arr, dbias: Arr | None, dout: Arr,
                              inp: Arr, weight: Arr, strides: tuple[int, int], padding: str,
                              dilation_rate: tuple[int, int] = ...) -> None: ...
def pool2d_geometry(in_shape: Sequence[int], pool_size: tuple[int, int],
                    strides: tuple[int, int], padding: str) -> dict: ...
def maxpool2d_forward(out: Arr, argmax: Arr | None, inp: Arr, pool_size: tuple[int, int],
                      strides: tuple[int, int], padding: str) -> None: ...
def maxpool2d_backward(dinp: Arr, dout: Arr, argmax: Arr, pool_size: tuple[int, int],
                       strides: tuple[int, int], padding: str) -> None: ...
def avgpool2d_forward(out: Arr, inp: Arr, pool_size: tuple[int, int], strides: tuple[int, int],
                      padding: str) -> None: ...
def avgpool2d_backward(dinp: Arr, dout: Arr, pool_size: tuple[int, int],
                       strides: tuple[int, int], padding: str) -> None: ...
def dense_forward(out: Arr, inp: Arr, weight: Arr, bias: Arr | None) -> None: ...
def dense_backward(dinp: Arr | None, dweight: Arr, dbias: Arr | None, dout: Arr, inp: Arr,
                   weight: Arr) -> None: ...
def activation_forward(out: Arr, inp: Arr, activation: Activation) -> None: ...
def activation_backward(dinp: Arr, dout: Arr, out: Arr, activation: Activation,
                        inp: Arr | None = None) -> None:
    """inp (the forward input) is needed by gelu, silu, softplus and softsign."""
def cross_entropy(loss: Arr, grad: Arr | None, pred: Arr, labels: Arr, from_logits: bool,
                  eps: float = ..., grad_scale: float = ...) -> float:
    """Per-sample cross-entropy of pred (B, K) into loss (B,): from logits (softmax), or from
    probabilities clipped at eps (default 1e-7). labels: int32 (B,) class indices (sparse) or
    float32 (B, K) targets (dense), picked by dtype. grad (B, K) = grad_scale * dloss/dpred, or
    None. Returns the batch mean exactly as the Net computes its loss (float32 sequential sum
    divided by B)."""
def element_loss(loss: Arr, grad: Arr | None, pred: Arr, target: Arr, kind: ElementLoss,
                 from_logits: bool = ..., param: float = ..., eps: float = ...,
                 grad_scale: float = ...) -> float:
    """Per-sample elementwise loss `kind` of pred (B, K) against float32 target (B, K) into
    loss (B,); grad (B, K) = grad_scale * dloss/dpred, or None. param: huber's delta or
    binary_crossentropy's label_smoothing; from_logits: binary_crossentropy on logits. Returns
    the batch mean as cross_entropy does."""
def dropout_forward(out: Arr, mask: Arr, inp: Arr, rate: float, seed: int) -> None: ...
def dropout_forward_at(out: Arr, mask: Arr, inp: Arr, rate: float, seed: int,
                       first: int) -> None:
    """dropout_forward whose element i draws at stream position first + i (a shard of a
    larger batch: cnnfast.distributed)."""
def dropout_backward(dinp: Arr, dout: Arr, mask: Arr, rate: float) -> None: ...
def spatial_dropout_forward(out: Arr, mask: Arr, inp: Arr, rate: float, seed: int,
                            first: int = ...) -> None:
    """first: the stream position of mask[0, 0] (a shard of a larger batch: offset * C)."""
def spatial_dropout_backward(dinp: Arr, dout: Arr, mask: Arr, rate: float) -> None: ...
class ReluSpec:
    """A ReLU's formula (csrc/activations_layers.h)."""
    @property
    def negative_slope(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def max_value(self) -> float | None: ...
    @property
    def leaky(self) -> bool: ...
    @property
    def relu6(self) -> bool: ...
def relu_spec(negative_slope: float, threshold: float,
              max_value: float | None = None) -> ReluSpec: ...
def leaky_relu_spec(negative_slope: float) -> ReluSpec: ...
def relu_forward(out: Arr, inp: Arr, spec: ReluSpec) -> None: ...
def relu_backward(dinp: Arr, dout: Arr, inp: Arr, spec: ReluSpec) -> None: ...
def elu_forward(out: Arr, inp: Arr, alpha: float) -> None: ...
def elu_backward(dinp: Arr, dout: Arr, inp: Arr, alpha: float) -> None: ...
def prelu_forward(out: Arr, inp: Arr, alpha: Arr, alpha_index: Arr) -> None: ...
def prelu_backward(dinp: Arr | None, dalpha: Arr, partial: Arr, dout: Arr, inp: Arr,
                   alpha: Arr, alpha_index: Arr) -> None: ...
def softmax_axis_forward(out: Arr, inp: Arr, axis: int) -> None: ...
def softmax_axis_backward(dinp: Arr, dout: Arr, out: Arr, axis: int) -> None: ...
def batchnorm_forward(out: Arr, mean: Arr, rstd: Arr, moving_mean: Arr, moving_var: Arr,
                      inp: Arr, gamma: Arr | None, beta: Arr | None, eps: float,
                      momentum: float, training: bool) -> None: ...
def batchnorm_backward(dinp: Arr | None, dgamma: Arr | None, dbeta: Arr | None, dout: Arr,
                       inp: Arr, mean: Arr, rstd: Arr, gamma: Arr | None,
                       training: bool) -> None: ...
def batchnorm_maxpool_forward(out: Arr, argmax: Arr | None, xwin: Arr | None, mean: Arr,
                              rstd: Arr, moving_mean: Arr, moving_var: Arr, inp: Arr,
                              gamma: Arr | None, beta: Arr | None, eps: float, momentum: float,
                              training: bool, relu: bool, pool_size: tuple[int, int],
                              strides: tuple[int, int], padding: str) -> None: ...
def batchnorm_maxpool_backward(dinp: Arr | None, dgamma: Arr | None, dbeta: Arr | None,
                               dout: Arr, argmax: Arr, xwin: Arr, pooled: Arr | None, inp: Arr,
                               mean: Arr, rstd: Arr, gamma: Arr | None, training: bool,
                               relu_mask: bool, pool_size: tuple[int, int],
                               strides: tuple[int, int], padding: str) -> None: ...
def global_avgpool2d_forward(out: Arr, inp: Arr) -> None: ...
def global_avgpool2d_backward(dinp: Arr, dout: Arr) -> None: ...
def global_maxpool2d_forward(out: Arr, inp: Arr) -> None: ...
def global_maxpool2d_backward(dinp: Arr, dout: Arr, inp: Arr, out: Arr) -> None: ...
def rescale_forward(out: Arr, inp: Arr, scale: float, offset: float) -> None: ...
def rescale_backward(dinp: Arr, dout: Arr, scale: float) -> None: ...
def zeropad2d_forward(out: Arr, inp: Arr,
                      padding: tuple[tuple[int, int], tuple[int, int]]) -> None: ...
def zeropad2d_backward(dinp: Arr, dout: Arr,
                       padding: tuple[tuple[int, int], tuple[int, int]]) -> None: ...
def adam_update(w: Arr, m: Arr, v: Arr, vhat: Arr | None, g: Arr, lr: float, beta1: float,
                beta2: float, eps: float, step: int) -> None: ...
def sgd_update(w: Arr, velocity: Arr | None, g: Arr, lr: float, momentum: float,
               nesterov: bool) -> None: ...
def rmsprop_update(w: Arr, v: Arr, mom: Arr | None, avg: Arr | None, g: Arr, lr: float,
                   rho: float, momentum: float, eps: float, centered: bool) -> None: ...
def nadam_update(w: Arr, m: Arr, v: Arr, g: Arr, lr: float, beta1: float, beta2: float,
                 eps: float, step: int, u_product: float) -> None: ...
def nadam_u_product_next(u_product: float, beta1: float, step: int) -> float: ...
def adamax_update(w: Arr, m: Arr, u: Arr, g: Arr, lr: float, beta1: float, beta2: float,
                  eps: float, step: int) -> None: ...
def adagrad_update(w: Arr, acc: Arr, g: Arr, lr: float, eps: float) -> None: ...
def adadelta_update(w: Arr, acc_grad: Arr, acc_delta: Arr, g: Arr, lr: float, rho: float,
                    eps: float) -> None: ...
def weight_decay_update(w: Arr, lr: float, weight_decay: float) -> None: ...
def weight_penalty(dx: Arr | None, x: Arr, l1: float, l2: float, scale: float) -> float: ...
def weighted_loss_mean(dpred: Arr | None, loss: Arr, w: Arr) -> float: ...
def clip_gradients(grads: Sequence[Arr], kind: ClipKind, clip: float) -> None: ...
def f32_pow(x: float, y: float) -> float: ...
def f32_cos(x: float) -> float: ...
def f32_log(x: float) -> float: ...

class Op:
    """One op of a Net. Weights and gradients are the caller's arrays (kept alive by the Op and
    the Net); the Net checks their sizes against the geometry it derives from in_shape."""
    @property
    def kind(self) -> OpKind: ...
    @staticmethod
    def conv2d(weight: Arr, bias: Arr | None, dweight: Arr, dbias: Arr | None,
               kernel: tuple[int, int], strides: tuple[int, int], padding: str,
               act: Activation) -> Op: ...
    @staticmethod
    def pool(kind: OpKind, pool_size: tuple[int, int], strides: tuple[int, int],
             padding: str) -> Op: ...
    @staticmethod
    def dense(weight: Arr, bias: Arr | None, dweight: Arr, dbias: Arr | None,
              act: Activation) -> Op: ...
    @staticmethod
    def flatten() -> Op: ...
    @staticmethod
    def dropout(rate: float) -> Op: ...
    @staticmethod
    def activation(act: Activation) -> Op: ...
    @staticmethod
    def rescale(scale: float, offset: float) -> Op: ...
    @staticmethod
    def reshape(shape: list[int]) -> Op: ...
    @staticmethod
    def zero_pad2d(padding: tuple[tuple[int, int], tuple[int, int]]) -> Op: ...
    @staticmethod
    def global_pool(kind: OpKind, keepdims: bool) -> Op: ...
    @staticmethod
    def batch_norm(gamma: Arr | None, beta: Arr | None, dgamma: Arr | None, dbeta: Arr | None,
                   moving_mean: Arr, moving_var: Arr, eps: float, momentum: float,
                   training: bool) -> Op: ...
    @staticmethod
    def augment(spec: AugmentSpec) -> Op: ...
    # issue #11: the activation layers with arguments, SpatialDropout2D, activity regularizers
    @staticmethod
    def relu(spec: ReluSpec) -> Op: ...
    @staticmethod
    def elu(alpha: float) -> Op: ...
    @staticmethod
    def prelu(alpha: Arr, dalpha: Arr, alpha_index: Arr) -> Op:
        """alpha_index int32 (S,): each element of a sample -> its alpha element."""
    @staticmethod
    def spatial_dropout2d(rate: float) -> Op: ...
    def with_activity(self, l1: float, l2: float) -> Op:
        """This op with an activity regularizer (l1, l2) on its output."""
    @staticmethod
    def conv2d_dilated(weight: Arr, bias: Arr | None, dweight: Arr, dbias: Arr | None,
                       kernel: tuple[int, int], strides: tuple[int, int], padding: str,
                       dilation: tuple[int, int], act: Activation) -> Op: ...
    @staticmethod
    def depthwise_conv2d(weight: Arr, bias: Arr | None, dweight: Arr, dbias: Arr | None,
                         kernel: tuple[int, int], strides: tuple[int, int], padding: str,
                         dilation: tuple[int, int], act: Activation) -> Op: ...
    @staticmethod
    def separable_conv2d(weight: Arr, pointwise: Arr, bias: Arr | None, dweight: Arr,
                         dpointwise: Arr, dbias: Arr | None, kernel: tuple[int, int],
                         strides: tuple[int, int], padding: str, dilation: tuple[int, int],
                         act: Activation) -> Op: ...

# ---- augmentation (csrc/augment.h) ----
class AugmentKind(_Kind):
    """csrc/augment.h."""
    __members__: ClassVar[dict[str, AugmentKind]]
    flip: ClassVar[AugmentKind]
    rotation: ClassVar[AugmentKind]
    zoom: ClassVar[AugmentKind]
    translation: ClassVar[AugmentKind]
    contrast: ClassVar[AugmentKind]
    crop: ClassVar[AugmentKind]

class AugmentSpec:
    """One augmentation layer's parameters."""
    @property
    def kind(self) -> AugmentKind: ...
    @staticmethod
    def flip(horizontal: bool, vertical: bool) -> AugmentSpec: ...
    @staticmethod
    def resample(kind: AugmentKind, lo0: float, hi0: float, has_width: bool, lo1: float,
                 hi1: float, fill_mode: str, interpolation: str,
                 fill_value: float) -> AugmentSpec: ...
    @staticmethod
    def contrast(lower: float, upper: float, vmin: float, vmax: float) -> AugmentSpec: ...
    @staticmethod
    def crop(height: int, width: int) -> AugmentSpec: ...

def augment_params(params: Arr, transforms: Arr | None, spec: AugmentSpec, H: int, W: int,
                   seed: int) -> None: ...
def projective_transform(out: Arr, inp: Arr, transforms: Arr, fill_mode: str,
                         interpolation: str, fill_value: float) -> None: ...
def augment_forward(out: Arr, inp: Arr, spec: AugmentSpec, seed: int, first: int = ...) -> None:
    """first: the batch position of image 0 (a shard of a larger batch)."""
def augment_inference(out: Arr, inp: Arr, spec: AugmentSpec) -> None: ...
def crop_resize(out: Arr, inp: Arr, h0: int, w0: int) -> None: ...
def resize_bilinear(out: Arr, inp: Arr) -> None: ...
def affine_warp(out: Arr, inp: Arr, matrices: Arr, flags: Arr, fill_mode: str, order: int,
                cval: float) -> None: ...

class OptSpec:
    """The Net's optimizer and its hyper-parameters."""
    @property
    def kind(self) -> OptKind: ...
    @staticmethod
    def adam(beta1: float, beta2: float, eps: float, amsgrad: bool) -> OptSpec: ...
    @staticmethod
    def sgd(momentum: float, nesterov: bool) -> OptSpec: ...
    @staticmethod
    def rmsprop(rho: float, momentum: float, eps: float, centered: bool) -> OptSpec: ...
    @staticmethod
    def nadam(beta1: float, beta2: float, eps: float) -> OptSpec: ...
    @staticmethod
    def adamax(beta1: float, beta2: float, eps: float) -> OptSpec: ...
    @staticmethod
    def adagrad(eps: float) -> OptSpec: ...
    @staticmethod
    def adadelta(rho: float, eps: float) -> OptSpec: ...
    def with_clip(self, kind: ClipKind, value: float) -> OptSpec: ...
    def with_weight_decay(self, weight_decay: float) -> OptSpec: ...
    @property
    def clip(self) -> ClipKind: ...
    @property
    def clip_value(self) -> float: ...
    @property
    def weight_decay(self) -> float | None: ...

def layer_seed(seed: int, i: int) -> int: ...

class Net:
    """A chain model's whole train step in C++ (csrc/net.h)."""
    def __init__(self, ops: Sequence[Op], in_shape: Sequence[int], max_batch: int,
                 loss: LossKind, num_classes: int, fused: bool) -> None: ...
    def set_optimizer(
        self, spec: OptSpec,
        params: Sequence[tuple],
        state: Arr | None = ...) -> None:
        """params: (w, g, s0, s1, s2[, l1, l2]) per trainable array (l1, l2: its weight
        regularizer's factors); Adam: m, v, vhat; SGD: velocity;
        RMSprop: v, momentum, mean gradient; Nadam/Adamax: m, v/u; Adagrad: accumulator;
        Adadelta: accumulated grad, accumulated delta (net.h ParamSlot). state: Nadam's
        u_product (float32, shape (1,)), else None."""
    def set_profiling(self, on: bool) -> None: ...
    def profile(self) -> dict: ...
    def train_step(self, x: Arr, y: Arr, idx: Arr, seed: int, lr: float,
                   step: int, sw: Arr | None = ..., sample_offset: int = ...,
                   update: bool = ...) -> tuple[float, int]:
        """x (N, ...) float32, y int32 (N,) or float32 (N, K), idx int64 rows of this batch,
        sw float32 (N,) sample weights or None. Returns (mean loss, correct count).
        sample_offset: these rows' position in a larger global batch (Dropout masks);
        update=False stops after backward (then apply_update)."""
    def apply_update(self, lr: float, step: int) -> None:
        """The optimizer part of a step (clip, weight decay, update) on the gradients."""
    def evaluate(self, x: Arr, y: Arr, sw: Arr | None = ...) -> tuple[float, int]: ...
    def predict(self, x: Arr, out: Arr) -> None: ...
    @property
    def max_batch(self) -> int: ...
    @property
    def fused_ops(self) -> list[int]:
        """The Conv2D ops whose inference runs fused with their MaxPool2D (csrc/conv2d_fused.h)."""
    @property
    def fused_batchnorm_ops(self) -> list[int]:
        """The BatchNorm ops that run fused with the MaxPool2D above them
        (csrc/batchnorm_pool.h)."""
    @property
    def penalty(self) -> float:
        """The weight regularizers' penalty of the last train_step (float32)."""
    @property
    def activity(self) -> float:
        """The activity regularizers' penalty of the last train_step or evaluate (float32)."""
    @property
    def activities(self) -> list[float]:
        """Each op's activity penalty of the last forward (0 without a regularizer)."""
