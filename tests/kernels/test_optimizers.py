"""optimizers: _core.adam_update, sgd_update and rmsprop_update.

In order: against the NumPy reference, bit-exact (Keras's float32 arithmetic, over 5 steps,
with 1 and 2 threads), against tf.keras over 10 steps (marked tf), binding errors.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import numpy as np
import pytest
from helpers import rand, readonly, z
from tf_oracle import check, seed_of

import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference: bit-exact Keras float32 arithmetic over 5 steps ----------------------------

def opt_arrays(n, seed):
    rng = np.random.default_rng(seed)
    w = rand(rng, (n,))
    grads = [rand(rng, (n,), 0.1 * (s + 1)) for s in range(5)]
    return w, grads


OPT_SIZES = [7, 40_000]  # 40 000 > the kernels' parallel grain


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("lr,beta1,beta2,eps", [(1e-3, 0.9, 0.999, 1e-7),
                                                (0.01, 0.8, 0.95, 1e-3)])
def test_adam_bit_exact(threads, n, amsgrad, lr, beta1, beta2, eps):
    w, grads = opt_arrays(n, 1)
    m, v = np.zeros_like(w), np.zeros_like(w)
    vhat = np.zeros_like(w) if amsgrad else None
    rw, rm, rv, rvh = w.copy(), m.copy(), v.copy(), None if vhat is None else vhat.copy()
    for step, g in enumerate(grads, start=1):
        _core.adam_update(w, m, v, vhat, g, lr, beta1, beta2, eps, step)
        rw, rm, rv, rvh = R.adam_update(rw, rm, rv, g, lr, beta1, beta2, eps, step, rvh)
        np.testing.assert_array_equal(m, rm, err_msg=f"m at step {step}")
        np.testing.assert_array_equal(v, rv, err_msg=f"v at step {step}")
        if amsgrad:
            np.testing.assert_array_equal(vhat, rvh, err_msg=f"vhat at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


@pytest.mark.parametrize("step", [4, 873, 2359, 100_000])
def test_adam_bias_correction_late_steps(step):
    """Steps where np.power(0.9f, 4) or round(double pow) differ from the C powf by an ulp."""
    w, grads = opt_arrays(64, 4)
    m, v = rand(np.random.default_rng(5), (64,), 0.01), np.full(64, 1e-4, np.float32)
    rw, rm, rv, _ = R.adam_update(w, m, v, grads[0], 1e-3, 0.9, 0.999, 1e-7, step)
    _core.adam_update(w, m, v, None, grads[0], 1e-3, 0.9, 0.999, 1e-7, step)
    np.testing.assert_array_equal(m, rm)
    np.testing.assert_array_equal(v, rv)
    np.testing.assert_array_equal(w, rw)


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True)])
def test_sgd_bit_exact(threads, n, momentum, nesterov):
    w, grads = opt_arrays(n, 2)
    vel = np.zeros_like(w) if momentum else None
    rw, rvel = w.copy(), None if vel is None else vel.copy()
    for step, g in enumerate(grads, start=1):
        _core.sgd_update(w, vel, g, 0.01, momentum, nesterov)
        rw, rvel = R.sgd_update(rw, rvel, g, 0.01, momentum, nesterov)
        if momentum:
            np.testing.assert_array_equal(vel, rvel, err_msg=f"velocity at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.9, False), (0.0, True),
                                               (0.5, True)])
def test_rmsprop_bit_exact(threads, n, momentum, centered):
    w, grads = opt_arrays(n, 3)
    v = np.zeros_like(w)
    mom = np.zeros_like(w) if momentum else None
    avg = np.zeros_like(w) if centered else None
    rw, rv = w.copy(), v.copy()
    rmom, ravg = (None if a is None else a.copy() for a in (mom, avg))
    for step, g in enumerate(grads, start=1):
        _core.rmsprop_update(w, v, mom, avg, g, 1e-3, 0.9, momentum, 1e-7, centered)
        rw, rv, rmom, ravg = R.rmsprop_update(rw, rv, rmom, ravg, g, 1e-3, 0.9, momentum, 1e-7,
                                              centered)
        np.testing.assert_array_equal(v, rv, err_msg=f"v at step {step}")
        for got, ref, nm in ((mom, rmom, "mom"), (avg, ravg, "avg")):
            if got is not None:
                np.testing.assert_array_equal(got, ref, err_msg=f"{nm} at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


# ---- tf.keras parity -----------------------------------------------------------------------------

OPTIMIZERS = {
    "adam": (lambda k: k.optimizers.Adam(), "adam", dict(amsgrad=False)),
    "adam_amsgrad": (lambda k: k.optimizers.Adam(amsgrad=True), "adam", dict(amsgrad=True)),
    "sgd_momentum": (lambda k: k.optimizers.SGD(learning_rate=0.01, momentum=0.9), "sgd",
                     dict(lr=0.01, momentum=0.9, nesterov=False)),
    "sgd_nesterov": (lambda k: k.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
                     "sgd", dict(lr=0.01, momentum=0.9, nesterov=True)),
    "sgd_plain": (lambda k: k.optimizers.SGD(), "sgd", dict(lr=0.01, momentum=0.0, nesterov=False)),
    "rmsprop": (lambda k: k.optimizers.RMSprop(), "rmsprop", dict(momentum=0.0, centered=False)),
    "rmsprop_momentum": (lambda k: k.optimizers.RMSprop(momentum=0.5), "rmsprop",
                         dict(momentum=0.5, centered=False)),
    "rmsprop_centered": (lambda k: k.optimizers.RMSprop(centered=True), "rmsprop",
                         dict(momentum=0.0, centered=True)),
}


class CoreOptimizer:
    """The same update through cnnfast._core, one state set per variable."""

    def __init__(self, kind, shape, **kw):
        self.kind, self.kw, self.step = kind, kw, 0
        z = lambda: np.zeros(shape, np.float32)  # noqa: E731
        if kind == "adam":
            self.m, self.v = z(), z()
            self.vhat = z() if kw["amsgrad"] else None
        elif kind == "sgd":
            self.vel = z() if kw["momentum"] else None
        else:
            self.v = z()
            self.mom = z() if kw["momentum"] > 0 else None
            self.avg = z() if kw["centered"] else None

    def apply(self, w, g):
        self.step += 1
        if self.kind == "adam":
            _core.adam_update(w, self.m, self.v, self.vhat, g, 0.001, 0.9, 0.999, 1e-7, self.step)
        elif self.kind == "sgd":
            _core.sgd_update(w, self.vel, g, self.kw["lr"], self.kw["momentum"],
                             self.kw["nesterov"])
        else:
            _core.rmsprop_update(w, self.v, self.mom, self.avg, g, 0.001, 0.9,
                                 self.kw["momentum"], 1e-7, self.kw["centered"])


@pytest.mark.tf
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_parity(tf_keras, name):
    """10 steps of identical random gradients on identical float32 variables.

    The kernels reproduce Keras's float32 expression order (csrc/optim.h), so the expectation is
    bit equality; the tolerance allows 4 ulps of the variable (atol 4*eps*|w| via rtol 5e-7)
    because TF evaluates sqrt/pow with Eigen's vectorised routines, which may round differently
    from libm in the last bit, and such a 1-ulp difference in alpha or sqrt(v) then propagates.
    Measured on x86-64 with TF 2.21: bit-identical for all eight configurations."""
    tf, keras = tf_keras
    make, kind, kw = OPTIMIZERS[name]
    rng = np.random.default_rng(seed_of(name))
    shapes = [(3, 3, 2, 4), (37,)]
    w0 = [rand(rng, s) for s in shapes]
    grads = [[rand(rng, s, 10.0 ** rng.integers(-4, 1)) for s in shapes] for _ in range(10)]
    for step in grads:  # zeros and tiny values exercise eps handling
        step[1][:3] = 0.0
    tf_vars = [tf.Variable(w) for w in w0]
    opt = make(keras)
    ours = [w.copy() for w in w0]
    states = [CoreOptimizer(kind, w.shape, **kw) for w in w0]
    for step in grads:
        opt.apply_gradients(zip([tf.constant(g) for g in step], tf_vars))
        for w, st, g in zip(ours, states, step):
            st.apply(w, g)
    for w, v in zip(ours, tf_vars):
        want = v.numpy()
        check(f"optimizer {name}", w, want, atol=1e-7, rtol=5e-7)


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "adam_float64_g": (TypeError, "g must have dtype float32",
                       lambda: _core.adam_update(z(3), z(3), z(3), None,
                                                 z(3, dtype=np.float64), 1e-3, 0.9, 0.999,
                                                 1e-7, 1)),
    "adam_m_shape": (ValueError, r"m has shape \(4,\), expected \(3,\)",
                     lambda: _core.adam_update(z(3), z(4), z(3), None, z(3), 1e-3, 0.9, 0.999,
                                               1e-7, 1)),
    "readonly_w_optimizer": (ValueError, "w must be writable",
                             lambda: _core.sgd_update(readonly(z(3)), None, z(3), 0.1, 0.0,
                                                      False)),
    "adam_step_zero": (ValueError, "step must be >= 1",
                       lambda: _core.adam_update(z(3), z(3), z(3), None, z(3), 1e-3, 0.9, 0.999,
                                                 1e-7, 0)),
    "sgd_momentum_no_velocity": (ValueError, "needs a velocity buffer",
                                 lambda: _core.sgd_update(z(3), None, z(3), 0.1, 0.9, False)),
    "rmsprop_momentum_no_buffer": (ValueError, "needs a momentum buffer",
                                   lambda: _core.rmsprop_update(z(3), z(3), None, None, z(3), 0.1,
                                                                0.9, 0.5, 1e-7, False)),
    "rmsprop_centered_no_avg": (ValueError, "needs an average-gradient buffer",
                                lambda: _core.rmsprop_update(z(3), z(3), None, None, z(3), 0.1,
                                                             0.9, 0.0, 1e-7, True)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_optimizer_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()
