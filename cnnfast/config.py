"""`tf.config`: the device and threading calls tutorials make, answered for cnnfast.

cnnfast trains on the CPU (the optional CUDA kernels, cnnfast.cuda, are not used by `fit`),
so `list_physical_devices("GPU")` is empty and the memory-growth calls are accepted and do
nothing. Its kernels are deterministic for any thread count, so op determinism needs no
switch. The intra-op threads are the kernels' OpenMP threads (cnnfast.set_num_threads)."""
from __future__ import annotations

import os
from collections import namedtuple

from . import _core, backend
from ._missing import Namespace
from ._missing import missing_names as _missing_names

PhysicalDevice = namedtuple("PhysicalDevice", ["name", "device_type"])
LogicalDevice = namedtuple("LogicalDevice", ["name", "device_type"])

_CPU = PhysicalDevice("/physical_device:CPU:0", "CPU")
_inter_op_threads = 0


def list_physical_devices(device_type=None):
    """The devices cnnfast computes on: the CPU only (also for device_type 'GPU': [])."""
    if device_type is None or str(device_type).upper() == "CPU":
        return [_CPU]
    return []


def list_logical_devices(device_type=None):
    return [LogicalDevice("/device:CPU:0", "CPU") for _ in list_physical_devices(device_type)]


def get_visible_devices(device_type=None):
    return list_physical_devices(device_type)


def set_visible_devices(devices, device_type=None):
    """Accepted: cnnfast computes on the CPU whatever is visible."""


def enable_op_determinism():
    """Nothing to enable: cnnfast's kernels and training runs are always deterministic, bit
    for bit for a given seed and any thread count (docs/training_step.md)."""


def enable_tensor_float_32_execution(enabled):
    """Accepted and ignored: cnnfast computes in float32 on the CPU, never in TF32."""


def set_memory_growth(device, enable):
    """Accepted and ignored: cnnfast allocates no GPU memory (no GPU is listed)."""


def get_memory_growth(device):
    return False


def set_intra_op_parallelism_threads(num_threads):
    """The threads of cnnfast's kernels (cnnfast.set_num_threads); 0 leaves them as they are
    (TF: 0 lets the system choose)."""
    if num_threads != 0:
        backend.set_num_threads(num_threads)


def get_intra_op_parallelism_threads():
    """The threads cnnfast's kernels use (cnnfast.get_num_threads)."""
    return backend.get_num_threads()


def set_inter_op_parallelism_threads(num_threads):
    """Recorded only: cnnfast runs one op at a time (its parallelism is inside the ops)."""
    global _inter_op_threads
    _inter_op_threads = int(num_threads)


def get_inter_op_parallelism_threads():
    return _inter_op_threads


def set_conv_algorithm(name):
    """The algorithm of the 3x3 stride-1 convolutions: 'auto' (default: Winograd F(2x2,3x3)
    for the layers docs/winograd.md#when-auto-picks-winograd names, direct for the others),
    'direct' (im2col + GEMM everywhere) or 'winograd' (every 3x3 stride-1 layer). Other
    convolutions are always direct. The environment variable CNNFAST_CONV_ALGO sets it at
    import. Results are deterministic for any thread count under each setting."""
    _core.set_conv_algorithm(str(name).lower())


def get_conv_algorithm():
    """'auto', 'direct' or 'winograd' (set_conv_algorithm)."""
    return _core.conv_algorithm()


experimental = Namespace(
    "tensorflow.config.experimental", enable_op_determinism=enable_op_determinism,
    enable_tensor_float_32_execution=enable_tensor_float_32_execution,
    set_memory_growth=set_memory_growth, get_memory_growth=get_memory_growth,
    list_physical_devices=list_physical_devices, set_visible_devices=set_visible_devices,
    get_visible_devices=get_visible_devices)
threading = Namespace(
    "tensorflow.config.threading",
    set_intra_op_parallelism_threads=set_intra_op_parallelism_threads,
    get_intra_op_parallelism_threads=get_intra_op_parallelism_threads,
    set_inter_op_parallelism_threads=set_inter_op_parallelism_threads,
    get_inter_op_parallelism_threads=get_inter_op_parallelism_threads)

if os.environ.get("CNNFAST_CONV_ALGO"):
    set_conv_algorithm(os.environ["CNNFAST_CONV_ALGO"])

__getattr__ = _missing_names("tensorflow.config")
