"""Model saving (cnnfast.saving): bit-identical round trips, compile/optimizer state, weights
files, validation of corrupt or foreign files, atomic writes; Keras interop (cnnfast.interop)."""
import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

if "tensorflow" not in sys.modules:          # before TensorFlow is first imported (tf tests)
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import cnnfast as cf  # noqa: E402
from cnnfast import layers, saving  # noqa: E402
from cnnfast.layers.base import reset_names  # noqa: E402
from cnnfast.saving import archive  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh():
    reset_names()
    cf.utils.set_random_seed(1234)


@pytest.fixture
def no_pickle(monkeypatch):
    """Loading must never unpickle anything."""
    def boom(*a, **k):
        raise AssertionError("pickle used while loading")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)


def data(n=24, hw=8, classes=3, seed=0):
    r = np.random.default_rng(seed)
    return r.random((n, hw, hw, 1), dtype=np.float32), r.integers(0, classes, n)


def cnn(first="input", dropout_seed=None):
    """A small CNN built with Input, with input_shape=, or deferred."""
    kw = {"input_shape": (8, 8, 1)} if first == "input_shape" else {}
    ls = [layers.Input((8, 8, 1))] if first == "input" else []
    ls += [layers.Conv2D(4, 3, padding="same", activation="relu", **kw),
           layers.MaxPooling2D(),
           layers.Conv2D(3, (2, 2), strides=2, use_bias=False),
           layers.AveragePooling2D(1),
           layers.Flatten(),
           layers.Dropout(0.25, seed=dropout_seed),
           layers.Dense(6, activation="tanh"),
           layers.ReLU(),
           layers.Dense(3),
           layers.Softmax()]
    return cf.Sequential(ls, name="small_cnn")


def functional(multi):
    inp = layers.Input((8, 8, 1), name="image")
    h = layers.Conv2D(4, 3, activation="relu")(inp)
    h = layers.Flatten()(h)
    h = layers.Dense(8, activation="sigmoid")(h)
    a = layers.Dense(3, activation="softmax", name="head_a")(h)
    if not multi:
        return cf.Model(inp, a, name="single")
    b = layers.Activation("tanh")(layers.Dense(2, name="head_b")(h))
    return cf.Model(inputs=[inp], outputs=[a, h, b], name="multi")


def members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path, mem):
    with zipfile.ZipFile(path, "w") as z:
        for n, d in mem.items():
            z.writestr(n, d)


# ---- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("first", ["input", "input_shape", "deferred"])
def test_sequential_round_trip_is_bit_identical(tmp_path, first):
    m = cnn(first)
    x, _ = data()
    want = m.predict(x, verbose=0)           # builds the deferred model
    path = tmp_path / "m.cnnfast"
    m.save(path)
    m2 = cf.models.load_model(path)
    assert type(m2) is cf.Sequential and m2.name == "small_cnn"
    np.testing.assert_array_equal(m2.predict(x, verbose=0), want)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [layer.name for layer in m2.layers] == [layer.name for layer in m.layers]
    assert m2.get_config() == m.get_config()
    assert m2.count_params() == m.count_params()


def test_unbuilt_sequential_round_trips_as_unbuilt(tmp_path):
    m = cnn("deferred")
    m.save(tmp_path / "m.keras")
    m2 = cf.models.load_model(tmp_path / "m.keras")
    assert not m2.built and m2.get_config() == m.get_config()
    assert m2.predict(data()[0], verbose=0).shape == (24, 3)


@pytest.mark.parametrize("multi", [False, True])
def test_functional_round_trip_is_bit_identical(tmp_path, multi):
    m = functional(multi)
    x, _ = data()
    want = m.predict(x, verbose=0)
    m.save(tmp_path / "f.cnnfast")
    m2 = cf.models.load_model(tmp_path / "f.cnnfast")
    assert type(m2) is cf.Model and m2.name == m.name
    got = m2.predict(x, verbose=0)
    if multi:
        assert isinstance(got, list) and len(got) == 3
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    else:
        np.testing.assert_array_equal(got, want)
    assert m2.get_config() == m.get_config()
    assert [layer.name for layer in m2.layers] == [layer.name for layer in m.layers]


def test_model_from_config_and_layer_from_config():
    m = functional(True)
    m2 = cf.Model.from_config(json.loads(json.dumps(m.get_config())))
    assert m2.get_config() == m.get_config()
    s = cnn("input")
    assert cf.Sequential.from_config(s.get_config()).get_config() == s.get_config()
    for layer in s.layers + [layers.Activation("sigmoid"), layers.Dense(
            2, kernel_initializer=cf.initializers.HeNormal(seed=5), bias_initializer="ones")]:
        cfg = json.loads(json.dumps(layer.get_config()))
        assert type(layer).from_config(cfg).get_config() == layer.get_config()


@pytest.mark.parametrize("make", [lambda: cnn("input"), lambda: cnn("input_shape"),
                                  lambda: functional(False), lambda: functional(True)],
                         ids=["sequential_input", "sequential_input_shape", "functional_single",
                              "functional_multi"])
def test_from_config_of_get_config_rebuilds_the_same_model(make):
    m = make()
    m2 = type(m).from_config(json.loads(json.dumps(m.get_config())))
    assert type(m2) is type(m) and m2.name == m.name and m2 is not m
    assert [(type(a), a.name) for a in m2.layers] == [(type(a), a.name) for a in m.layers]
    assert all(a is not b for a, b in zip(m2.layers, m.layers))
    assert [[layer.name for layer in n.inbound_layers] for n in m2.nodes] == \
        [[layer.name for layer in n.inbound_layers] for n in m.nodes]
    assert m2.get_config() == m.get_config()
    m2.set_weights(m.get_weights())
    x, _ = data()
    want, got = m.predict(x, verbose=0), m2.predict(x, verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list)
                    else [want]):
        np.testing.assert_array_equal(g, w)


def test_from_config_leaves_the_global_rng_alone_and_names_bad_configs():
    cfg = cnn("input").get_config()
    before = cf.utils.rng().bit_generator.state
    cf.Sequential.from_config(cfg)
    assert cf.utils.rng().bit_generator.state == before
    cfg["layers"][1]["class_name"] = "Lambda"
    with pytest.raises(ValueError, match="layer 1: unknown layer class 'Lambda'"):
        cf.Sequential.from_config(cfg)
    with pytest.raises(ValueError, match="Model config is missing"):
        cf.Model.from_config({"name": "x"})


def test_graph_view_nodes_inputs_and_outputs():
    m = functional(True)
    nodes = m.nodes
    assert [n.layer for n in nodes] == m.layers
    assert all(isinstance(n, cf.models.Node) for n in nodes)
    by_name = {n.layer.name: n for n in nodes}
    assert by_name["image"].inbound_layers == ()
    assert by_name["head_b"].inbound_layers == (by_name["head_a"].inbound_layers[0],)
    assert m.input_layers == [m.get_layer("image")]
    assert [layer.name for layer in m.output_layers] == ["head_a", "dense",
                                                         m.layers[-1].name]
    s = cnn("deferred")                       # before it is built: the stack, no InputLayer
    assert [n.layer for n in s.nodes] == s.layers and s.nodes[0].inbound_layers == ()
    assert s.input_layers == [] and s.output_layers == []
    assert [n.inbound_layers for n in s.nodes[1:]] == [(a,) for a in s.layers[:-1]]
    s.predict(data()[0], verbose=0)
    assert isinstance(s.nodes[0].layer, layers.InputLayer) and s.nodes[1:] == [
        (b, (a,)) for a, b in zip([s.nodes[0].layer] + s.layers[:-1], s.layers)]
    assert s.input_layers == [s.nodes[0].layer] and s.output_layers == [s.layers[-1]]


def test_saving_is_deterministic_and_does_not_touch_the_global_rng(tmp_path):
    m = cnn("input")
    m.save(tmp_path / "a.cnnfast")
    m.save(tmp_path / "b.cnnfast")
    assert (tmp_path / "a.cnnfast").read_bytes() == (tmp_path / "b.cnnfast").read_bytes()
    before = cf.utils.rng().bit_generator.state
    cf.models.load_model(tmp_path / "a.cnnfast")
    assert cf.utils.rng().bit_generator.state == before


def test_file_layout_is_documented_format(tmp_path):
    m = cnn("input")
    m.save(tmp_path / "m.cnnfast")
    mem = members(tmp_path / "m.cnnfast")
    assert sorted(mem) == ["config.json", "metadata.json", "weights.bin", "weights.json"]
    meta = json.loads(mem["metadata.json"])
    assert meta == {"format": "cnnfast.model", "version": 1, "cnnfast_version": cf.__version__}
    index = json.loads(mem["weights.json"])
    first = index["layers"][0]["weights"][0]
    k = np.frombuffer(mem["weights.bin"], "<f4", count=int(np.prod(first["shape"])))
    np.testing.assert_array_equal(k.reshape(first["shape"]), m.layers[0].get_weights()[0])


# ---- compile config and optimizer state -----------------------------------------------------
def test_compile_config_is_restored_and_fit_continues(tmp_path):
    m = cnn("input")
    m.compile(optimizer=cf.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
              loss=cf.losses.CategoricalCrossentropy(from_logits=False),
              metrics=["acc", cf.metrics.CategoricalAccuracy()])
    x, y = data()
    yh = cf.utils.to_categorical(y, 3)
    m.fit(x, yh, epochs=1, verbose=0)
    m.save(tmp_path / "m.cnnfast")
    m2 = cf.models.load_model(tmp_path / "m.cnnfast")
    assert m2.compiled and type(m2.optimizer) is cf.optimizers.SGD
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert type(m2.loss) is cf.losses.CategoricalCrossentropy and not m2.loss.from_logits
    assert [(a.name, a.kind) for a in m2._metrics] == [("acc", "categorical"),
                                                      ("categorical_accuracy", "categorical")]
    assert m2.evaluate(x, yh, verbose=0) == m.evaluate(x, yh, verbose=0)
    h = m2.fit(x, yh, epochs=1, verbose=0)
    assert sorted(h.history) == ["acc", "categorical_accuracy", "loss"]
    assert m2.optimizer.iterations == 2 * m.optimizer.iterations

    m3 = cf.models.load_model(tmp_path / "m.cnnfast", compile=False)
    assert not m3.compiled and m3.optimizer is None


@pytest.mark.parametrize("opt", [
    lambda: cf.optimizers.Adam(learning_rate=0.01, amsgrad=True),
    lambda: cf.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    lambda: cf.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "frozen_conv",
], ids=["adam_amsgrad", "sgd_momentum", "rmsprop_centered", "frozen_conv_sgd"])
def test_resuming_after_load_equals_uninterrupted_training(tmp_path, opt):
    """Optimizer slots + iterations, seeded-Dropout streams and cnnfast's global stream
    (shuffling) all continue exactly where they stopped."""
    x, y = data(n=40)
    frozen = opt == "frozen_conv"
    if frozen:
        opt = lambda: cf.optimizers.SGD(learning_rate=0.1, momentum=0.9)  # noqa: E731

    def fresh():
        cf.utils.set_random_seed(7)
        m = cnn("input", dropout_seed=3)
        m.layers[0].trainable = not frozen
        m.compile(optimizer=opt(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    a = fresh()
    a.fit(x, y, epochs=3, batch_size=16, verbose=0)        # shuffled, with seeded dropout
    b = fresh()
    b.fit(x, y, epochs=1, batch_size=16, verbose=0)
    b.save(tmp_path / "ckpt.cnnfast")
    del b
    b = cf.models.load_model(tmp_path / "ckpt.cnnfast")
    assert b.layers[0].trainable is not frozen
    b.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert b.optimizer.iterations == a.optimizer.iterations == 9
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


# ---- weights files --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["m.weights.cnnfast", "m.weights.h5"])
def test_save_weights_load_into_fresh_model_of_same_architecture(tmp_path, name):
    m = cnn("input")
    x, _ = data()
    path = tmp_path / name
    m.save_weights(path)
    if name.endswith(".h5"):                      # Keras 3's weights file (HDF5)
        assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    else:
        assert json.loads(members(path)["metadata.json"])["format"] == "cnnfast.weights"
    fresh = cnn("input_shape")                    # other layer names, other initial weights
    assert fresh.layers[0].name != m.layers[0].name
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), m.predict(x, verbose=0))
    # the weights of a full model file load too
    m.save(tmp_path / "full.cnnfast")
    other = cnn("input")
    saving.load_weights(other, tmp_path / "full.cnnfast")
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))


def test_load_weights_into_a_different_architecture_is_a_clear_error(tmp_path):
    cnn("input").save_weights(tmp_path / "w.cnnfast")
    other = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(5, 3, padding="same"),
                           layers.Flatten(), layers.Dense(3)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"w\.cnnfast.*different architecture"):
        other.load_weights(tmp_path / "w.cnnfast")
    wider = cnn("input")
    wider.pop(), wider.pop()
    wider.add(layers.Dense(4))
    with pytest.raises(ValueError, match=r"has weight shapes .* different architecture"):
        wider.load_weights(tmp_path / "w.cnnfast")
    for a, b in zip(before, other.get_weights()):      # nothing was changed
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not been built"):
        cnn("deferred").load_weights(tmp_path / "w.cnnfast")
    with pytest.raises(ValueError, match="weights-only file.*load_weights"):
        cf.models.load_model(tmp_path / "w.cnnfast")


# ---- corrupt and foreign files --------------------------------------------------------------
def _saved(tmp_path):
    path = tmp_path / "model.cnnfast"
    cnn("input").save(path)
    return path


def _edit_json(name, fn):
    def edit(mem):
        obj = json.loads(mem[name])
        fn(obj)
        mem[name] = json.dumps(obj).encode()
    return edit


def _truncate(path):
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 2])


def _flip_weight_byte(path):
    b = bytearray(path.read_bytes())
    i = b.index(b"weights.bin") + 200           # inside weights.bin's stored data
    b[i] ^= 0x40
    path.write_bytes(bytes(b))


def _rezip(edit):
    def go(path):
        mem = members(path)
        edit(mem)
        write_zip(path, mem)
    return go


def _nan_weights(mem):
    """Valid archive and index (recomputed SHA-256), but a NaN in the weights."""
    import hashlib
    blob = bytearray(mem["weights.bin"])
    blob[4:8] = np.float32(np.nan).tobytes()
    mem["weights.bin"] = bytes(blob)
    idx = json.loads(mem["weights.json"])
    idx["sha256"] = hashlib.sha256(blob).hexdigest()
    mem["weights.json"] = json.dumps(idx).encode()


def _short_weights(mem):
    import hashlib
    blob = mem["weights.bin"][:-8]
    mem["weights.bin"] = blob
    idx = json.loads(mem["weights.json"])
    idx["sha256"], idx["nbytes"] = hashlib.sha256(blob).hexdigest(), len(blob)
    mem["weights.json"] = json.dumps(idx).encode()


def _keras_file(path):
    write_zip(path, {"metadata.json": json.dumps({"keras_version": "3.15.1"}).encode(),
                     "config.json": b"{}", "model.weights.h5": b"\x89HDF\r\n\x1a\n"})


def _set_units(cfg):
    cfg["config"]["layers"][-2]["config"]["units"] = 4


CORRUPTIONS = {
    "truncated_zip": (_truncate, "not a ZIP archive, or a truncated one"),
    "empty_file": (lambda p: p.write_bytes(b""), "not a ZIP archive"),
    "flipped_weight_bytes": (_flip_weight_byte, "weights.bin.*(corrupt|SHA-256)"),
    "missing_member": (_rezip(lambda m: m.pop("weights.json")), r"missing member.*weights\.json"),
    "extra_member": (_rezip(lambda m: m.update({"notes.txt": b"hi"})), "unexpected member"),
    "wrong_version": (_rezip(_edit_json("metadata.json", lambda o: o.update(version=2))),
                      "newer cnnfast.*version 2"),
    "bad_version": (_rezip(_edit_json("metadata.json", lambda o: o.update(version="1"))),
                    "invalid format version"),
    "wrong_format": (_rezip(_edit_json("metadata.json", lambda o: o.update(format="zzz"))),
                     "unknown format 'zzz'"),
    "no_metadata": (_rezip(lambda m: m.pop("metadata.json")), "no metadata.json"),
    # Keras files are read as such (tests/test_keras_files.py); broken ones are named
    "keras_file": (_keras_file, r"not a Keras model config"),
    "keras_h5": (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100),
                 "not a readable HDF5 file"),
    "not_a_zip": (lambda p: p.write_text("hello, I am a text file\n"), "not a ZIP archive"),
    "pickle_file": (lambda p: p.write_bytes(pickle.dumps({"weights": [1, 2]})),
                    "Python pickle.*never unpickles"),
    "pickle_member": (_rezip(lambda m: m.update({"model.pkl": pickle.dumps([1])})),
                      r"model\.pkl.*pickle"),
    "npz_file": (lambda p: np.savez(open(p, "wb"), a=np.zeros(3)), "pickled / NumPy"),
    "unknown_layer_class": (_rezip(_edit_json("config.json", lambda c: c["config"]["layers"][
        1].update(class_name="Lambda"))), "unknown layer class 'Lambda'"),
    "bad_layer_arg": (_rezip(_edit_json("config.json", lambda c: c["config"]["layers"][1][
        "config"].update(code="import os"))), "invalid config.*unrecognized keyword"),
    "shape_mismatch": (_rezip(_edit_json("config.json", _set_units)),
                       "has weight shapes .* but the file has"),
    "non_finite_weights": (_rezip(_nan_weights), "NaN or infinite"),
    "truncated_weights": (_rezip(_short_weights), "truncated or corrupt"),
    "nan_in_json": (_rezip(lambda m: m.update({"config.json": m["config.json"].replace(
        b'"trainable": true', b'"trainable": NaN', 1)})), "not valid JSON.*NaN"),
    "duplicate_json_key": (_rezip(lambda m: m.update({"config.json": m["config.json"].replace(
        b'"trainable": true', b'"trainable": true, "trainable": false', 1)})),
        "duplicate key 'trainable'"),
    "bad_optimizer": (_rezip(_edit_json("config.json", lambda c: c.update(compile_config={
        "optimizer": {"class_name": "os.system", "config": {}}, "loss": None,
        "metrics": []}))), "unknown optimizer class"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_or_foreign_file_is_a_clear_value_error(tmp_path, case, no_pickle):
    path = _saved(tmp_path)
    corrupt, pattern = CORRUPTIONS[case]
    corrupt(path)
    with pytest.raises(ValueError, match=pattern) as e:
        cf.models.load_model(path)
    assert str(path) in str(e.value)
    # problems outside config.json also stop load_weights
    if case not in ("unknown_layer_class", "bad_layer_arg", "bad_optimizer", "shape_mismatch",
                    "nan_in_json", "duplicate_json_key"):
        with pytest.raises(ValueError, match=str(path).replace(".", r"\.")):
            cnn("input").load_weights(path)


def test_loader_source_uses_no_pickle_or_eval():
    files = sorted(Path(saving.__file__).parent.glob("*.py")) + [
        Path(cf.interop.__file__), Path(cf.models.keras_export.__file__)]
    src = "".join(f.read_text() for f in files)
    for bad in ("import pickle", "pickle.", "eval(", "exec(", "allow_pickle=True",
                "importlib", "__import__"):
        assert bad not in src


# ---- atomic writes --------------------------------------------------------------------------
def _fail_mid_write(monkeypatch):
    real = archive._write_arrays

    def half_then_fail(stream, arrays):
        real(stream, arrays[:1])
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(archive, "_write_arrays", half_then_fail)


def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path, monkeypatch):
    _fail_mid_write(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        cnn("input").save(tmp_path / "m.cnnfast")
    with pytest.raises(OSError, match="simulated"):
        cnn("input").save_weights(tmp_path / "w.weights.cnnfast")
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "m.cnnfast"
    m = cnn("input")
    m.save(path)
    before = path.read_bytes()
    _fail_mid_write(monkeypatch)
    m.layers[0].kernel[...] += 1.0
    with pytest.raises(OSError, match="simulated"):
        m.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.cnnfast"]
    cf.models.load_model(path)


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    path = tmp_path / "m.cnnfast"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        cnn("input").save(path, overwrite=False)
    assert path.read_bytes() == b"keep me" and os.listdir(tmp_path) == ["m.cnnfast"]
    cnn("input").save(tmp_path / "new.cnnfast", overwrite=False)
    cf.models.load_model(tmp_path / "new.cnnfast")


def test_unsaveable_models_fail_at_save_time(tmp_path):
    m = cf.Sequential([layers.Input((4,)), layers.Dense(2, kernel_initializer=lambda s: np.ones(
        s, np.float32))])
    with pytest.raises(ValueError, match="unsupported initializer"):
        m.save(tmp_path / "m.cnnfast")
    assert os.listdir(tmp_path) == []


# ---- interop --------------------------------------------------------------------------------
def test_interop_without_tensorflow_raises_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)     # makes `import tensorflow` fail
    with pytest.raises(ImportError, match=r"needs TensorFlow.*pip install tensorflow"):
        cf.from_keras(object())
    with pytest.raises(ImportError, match=r"needs TensorFlow.*pip install tensorflow"):
        cnn("input").to_keras()


def _keras_tutorial_cnn(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, (3, 3), padding="same", activation="relu"), L.MaxPooling2D((2, 2)),
        L.Flatten(), L.Dropout(0.5), L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax")])


def _keras_mlp(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28)), L.Flatten(), L.Dense(64), L.ReLU(), L.Dropout(0.2),
        L.Dense(10), L.Softmax()])


def _keras_functional(keras):
    L = keras.layers
    inp = keras.Input((12, 12, 1), name="img")
    h = L.Conv2D(6, 3, strides=2, padding="same", use_bias=False)(inp)
    h = L.Activation("tanh")(h)
    h = L.AveragePooling2D(pool_size=2, strides=1, padding="same")(h)
    f = L.Flatten()(h)
    a = L.Dense(5, activation="softmax", name="cls")(f)
    b = L.Dense(2, activation="sigmoid", name="aux")(L.Dense(7, activation="relu")(f))
    return keras.Model(inp, [a, b], name="two_heads")


def _same_structure(cm, km):
    kls = [layer for layer in km.layers if type(layer).__name__ != "InputLayer"]
    cls = [layer for layer in cm.layers if type(layer).__name__ != "InputLayer"]
    assert sorted((layer.name, tuple(layer.output.shape), layer.count_params())
                  for layer in cls) == \
        sorted((layer.name, tuple(layer.output.shape), layer.count_params()) for layer in kls)
    assert cm.count_params() == km.count_params()


def _pred_close(a, b):
    a, b = (a, b) if isinstance(a, list) else ([a], [b])
    assert len(a) == len(b)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, np.asarray(q), atol=1e-5, rtol=0)


@pytest.mark.tf
@pytest.mark.parametrize("build, shape", [(_keras_tutorial_cnn, (28, 28, 1)),
                                          (_keras_mlp, (28, 28)),
                                          (_keras_functional, (12, 12, 1))],
                         ids=["tutorial_cnn", "mlp", "functional_two_outputs"])
def test_from_keras_matches_keras(tf_keras, tmp_path, build, shape):
    _, keras = tf_keras
    km = build(keras)
    cm = cf.from_keras(km)
    assert type(cm) is (cf.Sequential if isinstance(km, keras.Sequential) else cf.Model)
    _same_structure(cm, km)
    x = np.random.default_rng(0).random((9,) + shape, dtype=np.float32)
    want = km.predict(x, verbose=0)
    _pred_close(cm.predict(x, verbose=0), want)
    # the converted model saves and reloads bit-identically
    cm.save(tmp_path / "c.cnnfast")
    got = cf.models.load_model(tmp_path / "c.cnnfast").predict(x, verbose=0)
    for p, q in zip(got if isinstance(got, list) else [got],
                    (lambda r: r if isinstance(r, list) else [r])(cm.predict(x, verbose=0))):
        np.testing.assert_array_equal(p, q)
    # and back to Keras
    k2 = cm.to_keras()
    _same_structure(cm, k2)
    _pred_close(k2.predict(x, verbose=0), want)


@pytest.mark.tf
def test_to_keras_round_trip_and_set_weights(tf_keras):
    _, keras = tf_keras
    m = cnn("input", dropout_seed=1)
    x, _ = data()
    km = m.to_keras()
    assert isinstance(km, keras.Sequential)
    _same_structure(m, km)
    _pred_close(km.predict(x, verbose=0), m.predict(x, verbose=0))
    back = cf.from_keras(km)
    assert back.get_config() == m.get_config()
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    # weights move between the engines in Keras order
    km2 = _keras_tutorial_cnn(keras)
    c2 = cf.Sequential([layers.Input((28, 28, 1)),
                        layers.Conv2D(32, 3, padding="same", activation="relu"),
                        layers.MaxPooling2D(), layers.Conv2D(64, 3, padding="same",
                                                             activation="relu"),
                        layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.5),
                        layers.Dense(128, activation="relu"),
                        layers.Dense(10, activation="softmax")])
    c2.set_weights(km2.get_weights())
    xx = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    _pred_close(c2.predict(xx, verbose=0), km2.predict(xx, verbose=0))
    f = functional(True)
    kf = f.to_keras()
    _pred_close(kf.predict(x, verbose=0), f.predict(x, verbose=0))


@pytest.mark.tf
def test_from_keras_rejects_unsupported_layers_and_arguments(tf_keras):
    _, keras = tf_keras
    L = keras.layers

    def seq(*ls, shape=(16, 16, 1)):
        return keras.Sequential([keras.Input(shape)] + list(ls))
    cases = [
        (seq(L.LayerNormalization(name="ln")),
         r"'ln' \(LayerNormalization\).*LayerNormalization is not supported"),
        (seq(L.Conv2D(4, 3, groups=2, name="grp"), shape=(16, 16, 2)), r"'grp'.*groups"),
        (seq(L.Flatten(), L.Dense(2, kernel_regularizer=keras.regularizers.OrthogonalRegularizer(),
                                  name="reg")),
         r"'reg'.*kernel_regularizer='OrthogonalRegularizer' is not supported"),
        (seq(L.Conv2D(2, 3, bias_constraint="non_neg", name="bc")), r"'bc'.*bias_constraint"),
        (seq(L.PReLU(alpha_regularizer="l2", name="pr")), r"'pr'.*alpha_regularizer"),
        (seq(L.Flatten(), L.Dense(2, activation="mish", name="g")), r"'g'.*mish"),
        (seq(L.Dropout(0.5, noise_shape=(None, 1, 1, 1), name="nd")), r"'nd'.*noise_shape"),
    ]
    shared = L.Dense(3, name="shared")
    i = keras.Input((4,))
    cases.append((keras.Model(i, shared(shared(L.Dense(3)(i)))), r"'shared'.*shared layers"))
    for km, pattern in cases:
        with pytest.raises(NotImplementedError, match=pattern):
            cf.from_keras(km)


def test_bytes_io_is_not_a_path():
    with pytest.raises(TypeError):
        cf.models.load_model(io.BytesIO(b""))
