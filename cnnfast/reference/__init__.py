"""Pure-NumPy reference implementation of every cnnfast kernel.

It is the oracle of the kernel tests and the "vs NumPy" benchmark baseline. Layouts follow
Keras: activations NHWC, conv kernels (KH, KW, C, OC), dense kernels (IN, OUT). The layer
kernels compute in float64 by default (pass ``dtype=np.float32`` for a float32 baseline); the
optimizer steps reproduce Keras's float32 arithmetic bit for bit. Every function validates its
inputs and raises ValueError with the offending shapes.
"""
from .activations import ACTIVATION_NAMES, activation_backward, activation_forward, softmax
from .conv import conv2d_backward, conv2d_forward, conv_output_size
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .losses import softmax_xent_dense, softmax_xent_sparse, xent_probs_dense, xent_probs_sparse
from .normalization import batchnorm_backward, batchnorm_forward
from .optimizers import adam_update, rmsprop_update, sgd_update
from .pool import (
                   avgpool2d_backward,
                   avgpool2d_forward,
                   global_avgpool2d_backward,
                   global_avgpool2d_forward,
                   global_maxpool2d_backward,
                   global_maxpool2d_forward,
                   maxpool2d_argmax,
                   maxpool2d_backward,
                   maxpool2d_forward,
)

__all__ = [
    "ACTIVATION_NAMES", "activation_backward", "activation_forward", "softmax",
    "conv2d_backward", "conv2d_forward", "conv_output_size",
    "dense_backward", "dense_forward",
    "dropout_backward", "dropout_forward",
    "batchnorm_backward", "batchnorm_forward",
    "softmax_xent_dense", "softmax_xent_sparse", "xent_probs_dense", "xent_probs_sparse",
    "adam_update", "rmsprop_update", "sgd_update",
    "avgpool2d_backward", "avgpool2d_forward", "maxpool2d_argmax", "maxpool2d_backward",
    "maxpool2d_forward", "global_avgpool2d_backward", "global_avgpool2d_forward",
    "global_maxpool2d_backward", "global_maxpool2d_forward",
]
