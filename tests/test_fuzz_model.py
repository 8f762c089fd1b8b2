"""Fuzzing the Net, the scalar entry points and the public model API (hypothesis; profiles in
tests/fuzz_profiles.py): one valid call, one thing mutated; the call raises a Python exception
with a clear message or gives the reference result (never crashes, hangs or returns garbage).
The kernels' own fuzzing is tests/test_fuzz_core.py."""
import io
import os
import zipfile

import numpy as np
import pytest
from fuzz_profiles import examples
from hypothesis import given
from hypothesis import strategies as st

import cnnfast
from cnnfast import _core, executor
from cnnfast import keras as K

ERRORS = (ValueError, TypeError, OverflowError, MemoryError, NotImplementedError, RuntimeError,
          KeyError, IndexError, OSError)


def _model(seed=0, dropout=True):
    cnnfast.utils.set_random_seed(seed)
    layers = [K.Input((6, 6, 2)), K.layers.Conv2D(3, 3, activation="relu"),
              K.layers.MaxPooling2D(), K.layers.Flatten()]
    if dropout:
        layers.append(K.layers.Dropout(0.25))
    layers.append(K.layers.Dense(4, activation="softmax"))
    m = K.Sequential(layers)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n, seed=1):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, 6, 6, 2)).astype(np.float32), r.integers(0, 4, n).astype(np.int32)


# ---- Net ---------------------------------------------------------------------------------------
NET_MUTATIONS = {
    "x:float64": lambda a: dict(a, x=a["x"].astype(np.float64)),
    "x:fortran": lambda a: dict(a, x=np.asfortranarray(a["x"])),
    "x:negative_strides": lambda a: dict(a, x=np.flip(np.flip(a["x"]).copy())),
    "x:row_short": lambda a: dict(a, x=a["x"].reshape(a["x"].shape[0], -1)[:, :-1].copy()),
    "x:empty": lambda a: dict(a, x=a["x"][:0]),
    "x:None": lambda a: dict(a, x=None),
    "y:int64": lambda a: dict(a, y=a["y"].astype(np.int64)),
    "y:float32": lambda a: dict(a, y=a["y"].astype(np.float32)),
    "y:short": lambda a: dict(a, y=a["y"][:-1].copy()),
    "y:label_K": lambda a: dict(a, y=np.where(np.arange(len(a["y"])) == 0, 4, a["y"]).astype(
        np.int32)),
    "y:label_-1": lambda a: dict(a, y=np.full_like(a["y"], -1)),
    "idx:out_of_range": lambda a: dict(a, idx=np.append(a["idx"][:-1], len(a["y"]))),
    "idx:negative": lambda a: dict(a, idx=np.append(a["idx"][:-1], -1)),
    "idx:int32": lambda a: dict(a, idx=a["idx"].astype(np.int32)),
    "idx:empty": lambda a: dict(a, idx=a["idx"][:0]),
    "idx:too_many": lambda a: dict(a, idx=np.zeros(999, np.int64)),
    "idx:2d": lambda a: dict(a, idx=a["idx"][None]),
    "step:0": lambda a: dict(a, step=0),
    "step:-5": lambda a: dict(a, step=-5),
    "seed:negative": lambda a: dict(a, seed=-1),
    "lr:nan": lambda a: dict(a, lr=float("nan")),
    "out:wrong": lambda a: dict(a, out=np.zeros((1, 3), np.float32)),
    "out:read_only": lambda a: dict(a, out=_read_only(a["out"])),
    "out:float64": lambda a: dict(a, out=a["out"].astype(np.float64)),
}


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _clear(e):
    assert str(e), f"{type(e).__name__} without a message"


@examples(150)
@given(n=st.integers(1, 9), method=st.sampled_from(["train_step", "evaluate", "predict"]),
       what=st.sampled_from(sorted(NET_MUTATIONS)), batch=st.integers(1, 9))
def test_fuzz_net(n, method, what, batch):
    model = _model()
    engine = executor.for_model(model, 9, "train")
    assert isinstance(engine, executor.NativeEngine)
    engine._wire_optimizer()
    net = engine.net
    x, y = _data(n)
    idx = np.arange(min(batch, n), dtype=np.int64)
    a = dict(x=x, y=y, idx=idx, seed=3, lr=1e-3, step=1, out=np.zeros((n, 4), np.float32))
    before = [w.copy() for w in model.get_weights()]
    m = NET_MUTATIONS[what](a)
    calls = {"train_step": lambda a: net.train_step(a["x"], a["y"], a["idx"], a["seed"],
                                                     a["lr"], a["step"]),
             "evaluate": lambda a: net.evaluate(a["x"], a["y"]),
             "predict": lambda a: net.predict(a["x"], a["out"])}
    try:
        calls[method](m)
    except ERRORS as e:
        _clear(e)
        if method == "train_step" and what.startswith(("x:", "y:", "idx:", "step:")):
            # refused before the step: the weights are untouched ... unless the labels are
            # checked by the loss kernel, after the forward pass (no update either way)
            for w, b in zip(model.get_weights(), before):
                np.testing.assert_array_equal(w, b)
        return
    accepted = {"x:fortran", "x:negative_strides", "seed:negative", "lr:nan"}
    relevant = {"train_step": ("x:", "y:", "idx:", "step:", "seed:", "lr:"),
                "evaluate": ("x:", "y:"), "predict": ("x:", "out:")}[method]
    if what.startswith(relevant) and what not in accepted:
        if not (what == "idx:too_many" and method != "train_step"):
            pytest.fail(f"Net.{method} accepted {what}")
    if what in ("x:fortran", "x:negative_strides") and method == "predict":
        ref = np.zeros((n, 4), np.float32)
        net.predict(np.ascontiguousarray(x), ref)
        np.testing.assert_array_equal(m["out"], ref)


@examples(100)
@given(in_shape=st.lists(st.integers(-2, 2**31), min_size=0, max_size=4),
       max_batch=st.integers(-2, 2**31), k=st.integers(-2, 2**31))
def test_fuzz_net_constructor(in_shape, max_batch, k):
    ops = [_core.Op.flatten()]
    size = int(np.prod(in_shape)) if in_shape else 0
    if all(d > 0 for d in in_shape) and 0 < size == k < 2**31 and max_batch > 2**16:
        return  # a valid Net of up to 2^62 floats: it would allocate (and zero) them
    try:
        net = _core.Net(ops, in_shape, max_batch, _core.LossKind.sparse_logits, k, False)
    except ERRORS as e:
        _clear(e)
        return
    assert all(d > 0 for d in in_shape) and 0 < size == k < 2**31 and 0 < max_batch
    assert net.max_batch == max_batch


@examples(200)
@given(shape=st.lists(st.integers(-3, 2**31 + 2), min_size=3, max_size=5),
       window=st.tuples(st.integers(-2, 2**31), st.integers(-2, 2**31)),
       strides=st.tuples(st.integers(-2, 2**31), st.integers(-2, 2**31)),
       padding=st.sampled_from(["valid", "same", "SAME", ""]), oc=st.integers(-1, 2**31))
def test_fuzz_geometry(shape, window, strides, padding, oc):
    """Sizes near and past 2^31: the geometry is exact (TF's formula in 64 bits) or refused."""
    for fn, args in ((_core.pool2d_geometry, (shape, window, strides, padding)),
                     (_core.conv2d_geometry,
                      (shape, list(window) + [shape[-1], oc], strides, padding))):
        try:
            g = fn(*args)
        except ERRORS as e:
            _clear(e)
            continue
        n, h, w, c = shape
        for size, k, s, out in ((h, window[0], strides[0], g["out_shape"][1]),
                                (w, window[1], strides[1], g["out_shape"][2])):
            want = (size - k) // s + 1 if padding == "valid" else -(-size // s)
            assert out == want > 0, (fn.__name__, shape, window, strides, padding, g)


@examples(100)
@given(x=st.floats(allow_nan=True, allow_infinity=True, width=32),
       y=st.floats(allow_nan=True, allow_infinity=True, width=32),
       i=st.integers(-2**70, 2**70), n=st.integers(-2**40, 2**40),
       isa=st.text(max_size=8))
def test_fuzz_scalar_entry_points(x, y, i, n, isa):
    for call in (lambda: _core.f32_pow(x, y), lambda: _core.f32_cos(x), lambda: _core.f32_log(x),
                 lambda: _core.layer_seed(i, n), lambda: _core.nadam_u_product_next(x, y, n),
                 lambda: _core.clip_gradients([np.ones(3, np.float32)], _core.ClipKind.norm,
                                              x)):
        try:
            call()
        except ERRORS as e:
            _clear(e)
    threads = _core.num_threads()
    isa_before = _core.gemm_isa()
    try:
        for call in (lambda: _core.set_num_threads(n), lambda: _core.set_gemm_isa(isa)):
            try:
                call()
            except ERRORS as e:
                _clear(e)
        assert _core.num_threads() >= 1
        assert isinstance(_core.build_info(), dict)
    finally:
        _core.set_num_threads(threads)
        _core.set_gemm_isa(isa_before)


# ---- the model API -----------------------------------------------------------------------------
FIT_MUTATIONS = {
    "x:wrong_shape": lambda a: dict(a, x=a["x"][:, :5]),
    "x:rank3": lambda a: dict(a, x=a["x"][..., 0]),
    "x:strings": lambda a: dict(a, x=a["x"].astype(str)),
    "x:object": lambda a: dict(a, x=a["x"].astype(object)),
    "x:nan": lambda a: dict(a, x=np.where(a["x"] > 2, np.nan, a["x"]) if (a["x"] > 2).any()
                            else np.full_like(a["x"], np.nan)),
    "x:inf": lambda a: dict(a, x=np.full_like(a["x"], np.inf)),
    "x:empty": lambda a: dict(a, x=a["x"][:0], y=a["y"][:0]),
    "x:fortran": lambda a: dict(a, x=np.asfortranarray(a["x"])),
    "x:negative_strides": lambda a: dict(a, x=np.flip(np.flip(a["x"]).copy())),
    "x:float64": lambda a: dict(a, x=a["x"].astype(np.float64)),
    "x:single": lambda a: dict(a, x=a["x"][:1], y=a["y"][:1]),
    "y:label_K": lambda a: dict(a, y=np.full_like(a["y"], 4)),
    "y:label_-1": lambda a: dict(a, y=np.full_like(a["y"], -1)),
    "y:fractional": lambda a: dict(a, y=a["y"] + 0.5),
    "y:nan": lambda a: dict(a, y=np.full(a["y"].shape, np.nan)),
    "y:short": lambda a: dict(a, y=a["y"][:-1]),
    "y:one_hot": lambda a: dict(a, y=np.eye(4, dtype=np.float32)[a["y"]]),
    "batch_size:0": lambda a: dict(a, batch_size=0),
    "batch_size:-1": lambda a: dict(a, batch_size=-1),
    "batch_size:True": lambda a: dict(a, batch_size=True),
    "batch_size:huge": lambda a: dict(a, batch_size=2**40),
    "epochs:-1": lambda a: dict(a, epochs=-1),
    "epochs:1.5": lambda a: dict(a, epochs=1.5),
}
# mutations after which the call is valid: the result must be the unmutated call's
SAME_RESULT = {"x:fortran", "x:negative_strides", "x:float64"}
VALID = SAME_RESULT | {"x:single", "batch_size:huge"}


def _call(model, method, a):
    if method == "fit":
        return model.fit(a["x"], a["y"], batch_size=a["batch_size"], epochs=a["epochs"],
                         verbose=0).history
    if method == "evaluate":
        return model.evaluate(a["x"], a["y"], batch_size=a["batch_size"], verbose=0)
    if method == "predict":
        return model.predict(a["x"], batch_size=a["batch_size"], verbose=0)
    return model.train_on_batch(a["x"], a["y"])


@examples(200)
@given(n=st.integers(1, 12), method=st.sampled_from(["fit", "evaluate", "predict",
                                                     "train_on_batch"]),
       what=st.sampled_from(sorted(FIT_MUTATIONS)), batch=st.integers(1, 12))
def test_fuzz_model_api(n, method, what, batch):
    x, y = _data(n)
    a = dict(x=x, y=y, batch_size=batch, epochs=1)
    m = FIT_MUTATIONS[what](a)
    model = _model()
    try:
        got = _call(model, method, m)
    except ERRORS as e:
        _clear(e)
        assert what not in VALID, f"{method} refused the valid {what}: {e}"
        return
    ignored = {"predict": ("y:", "epochs:"), "train_on_batch": ("batch_size:", "epochs:"),
               "evaluate": ("epochs:",)}.get(method, ())
    if what not in VALID and not what.startswith(ignored):
        pytest.fail(f"{method} accepted {what}")
    if what in SAME_RESULT:
        ref = _call(_model(), method, a)
        if method == "predict":
            np.testing.assert_array_equal(got, ref)
        else:
            assert got == ref
    if method == "predict":
        assert np.isfinite(got).all() and got.shape == (m["x"].shape[0], 4)


@examples(60)
@given(what=st.sampled_from(["count", "shape", "dtype_str", "nan", "none", "scalar"]),
       i=st.integers(0, 3))
def test_fuzz_set_weights(what, i):
    model = _model(dropout=False)
    w = model.get_weights()
    before = [a.copy() for a in w]
    bad = [a.copy() for a in w]
    if what == "count":
        bad = bad[:-1]
    elif what == "shape":
        bad[i] = np.zeros(bad[i].shape + (1,), np.float32)
    elif what == "dtype_str":
        bad[i] = bad[i].astype(str)
    elif what == "nan":
        bad[i] = np.full_like(bad[i], np.nan)
    elif what == "none":
        bad[i] = None
    else:
        bad[i] = 1.0
    try:
        model.set_weights(bad)
    except ERRORS as e:
        _clear(e)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        return
    assert what == "nan", f"set_weights accepted {what}"  # Keras takes NaN weights too
    x, _ = _data(2)
    assert model.predict(x, verbose=0).shape == (2, 4)


_SAVED = {}


def _saved_model_bytes(tmp):
    if "bytes" not in _SAVED:
        path = os.path.join(tmp, "m.keras")
        _model().save(path)
        with open(path, "rb") as f:
            _SAVED["bytes"] = f.read()
    return _SAVED["bytes"]


@examples(150)
@given(kind=st.sampled_from(["truncate", "flip", "zero_run", "entry"]),
       where=st.floats(0.0, 1.0, exclude_max=True), bit=st.integers(0, 7))
def test_fuzz_load_model(tmp_path_factory, kind, where, bit):
    tmp = str(tmp_path_factory.getbasetemp())
    data = bytearray(_saved_model_bytes(tmp))
    pos = int(where * len(data))
    if kind == "truncate":
        data = data[:pos]
    elif kind == "flip":
        data[pos] ^= 1 << bit
    elif kind == "zero_run":
        data[pos:pos + 64] = bytes(len(data[pos:pos + 64]))
    else:  # one archive entry's bytes corrupted but the archive itself valid
        src = zipfile.ZipFile(io.BytesIO(bytes(data)))
        names = src.namelist()
        victim = names[int(where * len(names))]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for name in names:
                content = bytearray(src.read(name))
                if name == victim and content:
                    content[int(where * len(content)) % len(content)] ^= 1 << bit
                z.writestr(name, bytes(content))
        data = out.getvalue()
    path = os.path.join(tmp, f"fuzz-{kind}.keras")
    with open(path, "wb") as f:
        f.write(bytes(data))
    try:
        model = cnnfast.saving.load_model(path)
    except ERRORS as e:
        _clear(e)
        return
    x, _ = _data(2)
    out = model.predict(x, verbose=0)  # a flipped weight bit may load: it must still run
    assert out.shape == (2, 4)


LAYERS = [
    (K.layers.Conv2D, dict(filters=3, kernel_size=3),
     dict(filters=[0, -1, 2.5, None], kernel_size=[0, -1, (0, 3), (3,), "3"],
          strides=[0, -1, (1, 0)], padding=["full", 3], activation=["nope", 3])),
    (K.layers.MaxPooling2D, dict(pool_size=2),
     dict(pool_size=[0, -1, (2, 0), (2, 2, 2)], strides=[0, -2, (0, 1)], padding=["full"])),
    (K.layers.AveragePooling2D, dict(pool_size=2),
     dict(pool_size=[0, -1], strides=[0, -1], padding=["x"])),
    (K.layers.Dense, dict(units=3), dict(units=[0, -1, 1.5, None], activation=["nope"])),
    (K.layers.Dropout, dict(rate=0.5), dict(rate=[-0.1, 1.5, float("nan"), "x"])),
    (K.layers.BatchNormalization, dict(), dict(epsilon=[-1.0, 0.0])),
    (K.layers.ZeroPadding2D, dict(padding=1), dict(padding=[-1, (1, -1), ((1, 1),), "x"])),
]


@examples(150)
@given(case=st.sampled_from([(cls, base, k, v) for cls, base, muts in LAYERS
                             for k, vs in muts.items() for v in vs]))
def test_fuzz_layer_constructors(case):
    cls, base, key, value = case
    cls(**base)  # the valid constructor
    try:
        layer = cls(**dict(base, **{key: value}))
        model = K.Sequential([K.Input((6, 6, 2)), layer])
        model.predict(_data(2)[0], verbose=0)
    except ERRORS as e:
        _clear(e)
        return
    pytest.fail(f"{cls.__name__}({key}={value!r}) was accepted")
