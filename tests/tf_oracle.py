"""The tf.keras oracle, configured once per session as docs/keras_semantics.md#oracle-settings says.

Import this module (or use the ``tf_keras`` fixture from conftest.py) instead of importing
tensorflow directly: the environment variables must be set before TensorFlow is first imported.

* ``TF_ENABLE_ONEDNN_OPTS=0``: oneDNN reorders float sums on x86.
* CPU only (``CUDA_VISIBLE_DEVICES=-1``), so no TF32 and no GPU kernels; TF32 is disabled anyway.
* ``enable_op_determinism()``: deterministic kernels, and it switches off auto-XLA.
"""
import os
import sys

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
    import numpy as np

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
