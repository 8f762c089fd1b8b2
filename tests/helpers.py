"""Test helpers: compare cnnfast._core kernels with the NumPy reference (cnnfast.reference).

check_op(...)           runs a kernel and its reference, forward then backward, with explicit
                        atol/rtol; a failure prints the max abs/rel difference, where it is, and
                        the shapes.
assert_close(...)       the comparison itself (|actual - expected| <= atol + rtol * |expected|).
sum_tol, reduction_atol atol for an fp32 sum of many products (why: in their docstrings).
z, readonly, noncontig  arrays for the binding-error tests.
core_*, run_conv        thin wrappers that allocate the output buffers _core kernels write into.
DIFFS                   largest differences seen per op; conftest.py prints them at the end of a
                        run.
fit_on_engine, fit_augmenting, assert_engines_agree, assert_augmenting_engines_agree,
assert_own_seed_on_layer_engine
                        the Net vs LayerEngine checks the layer tests share.
assert_augment_thread_independent, assert_configs_round_trip, assert_configs_match_keras,
assert_raises_each      the augmentation layers' shared checks.
assert_summary_matches_keras, assert_fit_epoch_matches_keras
                        tf.keras parity of a model's summary and of one fit epoch.
"""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import _core, backend, executor

# Default float32 tolerance (CONTRIBUTING.md#tolerances): kernels in fp32 vs the float64 reference.
ATOL = 1e-5
RTOL = 1e-4

DIFFS = {}  # op -> {"abs": largest |a - e|, "rel": largest |a - e| / |e| where |e| > 1e-3}


def rand(rng, shape, scale=1.0):
    """float32 standard normals times `scale`."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def sum_tol(n_terms):
    """atol for an fp32 result that is a sum of n_terms products of O(1) numbers.

    Such a sum is O(sqrt(n)) in size and its rounding error, in any summation order, grows
    about like eps32 * n (worst case for blocked/pairwise orders is smaller, for a plain loop
    larger); 1e-6 * n keeps a 10x margin over what we observe while still catching any
    indexing error, which produces O(1) differences.
    """
    return max(ATOL, 1e-6 * n_terms)


def reduction_atol(K):
    """atol for an fp32 reduction of length K against float64, on unit-normal data: values
    grow like sqrt(K), rounding error like K*u*sum|terms|, so the tolerance scales with K."""
    return 1e-5 * max(K, 1)


def _record(op, absdiff, reldiff):
    d = DIFFS.setdefault(op, {"abs": 0.0, "rel": 0.0})
    d["abs"] = max(d["abs"], absdiff)
    d["rel"] = max(d["rel"], reldiff)


def assert_close(actual, expected, *, atol=ATOL, rtol=RTOL, name="output", op=None):
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaNs must match)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{name}: shape {a.shape} != reference shape {e.shape}"
    if a.size == 0:
        return
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert (nan_a == nan_e).all(), f"{name}: NaN pattern differs ({nan_a.sum()} vs {nan_e.sum()})"
    a, e = np.where(nan_a, 0.0, a), np.where(nan_e, 0.0, e)
    diff = np.abs(a - e)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(e) > 1e-3, diff / np.abs(e), 0.0)
    if op is not None:
        _record(op, float(diff.max()), float(rel.max()))
    bad = diff > atol + rtol * np.abs(e)
    if bad.any():
        i = np.unravel_index(np.argmax(diff), diff.shape)
        raise AssertionError(
            f"{name}{' of ' + op if op else ''}: {int(bad.sum())}/{a.size} elements outside "
            f"atol={atol:g} rtol={rtol:g}; max abs diff {diff.max():.3e} at {tuple(map(int, i))} "
            f"(got {a[i]:.8g}, expected {e[i]:.8g}); max rel diff {rel.max():.3e}; "
            f"shape {a.shape}")


def _tuple(v):
    return v if isinstance(v, tuple) else (v,)


def check_op(op, core_fwd, ref_fwd, inputs, core_bwd=None, ref_bwd=None, *, atol=ATOL,
             rtol=RTOL, grad_atol=None, grad_rtol=None, names=None, grad_names=None, seed=0):
    """Run a kernel against its reference, forward then (optionally) backward.

    core_fwd(*inputs) and ref_fwd(*inputs) return an array or a tuple of arrays.
    core_bwd(dout, *inputs) and ref_bwd(dout, *inputs) return a tuple of gradients, where dout
    is a random float32 upstream gradient shaped like the first forward output.
    Returns (forward outputs, gradients) of the kernel.
    """
    grad_atol = atol if grad_atol is None else grad_atol
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    out, ref = _tuple(core_fwd(*inputs)), _tuple(ref_fwd(*inputs))
    assert len(out) == len(ref), f"{op}: {len(out)} outputs vs {len(ref)} in the reference"
    names = names or [f"out[{i}]" for i in range(len(out))]
    for o, r, n in zip(out, ref, names):
        assert_close(o, r, atol=atol, rtol=rtol, name=f"forward {n}", op=f"{op} fwd")
    if core_bwd is None:
        return out, None
    dout = rand(np.random.default_rng(seed + 1), out[0].shape)
    grads, rgrads = _tuple(core_bwd(dout, *inputs)), _tuple(ref_bwd(dout, *inputs))
    grad_names = grad_names or [f"grad[{i}]" for i in range(len(grads))]
    for g, r, n in zip(grads, rgrads, grad_names):
        if g is None:
            continue
        assert_close(g, r, atol=grad_atol, rtol=grad_rtol, name=f"backward {n}",
                     op=f"{op} bwd {n}")
    return out, grads


# ---- arrays for the binding-error tests ------------------------------------------------------

def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def readonly(a):
    a.setflags(write=False)
    return a


def noncontig(*shape):
    """A float32 view with the given shape that is not C-contiguous."""
    return np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]


# ---- wrappers allocating _core outputs -----------------------------------------------------

def conv_workspace(x_shape, w_shape, strides, padding):
    ws = _core.conv2d_geometry(list(x_shape), list(w_shape), tuple(strides), padding)["workspace"]
    return np.empty(max(ws, 1), np.float32)


def core_conv2d_forward(x, w, b, strides, padding):
    g = _core.conv2d_geometry(list(x.shape), list(w.shape), tuple(strides), padding)
    out = np.empty(g["out_shape"], np.float32)
    _core.conv2d_forward(out, x, w, b, tuple(strides), padding,
                         conv_workspace(x.shape, w.shape, strides, padding))
    return out


def core_conv2d_backward(dout, x, w, strides, padding, with_dinp=True, with_bias=True):
    dinp = np.empty_like(x) if with_dinp else None
    dw = np.empty_like(w)
    db = np.empty(w.shape[3], np.float32) if with_bias else None
    _core.conv2d_backward(dinp, dw, db, dout, x, w, tuple(strides), padding,
                          conv_workspace(x.shape, w.shape, strides, padding))
    return dinp, dw, db


def run_conv(x, w, bias, strides, padding, dout, want_dinp=True):
    """(out, dinp, dweight, dbias) of one forward and one backward; the gradients start as NaN,
    so a kernel that leaves a cell unwritten fails."""
    g = _core.conv2d_geometry(list(x.shape), list(w.shape), strides, padding)
    ws = np.empty(max(1, g["workspace"]), np.float32)
    out = np.empty(g["out_shape"], np.float32)
    _core.conv2d_forward(out, x, w, bias, strides, padding, ws)
    dx = np.full(x.shape, np.nan, np.float32) if want_dinp else None
    dw = np.full(w.shape, np.nan, np.float32)
    db = np.full(w.shape[3], np.nan, np.float32) if bias is not None else None
    _core.conv2d_backward(dx, dw, db, dout, x, w, strides, padding, ws)
    return out, dx, dw, db


def _pool_out_shape(x, pool, strides, padding):
    return _core.pool2d_geometry(list(x.shape), tuple(pool), tuple(strides), padding)["out_shape"]


def core_maxpool2d_forward(x, pool, strides, padding):
    """(out, argmax) from _core.maxpool2d_forward."""
    shape = _pool_out_shape(x, pool, strides, padding)
    out, argmax = np.empty(shape, np.float32), np.empty(shape, np.int32)
    _core.maxpool2d_forward(out, argmax, x, tuple(pool), tuple(strides), padding)
    return out, argmax


def core_maxpool2d_backward(dout, argmax, x_shape, pool, strides, padding):
    dinp = np.empty(x_shape, np.float32)
    _core.maxpool2d_backward(dinp, dout, argmax, tuple(pool), tuple(strides), padding)
    return dinp


def core_avgpool2d_forward(x, pool, strides, padding):
    out = np.empty(_pool_out_shape(x, pool, strides, padding), np.float32)
    _core.avgpool2d_forward(out, x, tuple(pool), tuple(strides), padding)
    return out


def core_avgpool2d_backward(dout, x_shape, pool, strides, padding):
    dinp = np.empty(x_shape, np.float32)
    _core.avgpool2d_backward(dinp, dout, tuple(pool), tuple(strides), padding)
    return dinp


def core_dense_forward(x, w, b):
    out = np.empty((x.shape[0], w.shape[1]), np.float32)
    _core.dense_forward(out, x, w, b)
    return out


def core_dense_backward(dout, x, w, with_dinp=True, with_bias=True):
    dinp = np.empty_like(x) if with_dinp else None
    dw = np.empty_like(w)
    db = np.empty(w.shape[1], np.float32) if with_bias else None
    _core.dense_backward(dinp, dw, db, dout, x, w)
    return dinp, dw, db


def core_activation_forward(x, name):
    out = np.empty_like(x)
    _core.activation_forward(out, x, _core.Activation.__members__[name])
    return out


def core_activation_backward(dout, y, name):
    dinp = np.empty_like(y)
    _core.activation_backward(dinp, dout, y, _core.Activation.__members__[name])
    return dinp


def core_xent(kind, a, b, grad_scale, eps=1e-7):
    """(loss, grad) from _core.cross_entropy for one of the four kernels: kind is
    softmax_xent_* (from logits) or xent_probs_*; the labels' dtype picks sparse or dense."""
    assert b.dtype == (np.int32 if kind.endswith("_sparse") else np.float32), kind
    B = a.shape[0]
    loss, grad = np.empty(B, np.float32), np.empty_like(a)
    _core.cross_entropy(loss, grad, a, b, kind.startswith("softmax_xent"), eps, grad_scale)
    return loss, grad


def core_dropout_forward(x, rate, seed):
    """(out, mask) from _core.dropout_forward."""
    out, mask = np.empty_like(x), np.empty(x.shape, np.uint8)
    _core.dropout_forward(out, mask, x, rate, seed)
    return out, mask


def core_dropout_backward(dout, mask, rate):
    dinp = np.empty_like(dout)
    _core.dropout_backward(dinp, dout, mask, rate)
    return dinp


# ---- Net vs LayerEngine ----------------------------------------------------------------------

def fit_on_engine(monkeypatch, native, make_model, x, y, **fit_kwargs):
    """Fit make_model() (Adam(0.01), sparse categorical cross-entropy, accuracy; batch 8, two
    shuffled epochs) on the Net (native) or the LayerEngine, picked by CNNFAST_EXECUTOR, after
    asserting that engine is the one for_model gives. Returns (weights, history, predictions
    on x)."""
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    m = make_model()
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0, **fit_kwargs)
    return m.get_weights(), h.history, m.predict(x, verbose=0)


def assert_engines_agree(run):
    """run(native) -> (weights, history, predictions): both engines agree bit for bit."""
    w1, h1, p1 = run(True)
    w2, h2, p2 = run(False)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def fit_augmenting(m, x, y, native):
    """Fit m (Adam(0.01), sparse categorical cross-entropy, accuracy; batch 16, two epochs with
    validation_split 0.2), then one train_on_batch on x[:8], with use_native_executor = native.
    Returns (the engine class's name for_model gives, history, weights, m)."""
    m.use_native_executor = native
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    engine = executor.for_model(m, 16, "train")
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.2)
    m.train_on_batch(x[:8], y[:8])
    return type(engine).__name__, h.history, m.get_weights(), m


def assert_augmenting_engines_agree(run):
    """run(native) -> fit_augmenting's tuple: the Net runs the model and trains it bit for bit
    as the LayerEngine does. Returns the two models (Net's first)."""
    kind, h1, w1, m1 = run(True)
    assert kind == "NativeEngine"
    kind2, h2, w2, m2 = run(False)
    assert kind2 == "LayerEngine"
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    return m1, m2


def assert_own_seed_on_layer_engine(run):
    """run(native, seed=...) -> fit_augmenting's tuple: a layer with its own seed makes the
    model run on the LayerEngine, and its generator restarts with the model (same history)."""
    kind, h1, _, _ = run(True, seed=5)
    assert kind == "LayerEngine"
    _, h2, _, _ = run(True, seed=5)
    assert h1 == h2


# ---- augmentation layers ---------------------------------------------------------------------

def assert_augment_thread_independent(layer, x, threads, seed=99):
    """augment_forward of `layer` on x gives the same bits with 1, `threads` and 3 threads
    (then leaves `threads` set)."""
    outs = []
    for n in (1, threads, 3):
        _core.set_num_threads(n)
        out = np.empty((x.shape[0],) + layer.compute_output_shape(x.shape)[1:], np.float32)
        backend.augment_forward(out, x, layer.spec(), seed)
        outs.append(out)
    _core.set_num_threads(threads)
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0], o)


def assert_configs_round_trip(layer_list):
    """Each layer rebuilt from its get_config() has the same config."""
    for layer in layer_list:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()


def assert_configs_match_keras(pairs):
    """(ours, theirs) layer pairs: every key of our config that Keras's has too (but name,
    dtype, trainable) holds the same value (a list and a tuple compare by items)."""
    for ours, theirs in pairs:
        k = theirs.get_config()
        for key, value in ours.get_config().items():
            if key in k and key not in ("name", "dtype", "trainable"):
                assert k[key] == value or tuple(k[key]) == tuple(value), key


def assert_raises_each(cases):
    """cases: (exception type(s), match, call); each call() raises it, its message matching."""
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()


# ---- tf.keras parity of whole models ---------------------------------------------------------

def assert_summary_matches_keras(km, cm):
    """Our summary of cm, but its first line (the title), is Keras's of km."""
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))


def assert_fit_epoch_matches_keras(keras, km, cm, xs, ys, label):
    """One unshuffled epoch (Adam, sparse categorical cross-entropy, batch 32) of km and of cm,
    which starts from km's weights: the epoch losses within 1e-5 relative, every weight within
    2e-2 of its largest magnitude (free-running Adam: test_parity_models.FREE_RUN["adam"]).
    Records both as "<label> fit epoch loss (rel)" and "<label> fit weights (rel)"."""
    import tf_oracle  # here: tf_oracle imports this module

    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    hk = km.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record(f"{label} fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record(f"{label} fit weights (rel)", [err], [0.0])
        assert err <= 2e-2, err  # free-running Adam (test_parity_models.FREE_RUN["adam"])
