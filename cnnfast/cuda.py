"""Optional CUDA backend: availability, build information and device memory.

    import cnnfast.cuda as cc
    if cc.is_available():
        x = cc.to_device(np.ones((2, 3), np.float32))   # DeviceArray
        cc.activation_forward(x, x, cc.Activation.relu) # same signature as cnnfast.backend's
        y = x.numpy()

The kernels live in the sibling extension ``cnnfast._cuda``, built only with
``CNNFAST_CUDA=1 pip install .``. They have the names and argument order of the CPU kernels in
:mod:`cnnfast.backend`, with :class:`DeviceArray` arguments instead of NumPy arrays, and they
are asynchronous: work is queued on one stream (:func:`stream`), and only :meth:`DeviceArray.numpy`
/ :func:`synchronize` (and the label/argmax range checks) wait for it. Buffers are meant to be
allocated once and reused; a device-resident executor builds on exactly this.

Nothing here touches the GPU at import time, and :func:`is_available` never raises.
"""
from __future__ import annotations

import numpy as np

try:
    from . import _cuda
    _IMPORT_ERROR = None
except ImportError as e:  # not built (the default) or the shared library failed to load
    _cuda = None
    _IMPORT_ERROR = f"{type(e).__name__}: {e}"

# Kernel names exported from cnnfast._cuda (identical to cnnfast.backend's).
KERNELS = (
    "sgemm", "conv2d_forward", "conv2d_backward", "conv2d_workspace_size",
    "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
    "dense_forward", "dense_backward", "activation_forward", "activation_backward",
    "cross_entropy",
    "dropout_forward", "dropout_backward", "adam_update", "sgd_update", "rmsprop_update",
)


def is_built() -> bool:
    """True when the cnnfast._cuda extension was built and imports."""
    return _cuda is not None


def device_count() -> int:
    """Number of visible CUDA devices; 0 without the module, a driver or a GPU. Never raises."""
    if _cuda is None:
        return 0
    try:
        return int(_cuda.device_count())
    except Exception:  # noqa: BLE001 - availability queries must not raise
        return 0


def unavailable_reason() -> str | None:
    """Why CUDA cannot be used here (None when it can): the module or the device is missing."""
    if _cuda is None:
        return ("cnnfast._cuda is not built (build with CNNFAST_CUDA=1 pip install .; "
                f"import failed: {_IMPORT_ERROR})")
    if device_count() == 0:
        return ("cnnfast._cuda is built (sm_" + _cuda.archs.replace(",", ", sm_") +
                ") but no CUDA device is visible (no GPU or no NVIDIA driver)")
    return None


def is_available() -> bool:
    """True when cnnfast._cuda is built AND a CUDA device is present. Never raises."""
    return unavailable_reason() is None


def build_info() -> dict:
    """What was built and what is visible: module state, archs, CUDA versions, cuBLAS/TF32."""
    info = {"built": _cuda is not None, "available": False, "device_count": device_count(),
            "import_error": _IMPORT_ERROR}
    if _cuda is None:
        return info
    info.update(archs=[f"sm_{a}" for a in _cuda.archs.split(",")],
                ptx=f"compute_{max(_cuda.archs.split(','), key=int)}",
                nvcc_version=_cuda.nvcc_version, cublas=bool(_cuda.cublas),
                tf32=bool(_cuda.tf32), driver_version=_cuda.driver_version())
    try:
        info["runtime_version"] = _cuda.runtime_version()
    except Exception as e:  # noqa: BLE001 - report, do not raise
        info["runtime_version"] = f"unavailable ({e})"
    if info["device_count"]:
        info["available"] = True
        info["devices"] = [_cuda.device_name(i) for i in range(info["device_count"])]
    return info


def _require():
    if _cuda is None:
        raise RuntimeError(unavailable_reason())
    return _cuda


def empty(shape, dtype=np.float32):
    """A zero-filled DeviceArray (float32, int32 or uint8)."""
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
    return _require().DeviceArray(shape, np.dtype(dtype).name)


zeros = empty


def to_device(host):
    """Upload a NumPy array (float32, int32 or uint8; converted to C order) to a new DeviceArray."""
    host = np.ascontiguousarray(host)
    arr = _require().DeviceArray(host.shape, host.dtype.name)
    arr.upload(host)
    return arr


def synchronize():
    """Wait for all queued work; raises RuntimeError if a kernel failed."""
    _require().synchronize()


def stream() -> int:
    """The cudaStream_t (as an int) kernels are queued on; 0 is the legacy default stream."""
    return _require().stream()


def set_stream(handle: int):
    _require().set_stream(int(handle))


def __getattr__(name):
    # DeviceArray, Activation (cnnfast._core's) and the kernels come from the extension;
    # without it, say why.
    if name in ("DeviceArray", "Activation") or name in KERNELS:
        return getattr(_require(), name)
    raise AttributeError(f"module 'cnnfast.cuda' has no attribute {name!r}")
