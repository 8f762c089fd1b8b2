"""The tf.keras oracle, configured once per session as docs/keras_semantics.md#oracle-settings says.

Import this module (or use the ``tf_keras`` fixture from conftest.py) instead of importing
tensorflow directly: the environment variables must be set before TensorFlow is first imported.

* ``TF_ENABLE_ONEDNN_OPTS=0``: oneDNN reorders float sums on x86.
* CPU only (``CUDA_VISIBLE_DEVICES=-1``), so no TF32 and no GPU kernels; TF32 is disabled anyway.
* ``enable_op_determinism()``: deterministic kernels, and it switches off auto-XLA.

``check`` compares a kernel's output with the oracle's and records the difference (the session
summary in conftest.py prints the largest per op). Tolerances (fp32):

* forward: atol 1e-5, rtol 1e-4 (the project default, CONTRIBUTING.md#tolerances;
  docs/keras_semantics.md#tolerances expects ~1e-6/1e-5 per layer, which the measured errors
  meet, see the summary);
* backward: the same, except reductions over many terms (conv/dense dweight, dbias; conv dinp
  with many overlapping windows) whose magnitudes grow with the summed count: GRAD_SUM_ATOL,
  since summation order differs between our GEMM and Eigen's and each term carries ~6e-8 rel
  error;
* optimizers: a few ulps, see test_optimizer_parity.
"""
import os
import sys
import zlib

import numpy as np
from helpers import ATOL, RTOL

GRAD_SUM_ATOL = 1e-4  # reductions over many products (see the module docstring)

# op name -> (max abs diff, max abs diff / max |reference|) seen across the session's parity tests
MAX_DIFFS = {}

_state = {}


def load():
    """Return ``(tf, keras)`` configured for parity testing; skips the test if TF is missing."""
    if "tf" in _state:
        return _state["tf"], _state["keras"]
    import pytest

    if "tensorflow" in sys.modules:
        # Too late to change the environment: only proceed if it was already right.
        assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0", \
            "tensorflow was imported before tests/tf_oracle.py set TF_ENABLE_ONEDNN_OPTS=0"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the parity oracle) not installed")
    import keras

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised; CUDA_VISIBLE_DEVICES covers it
        pass
    _state.update(tf=tf, keras=keras)
    return tf, keras


def record(op, got, want):
    """Record and return (max abs, max rel) difference of ``got`` vs ``want`` under ``op``."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    diff = np.abs(got - want)
    abs_d = float(diff.max()) if diff.size else 0.0
    # Relative to the reference's scale (max |want|): elementwise relative error is meaningless
    # where a value is ~0 by cancellation.
    scale = float(np.abs(want).max()) if want.size else 0.0
    rel_d = abs_d / scale if scale > 0 else abs_d
    a0, r0 = MAX_DIFFS.get(op, (0.0, 0.0))
    MAX_DIFFS[op] = (max(a0, abs_d), max(r0, rel_d))
    return abs_d, rel_d


def check(op, got, want, atol=ATOL, rtol=RTOL):
    """assert_allclose that records the differences and prints them on failure."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != oracle {want.shape}"
    a, r = record(op, got, want)
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol,
                               err_msg=f"{op}: max abs diff {a:.3e}, "
                                       f"max abs diff / max|ref| {r:.3e}")


def seed_of(*key):
    """A per-case seed that is stable across runs (hash() of str is salted per process)."""
    return zlib.crc32(repr(key).encode())


def tf_grads(tf, layer, x, dy):
    """Run ``layer`` on x under a tape; return y, dx and the gradients of its weights."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    grads = tape.gradient(y, [xt] + list(layer.trainable_weights), output_gradients=tf.constant(dy))
    return y.numpy(), [g.numpy() for g in grads]
