"""The only caller of cnnfast._core: kernel wrappers, buffers, dtype/contiguity coercion.

Layers call the functions here with float32 C-contiguous arrays they own. The C++ side checks
every precondition again and raises ValueError/TypeError; nothing here converts an output
silently, so a kernel always writes into the caller's real buffer.
"""
from __future__ import annotations

import os

import numpy as np

from . import _core

# Kernels, re-exported under their C++ names (see csrc/*.h for the contracts).
conv2d_geometry = _core.conv2d_geometry
conv2d_forward = _core.conv2d_forward
conv2d_backward = _core.conv2d_backward
conv2d_dilated_forward = _core.conv2d_dilated_forward
conv2d_dilated_backward = _core.conv2d_dilated_backward
depthwise_conv2d_geometry = _core.depthwise_conv2d_geometry
depthwise_conv2d_forward = _core.depthwise_conv2d_forward
depthwise_conv2d_backward = _core.depthwise_conv2d_backward
pool2d_geometry = _core.pool2d_geometry
maxpool2d_forward = _core.maxpool2d_forward
maxpool2d_backward = _core.maxpool2d_backward
avgpool2d_forward = _core.avgpool2d_forward
avgpool2d_backward = _core.avgpool2d_backward
global_avgpool2d_forward = _core.global_avgpool2d_forward
global_avgpool2d_backward = _core.global_avgpool2d_backward
global_maxpool2d_forward = _core.global_maxpool2d_forward
global_maxpool2d_backward = _core.global_maxpool2d_backward
rescale_forward = _core.rescale_forward
rescale_backward = _core.rescale_backward
zeropad2d_forward = _core.zeropad2d_forward
zeropad2d_backward = _core.zeropad2d_backward
dense_forward = _core.dense_forward
dense_backward = _core.dense_backward
activation_forward = _core.activation_forward
activation_backward = _core.activation_backward
cross_entropy = _core.cross_entropy
element_loss = _core.element_loss
dropout_forward = _core.dropout_forward
dropout_forward_at = _core.dropout_forward_at
dropout_backward = _core.dropout_backward
spatial_dropout_forward = _core.spatial_dropout_forward
spatial_dropout_backward = _core.spatial_dropout_backward
ReluSpec = _core.ReluSpec
relu_spec = _core.relu_spec
leaky_relu_spec = _core.leaky_relu_spec
relu_forward = _core.relu_forward
relu_backward = _core.relu_backward
elu_forward = _core.elu_forward
elu_backward = _core.elu_backward
prelu_forward = _core.prelu_forward
prelu_backward = _core.prelu_backward
softmax_axis_forward = _core.softmax_axis_forward
softmax_axis_backward = _core.softmax_axis_backward
augment_forward = _core.augment_forward
augment_params = _core.augment_params
projective_transform = _core.projective_transform
augment_inference = _core.augment_inference
crop_resize = _core.crop_resize
resize_bilinear = _core.resize_bilinear
affine_warp = _core.affine_warp
AugmentKind = _core.AugmentKind
AugmentSpec = _core.AugmentSpec
batchnorm_forward = _core.batchnorm_forward
batchnorm_backward = _core.batchnorm_backward
adam_update = _core.adam_update
sgd_update = _core.sgd_update
rmsprop_update = _core.rmsprop_update
nadam_update = _core.nadam_update
nadam_u_product_next = _core.nadam_u_product_next
adamax_update = _core.adamax_update
adagrad_update = _core.adagrad_update
adadelta_update = _core.adadelta_update
weight_decay_update = _core.weight_decay_update
weight_penalty = _core.weight_penalty
weighted_loss_mean = _core.weighted_loss_mean
clip_gradients = _core.clip_gradients
f32_pow = _core.f32_pow
f32_cos = _core.f32_cos
f32_log = _core.f32_log
Net = _core.Net
layer_seed = _core.layer_seed
Op = _core.Op
OptSpec = _core.OptSpec
Activation = _core.Activation
OpKind = _core.OpKind
LossKind = _core.LossKind
ElementLoss = _core.ElementLoss
OptKind = _core.OptKind
ClipKind = _core.ClipKind

# Activation name (what Keras users type: "relu", ...) -> _core.Activation, from the one table
# in csrc/activations.h as _core binds it.
ACTIVATIONS = dict(_core.Activation.__members__)


class Workspace:
    """One grow-only scratch buffer shared by all conv layers (they run one at a time)."""

    def __init__(self):
        self._buf = np.empty(1, np.float32)

    def get(self, n):
        if self._buf.size < n:
            self._buf = np.empty(int(n), np.float32)
        return self._buf


workspace = Workspace()


def build_info():
    """Compiler, OpenMP, instruction set in use and thread count of the native core."""
    info = dict(_core.build_info())
    info["version"] = __import__("cnnfast").__version__
    info["num_threads"] = _core.num_threads()
    info["isa"] = _core.gemm_isa()
    return info


def set_num_threads(n):
    """Threads used by the native kernels (OpenMP). Raises ValueError for n < 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def get_num_threads():
    return _core.num_threads()


def as_f32(x):
    """float32, C-contiguous view or copy (float64 and strided inputs are converted)."""
    return np.ascontiguousarray(x, dtype=np.float32)


_threads_env = os.environ.get("CNNFAST_NUM_THREADS")
if _threads_env:
    set_num_threads(int(_threads_env))
