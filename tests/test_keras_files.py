"""Real Keras files both ways (cnnfast/saving/keras_files.py, keras_layers.py).

cnnfast -> .keras / .h5 / .weights.h5 -> tf.keras (the oracle): same predictions (1e-6), and
training continues from the saved optimizer state exactly as it would have in cnnfast.
tf.keras -> file -> cnnfast in a subprocess where TensorFlow and Keras cannot be imported:
same predictions as TF (1e-5), and the optimizer state restored (training continues as in TF).
Files written by older cnnfast (tests/data/main_format_*, written by main's code before the
formats split, cnnfast's format under a Keras name) still load.
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

if "tensorflow" not in sys.modules:          # before TensorFlow is first imported (tf tests)
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import cnnfast as cf  # noqa: E402
from cnnfast import layers, zoo  # noqa: E402
from cnnfast.layers.base import reset_names  # noqa: E402

h5py = pytest.importorskip("h5py")
DATA = Path(__file__).parent / "data"
PKG_PARENT = str(Path(cf.__file__).resolve().parent.parent)
OPTIMIZERS = ["adam", "adam_amsgrad", "adamw", "sgd", "sgd_momentum", "rmsprop",
              "rmsprop_centered_momentum", "nadam", "adamax", "adagrad", "adadelta"]


@pytest.fixture(autouse=True)
def _fresh():
    reset_names()
    cf.utils.set_random_seed(1234)


def data(n=16, hw=12, c=3, classes=5, seed=0):
    r = np.random.default_rng(seed)
    return r.random((n, hw, hw, c), dtype=np.float32), r.integers(0, classes, n)


# ---- the models, built the same way in cnnfast and in Keras ----------------------------------
def all_layers_seq(L, Input, Seq):
    """Every cnnfast layer type in one Sequential (12x12x3 -> 5 classes)."""
    return Seq([Input((12, 12, 3), name="image"), L.Rescaling(0.5, offset=0.1), L.RandomFlip(),
                L.RandomRotation(0.1), L.RandomZoom(0.2), L.ZeroPadding2D(((1, 0), (0, 2))),
                L.Conv2D(4, 3, activation="relu", name="c1"), L.BatchNormalization(),
                L.MaxPooling2D(), L.AveragePooling2D(1, padding="same"),
                L.Activation("tanh"), L.ReLU(), L.Reshape((3, 10, 4)),
                L.Conv2D(3, (2, 2), strides=(1, 2), padding="same", use_bias=False),
                L.GlobalAveragePooling2D(), L.Dropout(0.3), L.Dense(5), L.Softmax()],
               name="all_layers")


def functional_multi(L, Input, Model):
    inp = Input((12, 12, 3), name="img")
    h = L.Conv2D(3, 3, padding="same", activation="sigmoid")(inp)
    h = L.BatchNormalization(center=False, momentum=0.9)(h)
    a = L.Dense(5, activation="softmax", name="head_a")(L.Flatten()(L.MaxPooling2D(3)(h)))
    b = L.Dense(2, name="head_b")(L.GlobalMaxPooling2D()(h))
    return Model(inputs=inp, outputs=[a, b], name="two_heads")


def trainable_cnn(L, Input, Seq):
    """Deterministic in training (no dropout/augmentation), so training can be compared. No
    bias right before BatchNormalization: its gradient is rounding noise there (BN removes
    it), which Adam-like updates blow up to lr-sized steps of either sign."""
    return Seq([Input((12, 12, 3)), L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(),
                L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
                L.Dense(5, activation="softmax")], name="train_me")


def cf_builders():
    return (layers, layers.Input, cf.Sequential, cf.Model)


def k_builders(keras):
    return (keras.layers, keras.Input, keras.Sequential, keras.Model)


def make_optimizer(mod, name):
    o = mod.optimizers
    return {"adam": lambda: o.Adam(0.01), "adam_amsgrad": lambda: o.Adam(0.01, amsgrad=True),
            "adamw": lambda: o.AdamW(0.01), "sgd": lambda: o.SGD(0.05),
            "sgd_momentum": lambda: o.SGD(0.05, momentum=0.9, nesterov=True),
            "rmsprop": lambda: o.RMSprop(0.01),
            "rmsprop_centered_momentum": lambda: o.RMSprop(0.01, momentum=0.5, centered=True),
            "nadam": lambda: o.Nadam(0.01), "adamax": lambda: o.Adamax(0.01),
            "adagrad": lambda: o.Adagrad(0.05), "adadelta": lambda: o.Adadelta(1.0)}[name]()


def build(which, L, Input, Seq, Model):
    if which == "functional_multi":
        return functional_multi(L, Input, Model)
    return {"all_layers_seq": all_layers_seq, "trainable_cnn": trainable_cnn}[which](
        L, Input, Seq)


def outputs(p):
    return p if isinstance(p, list) else [p]


def assert_preds(got, want, atol):
    got, want = outputs(got), outputs(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)


def perturb_bn(model):
    """Non-trivial moving statistics and gammas, so the file's BN state matters."""
    r = np.random.default_rng(3)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([(r.random(w.shape) + 0.5).astype(np.float32)
                               for w in layer.get_weights()])


# =============================================================================================
# cnnfast -> Keras files -> tf.keras
# =============================================================================================
@pytest.mark.tf
@pytest.mark.parametrize("which", ["all_layers_seq", "functional_multi"])
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_cnnfast_model_file_loads_in_tf_keras_with_identical_predictions(tf_keras, tmp_path,
                                                                         which, ext):
    _, keras = tf_keras
    m = build(which, *cf_builders())
    perturb_bn(m)
    x, _ = data()
    want = m.predict(x, verbose=0)
    path = tmp_path / f"m{ext}"
    m.save(path)
    km = keras.models.load_model(path)
    assert km.name == m.name and len(km.get_weights()) == len(m.get_weights())
    assert_preds(km.predict(x, verbose=0), want, atol=1e-6)
    for a, b in zip(km.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    # cnnfast reads its own Keras file back bit for bit
    m2 = cf.models.load_model(path)
    assert m2.get_config() == m.get_config()
    assert_preds(m2.predict(x, verbose=0), want, atol=0)


@pytest.mark.tf
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_tf_keras_keeps_training_a_saved_cnnfast_model(tf_keras, tmp_path, opt):
    """The optimizer state is where Keras keeps it: one more epoch in TF from the .keras file
    gives the weights one more epoch in cnnfast gives. (Keras 3.15 cannot keep training from
    any legacy .h5, its own included: its loader leaves the optimizer unbuilt, and fit raises
    'Unknown variable'; the .h5 optimizer_weights layout is compared in
    test_written_files_have_keras_own_layout, and cnnfast reads Keras's below.)"""
    _, keras = tf_keras
    x, y = data()
    m = trainable_cnn(*cf_builders()[:3])
    m.compile(optimizer=make_optimizer(cf, opt), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    m.save(tmp_path / "m.keras")
    m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    km = keras.models.load_model(tmp_path / "m.keras")
    assert int(km.optimizer.iterations) == 4
    km.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(km.get_weights(), m.get_weights()):
        # measured <= 5.1e-7 (RMSprop); a fresh optimizer state differs by 2.5e-3 (Adadelta)
        # to 1.2e-1 (SGD with momentum); plain SGD keeps no state beyond the step count
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6)


@pytest.mark.tf
@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_and_tutorial_models_both_ways(tf_keras, tmp_path, name):
    """The CLI's models (cnnfast/zoo.py) go to tf.keras through .keras, and the Keras
    tutorial CNN comes back (reading needs no TensorFlow: the subprocess test below)."""
    _, keras = tf_keras
    m = zoo.build(name)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    xm = x.reshape((8,) + tuple(m.inputs[0].shape[1:]))       # the mlp takes (28, 28)
    m.save(tmp_path / "m.keras")
    km = keras.models.load_model(tmp_path / "m.keras")
    assert_preds(km.predict(xm, verbose=0), m.predict(xm, verbose=0), atol=1e-6)
    L = keras.layers
    tut = keras.Sequential([keras.Input((28, 28, 1)),
                            L.Conv2D(32, 3, padding="same", activation="relu"),
                            L.MaxPooling2D(), L.Conv2D(64, 3, padding="same", activation="relu"),
                            L.MaxPooling2D(), L.Flatten(), L.Dropout(0.5),
                            L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")])
    tut.save(tmp_path / "t.keras")
    assert_preds(cf.models.load_model(tmp_path / "t.keras").predict(x, verbose=0),
                 tut.predict(x, verbose=0), atol=1e-5)


@pytest.mark.tf
def test_save_weights_h5_loads_in_tf_keras_and_back(tf_keras, tmp_path):
    _, keras = tf_keras
    m = build("functional_multi", *cf_builders())
    perturb_bn(m)
    x, _ = data()
    m.save_weights(tmp_path / "w.weights.h5")
    km = build("functional_multi", *k_builders(keras))
    km.load_weights(tmp_path / "w.weights.h5")
    assert_preds(km.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    km.save_weights(tmp_path / "k.weights.h5")
    reset_names()
    fresh = build("functional_multi", *cf_builders())
    fresh.load_weights(tmp_path / "k.weights.h5")
    assert_preds(fresh.predict(x, verbose=0), m.predict(x, verbose=0), atol=0)


def _normalized(obj):
    """A Keras config without what differs between two saves of one model (object ids,
    build_config, which Keras also reads from the graph), and without what cnnfast leaves out
    on purpose: Keras >= 3.12's initializer input_axes/output_axes (None by default, and
    unknown to older Keras 3 readers) and a BatchNormalization call's mask=None."""
    if isinstance(obj, dict):
        return {k: _normalized(v) for k, v in obj.items()
                if k not in ("shared_object_id", "build_config") and not (
                    k in ("input_axes", "output_axes", "mask") and v is None)}
    if isinstance(obj, list):
        return [_normalized(v) for v in obj]
    return obj


def _h5_layout(path_or_bytes):
    import io
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    out = {}
    with h5py.File(src, "r") as f:
        def visit(name, obj):
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()
                     if k not in ("model_config", "training_config")}
            out[name] = (getattr(obj, "shape", None), str(getattr(obj, "dtype", "")), attrs)
        f.visititems(visit)
        out["/"] = sorted(f.attrs)
    return out


@pytest.mark.tf
@pytest.mark.parametrize("which", ["all_layers_seq", "functional_multi"])
def test_written_files_have_keras_own_layout(tf_keras, tmp_path, which):
    """config.json, the weights store and the legacy .h5 written by cnnfast match what Keras
    writes for the same model (to_keras twin), entry for entry."""
    _, keras = tf_keras
    m = build(which, *cf_builders())
    m.compile(optimizer="adam", loss="mse")
    x = data()[0]
    m.predict(x, verbose=0)
    km = m.to_keras()
    # the in-memory conversions use the same layer table: every layer type round-trips
    back = cf.from_keras(km)
    assert back.get_config() == m.get_config()
    assert_preds(back.predict(x, verbose=0), m.predict(x, verbose=0), atol=0)
    km.compile(optimizer=keras.optimizers.Adam(name="adam"), loss=keras.losses.MeanSquaredError())
    km.optimizer.build(km.trainable_variables)
    m.optimizer.build([w for layer in m.layers for w in layer.trainable_weights])
    m.save(tmp_path / "c.keras")
    km.save(tmp_path / "k.keras")
    with zipfile.ZipFile(tmp_path / "c.keras") as c, zipfile.ZipFile(tmp_path / "k.keras") as k:
        assert sorted(c.namelist()) == sorted(k.namelist())
        cc, kc = json.loads(c.read("config.json")), json.loads(k.read("config.json"))
        ccc, kcc = cc.pop("compile_config"), kc.pop("compile_config")
        assert _normalized(cc) == _normalized(kc)
        assert sorted(ccc) == sorted(kcc) and ccc["loss"] == kcc["loss"]
        for key in ("class_name", "module"):
            assert ccc["optimizer"][key] == kcc["optimizer"][key]
        assert sorted(ccc["optimizer"]["config"]) == sorted(kcc["optimizer"]["config"])
        assert _h5_layout(c.read("model.weights.h5")) == _h5_layout(k.read("model.weights.h5"))
        assert set(json.loads(c.read("metadata.json"))) >= {"keras_version", "date_saved"}
    m.save(tmp_path / "c.h5")
    km.save(tmp_path / "k.h5")
    cl, kl = _h5_layout(tmp_path / "c.h5"), _h5_layout(tmp_path / "k.h5")
    assert cl == kl
    with h5py.File(tmp_path / "c.h5") as f, h5py.File(tmp_path / "k.h5") as g:
        assert _normalized(json.loads(f.attrs["model_config"])) == \
            _normalized(json.loads(g.attrs["model_config"]))
        assert len(f["optimizer_weights"].attrs["weight_names"]) == \
            len(g["optimizer_weights"].attrs["weight_names"])


def test_uncompiled_model_writes_keras_empty_compile_config(tmp_path):
    """config.json's compile_config: {} for a model never compiled (what tf.keras 2.21 writes:
    test_more_layers_files_have_keras_own_layout), which loads uncompiled; a compiled model's
    loads compiled."""
    reset_names()
    m = cf.Sequential([layers.Input((4,)), layers.Dense(2)])
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    m.save(tmp_path / "u.keras")
    with zipfile.ZipFile(tmp_path / "u.keras") as z:
        config = json.loads(z.read("config.json"))
    assert config["compile_config"] == {} and list(config)[-1] == "compile_config"
    back = cf.saving.load_model(tmp_path / "u.keras")
    assert not back.compiled and back.optimizer is None
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    m.compile(optimizer="sgd", loss="mse")
    m.save(tmp_path / "c.keras")
    with zipfile.ZipFile(tmp_path / "c.keras") as z:
        cc = json.loads(z.read("config.json"))["compile_config"]
    assert cc["optimizer"]["class_name"] == "SGD" and cc["loss"]["class_name"] == \
        "MeanSquaredError"
    assert cf.saving.load_model(tmp_path / "c.keras").compiled


def test_keras_writer_refuses_what_keras_cannot_hold(tmp_path):
    m = cf.Sequential([layers.Input((4,)), layers.Dense(2)])
    inner = cf.Sequential([layers.Input((4,)), layers.Dense(3)])
    nested = cf.Sequential([layers.Input((4,)), inner, layers.Dense(2)])
    with pytest.raises(ValueError, match="cannot save layer"):
        nested.save(tmp_path / "n.keras")
    m.layers[0].kernel[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.save(tmp_path / "nan.keras")
    assert sorted(os.listdir(tmp_path)) == []


# ---- every other layer class, its arguments and regularizers, both ways ----------------------
def _relu_args(k):
    L = k.layers
    return k.Sequential([k.Input((6, 6, 2)), L.Rescaling(10.0, offset=-3.0),
                         L.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
                         L.ReLU(max_value=4.0), L.LeakyReLU(0.1), L.LeakyReLU(), L.ELU(0.5),
                         L.ELU()], name="relus")


def _prelu_softmax(k):
    L = k.layers
    return k.Sequential([k.Input((6, 6, 2)), L.Conv2D(3, 3), L.PReLU(shared_axes=[1, 2]),
                         L.PReLU(), L.Softmax(axis=1), L.Softmax(axis=-2), L.Flatten(),
                         L.Softmax()], name="prelu_softmax")


def _depthwise_separable(k):
    L = k.layers
    return k.Sequential([
        k.Input((12, 12, 3)), L.SpatialDropout2D(0.3),
        L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2, padding="same",
                          activation="relu"),
        L.DepthwiseConv2D((2, 3), strides=2, use_bias=False),
        L.SeparableConv2D(4, 3, depth_multiplier=2, activation="tanh", padding="same"),
        L.SeparableConv2D(3, 2, strides=2, dilation_rate=1, use_bias=False)], name="dw_sep")


def _dilated_regularized(k):
    L, R = k.layers, k.regularizers
    return k.Sequential([
        k.Input((12, 12, 3)),
        L.Conv2D(3, 3, dilation_rate=2, kernel_regularizer="l2",
                 bias_regularizer=R.L1L2(0.1, 0.2), activity_regularizer="l1"),
        L.Conv2D(2, 2, dilation_rate=(1, 3), padding="same", kernel_regularizer=R.L1(0.05)),
        L.Flatten(), L.Dense(4, kernel_regularizer=R.L1L2(l1=0.01), bias_regularizer="l1",
                             activity_regularizer=R.L2(0.003))], name="dil_reg")


def _augment_more(k):
    # RandomCrop at the input's size: Keras 3.15's predict passes a RandomCrop's input through
    # unchanged (whatever its size; docs/keras_semantics.md#augmentation-layers), cnnfast
    # applies the centred smart_resize there; at the same size both are the identity. The
    # arguments are compared by assert_same_arguments and the round trips.
    L = k.layers
    return k.Sequential([k.Input((12, 12, 3)), L.RandomTranslation(0.1, (-0.2, 0.3)),
                         L.RandomContrast(0.3), L.RandomContrast((0.1, 0.4), value_range=(0, 1)),
                         L.RandomCrop(12, 12, seed=5), L.RandomCrop(12, 12)],
                        name="augment_more")


MORE_LAYER_CASES = {"relu_args": _relu_args, "prelu_softmax": _prelu_softmax,
                    "depthwise_separable": _depthwise_separable,
                    "dilated_regularized": _dilated_regularized, "augment_more": _augment_more}


def perturb_weights(model, seed=5):
    """Random weights (PReLU's alphas start at zero, biases too)."""
    r = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(r.standard_normal(w.shape) * 0.5).astype(np.float32)
                               for w in ws])


def _regularizer_configs(layer):
    """{argument: (class, config)} of the regularizers in a (cnnfast or Keras) layer config."""
    out = {}
    for key, reg in layer.get_config().items():
        if key.endswith("_regularizer") and reg is not None:
            out[key] = (reg["class_name"], {k: float(np.float32(v))
                                            for k, v in reg["config"].items()})
    return out


def _plain(v):
    """Tuples as lists (as a config comes back from JSON)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def assert_same_arguments(kl, layer):
    """Every argument cnnfast and Keras both have (initializers, regularizers and the dtype
    aside, and the seed Keras draws for a RandomCrop without one) has the same value on both
    sides."""
    kc, cc = kl.get_config(), layer.get_config()
    for key in set(kc) & set(cc) - {"dtype"}:
        if key == "seed" and cc[key] is None and type(layer).__name__ == "RandomCrop":
            continue
        if not isinstance(kc[key], dict) and not isinstance(cc[key], dict):
            assert _plain(kc[key]) == _plain(cc[key]), (layer.name, key)
    assert _regularizer_configs(kl) == _regularizer_configs(layer), layer.name


def test_every_layer_class_has_a_keras_mapping_and_a_case_here():
    from cnnfast.saving import keras_layers, serialization
    classes = set(serialization.LAYER_CLASSES) - {"InputLayer"}
    assert set(keras_layers.LAYERS) == classes
    used = set()
    for m in [build(w, *cf_builders()) for w in ("all_layers_seq", "functional_multi")] + \
            [f(cf.keras) for f in MORE_LAYER_CASES.values()]:
        used |= {type(layer).__name__ for layer in m.layers}
    assert used - {"InputLayer"} == classes


@pytest.mark.tf
@pytest.mark.parametrize("case", sorted(MORE_LAYER_CASES))
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_more_layers_cnnfast_file_loads_in_tf_keras(tf_keras, tmp_path, case, ext):
    _, keras = tf_keras
    m = MORE_LAYER_CASES[case](cf.keras)
    perturb_weights(m)
    x = data(hw=m.inputs[0].shape[1], c=m.inputs[0].shape[3])[0]
    want = m.predict(x, verbose=0)
    path = tmp_path / f"m{ext}"
    m.save(path)
    km = keras.models.load_model(path)
    assert [type(kl).__name__ for kl in km.layers] == [type(layer).__name__
                                                        for layer in m.layers]
    assert_preds(km.predict(x, verbose=0), want, atol=1e-6)
    for a, b in zip(km.get_weights(), m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for kl, layer in zip(km.layers, m.layers):
        assert_same_arguments(kl, layer)
    m2 = cf.models.load_model(path)
    assert m2.get_config() == m.get_config()
    assert_preds(m2.predict(x, verbose=0), want, atol=0)


@pytest.mark.tf
def test_regularizers_give_the_same_loss_both_ways(tf_keras, tmp_path):
    """The mapped regularizers are the penalties Keras adds: evaluate's loss (data loss plus
    weight and activity penalties) agrees after a .keras file and after from_keras."""
    _, keras = tf_keras
    m = _dilated_regularized(cf.keras)
    perturb_weights(m)
    m.compile(optimizer="sgd", loss="mse")
    x = data()[0]
    y = np.random.default_rng(2).random((16, 4), dtype=np.float32)
    want = m.evaluate(x, y, batch_size=16, verbose=0)
    data_loss = float(np.mean((m.predict(x, verbose=0) - y) ** 2))
    assert want - data_loss > 0.05 * want          # the penalties matter (measured 8%)
    m.save(tmp_path / "r.keras")
    km = keras.models.load_model(tmp_path / "r.keras")
    got = km.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)     # measured: equal
    back = cf.from_keras(km)
    back.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(back.evaluate(x, y, batch_size=16, verbose=0), got, rtol=1e-6)


@pytest.mark.tf
@pytest.mark.parametrize("case", sorted(MORE_LAYER_CASES))
def test_more_layers_files_have_keras_own_layout(tf_keras, tmp_path, case):
    """config.json (build_config included), the weights store and the legacy .h5 match what
    Keras writes for the to_keras twin."""
    m = MORE_LAYER_CASES[case](cf.keras)
    perturb_weights(m)
    km = m.to_keras()
    m.save(tmp_path / "c.keras")
    km.save(tmp_path / "k.keras")
    with zipfile.ZipFile(tmp_path / "c.keras") as c, zipfile.ZipFile(tmp_path / "k.keras") as k:
        cc, kc = json.loads(c.read("config.json")), json.loads(k.read("config.json"))
        assert cc["compile_config"] == kc["compile_config"] == {}  # not compiled: Keras's {}
        for e in kc["config"]["layers"]:       # a seed Keras drew for a RandomCrop without one
            if e["class_name"] == "RandomCrop" and not m.get_layer(
                    e["config"]["name"]).get_config()["seed"]:
                e["config"]["seed"] = None
        assert _normalized(cc) == _normalized(kc)
        assert [e.get("build_config") for e in cc["config"]["layers"]] == \
            [e.get("build_config") for e in kc["config"]["layers"]]
        assert _h5_layout(c.read("model.weights.h5")) == _h5_layout(k.read("model.weights.h5"))
    m.save(tmp_path / "c.h5")
    km.save(tmp_path / "k.h5")
    assert _h5_layout(tmp_path / "c.h5") == _h5_layout(tmp_path / "k.h5")


@pytest.mark.tf
def test_more_layers_tf_keras_files_load_in_cnnfast_without_tensorflow(tf_keras, tmp_path):
    _, keras = tf_keras
    keras.utils.set_random_seed(0)
    jobs, want, x = [], {}, {}
    for case, f in MORE_LAYER_CASES.items():
        km = f(keras)
        perturb_weights(km)
        xc = data(hw=km.inputs[0].shape[1], c=km.inputs[0].shape[3])[0]
        for ext in (".keras", ".h5"):
            km.save(tmp_path / f"{case}{ext}")
            job = {"id": f"{case}{ext}", "path": str(tmp_path / f"{case}{ext}")}
            jobs.append(job)
            want[job["id"]] = outputs(km.predict(xc, verbose=0))
        x[case] = xc
    # one process for all: every case's input has 12x12x3 or 6x6x2 images; run each on its own
    assert {v.shape for v in x.values()} <= {(16, 12, 12, 3), (16, 6, 6, 2)}
    got = {}
    for shape in {v.shape for v in x.values()}:
        sub = [j for j in jobs if x[j["id"].rsplit(".", 1)[0]].shape == shape]
        (tmp_path / str(shape[1])).mkdir()
        got.update(run_without_tf(tmp_path / str(shape[1]), sub,
                                  next(v for v in x.values() if v.shape == shape),
                                  np.zeros(16, np.int64)))
    for key, preds in want.items():
        for i, w in enumerate(preds):
            np.testing.assert_allclose(got[f"{key}|pred{i}"], w, rtol=0, atol=1e-5,
                                       err_msg=key)


@pytest.mark.tf
@pytest.mark.parametrize("case", sorted(MORE_LAYER_CASES))
def test_more_layers_from_keras_and_to_keras_round_trip(tf_keras, case):
    _, keras = tf_keras
    km = MORE_LAYER_CASES[case](keras)
    perturb_weights(km)
    x = data(hw=km.inputs[0].shape[1], c=km.inputs[0].shape[3])[0]
    want = km.predict(x, verbose=0)
    m = cf.from_keras(km)
    assert_preds(m.predict(x, verbose=0), want, atol=1e-5)
    for kl, layer in zip(km.layers, m.layers):
        assert_same_arguments(kl, layer)
    km2 = m.to_keras()
    assert [_plain(kl.get_config()) for kl in km2.layers] == \
        [_plain(kl.get_config()) for kl in km.layers]
    for a, b in zip(km2.get_weights(), km.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_preds(km2.predict(x, verbose=0), want, atol=0)


# =============================================================================================
# tf.keras -> Keras files -> cnnfast, in a process without TensorFlow
# =============================================================================================
NO_TF = r"""
import importlib.abc, json, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is blocked: this process has no TensorFlow")
sys.meta_path.insert(0, _Block())
import numpy as np
import cnnfast as cf
jobs = json.load(open(sys.argv[1]))
d = np.load(sys.argv[2])
x, y = d["x"], d["y"]
out = {}
for j in jobs:
    key = j["id"]
    if j.get("weights_into"):
        m = cf.models.load_model(j["weights_into"], compile=False)
        m.load_weights(j["path"])
    else:
        m = cf.keras.models.load_model(j["path"])
    p = m.predict(x, verbose=0)
    for i, a in enumerate(p if isinstance(p, list) else [p]):
        out[f"{key}|pred{i}"] = a
    if j.get("train"):
        out[f"{key}|iterations"] = np.array(m.optimizer.iterations)
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            out[f"{key}|w{i}"] = w
bad = sorted(k for k in sys.modules if k.split(".")[0] in ("tensorflow", "keras"))
assert not bad, bad
np.savez(sys.argv[3], **out)
"""


def run_without_tf(tmp_path, jobs, x, y):
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", NO_TF, str(tmp_path / "jobs.json"),
                        str(tmp_path / "data.npz"), str(tmp_path / "out.npz")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as z:
        return {k: z[k] for k in z.files}


def tf_model(keras, which, opt=None):
    km = build(which, *k_builders(keras))
    if opt is not None:
        km.compile(optimizer=make_optimizer(keras, opt), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    return km


@pytest.mark.tf
def test_tf_keras_files_load_in_cnnfast_without_tensorflow(tf_keras, tmp_path):
    _, keras = tf_keras
    keras.utils.set_random_seed(0)
    x, y = data()
    jobs, want = [], {}
    for which in ("all_layers_seq", "functional_multi"):
        km = tf_model(keras, which)
        for layer in km.layers:                       # non-trivial moving statistics
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.set_weights([w + np.random.default_rng(1).random(w.shape) + 0.5
                                   for w in layer.get_weights()])
        for ext in (".keras", ".h5"):
            path = tmp_path / f"{which}{ext}"
            km.save(path)
            jobs.append({"id": f"{which}{ext}", "path": str(path)})
            want[f"{which}{ext}"] = (outputs(km.predict(x, verbose=0)), None)
        km.save_weights(tmp_path / f"{which}.weights.h5")
        # into the same architecture, written by cnnfast (from the .keras file above)
        jobs.append({"id": f"{which}.weights.h5", "path": str(tmp_path / f"{which}.weights.h5"),
                     "weights_into": str(tmp_path / f"{which}.keras")})
        want[f"{which}.weights.h5"] = want[f"{which}.keras"]
    for opt in OPTIMIZERS:
        km = tf_model(keras, "trainable_cnn", opt)
        km.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        ext = ".h5" if opt in ("adam", "rmsprop_centered_momentum", "nadam") else ".keras"
        path = tmp_path / f"train_{opt}{ext}"
        km.save(path)
        p = outputs(km.predict(x, verbose=0))
        km.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        jobs.append({"id": f"train_{opt}", "path": str(path), "train": True})
        want[f"train_{opt}"] = (p, km.get_weights())
    got = run_without_tf(tmp_path, jobs, x, y)
    for key, (preds, weights) in want.items():
        for i, w in enumerate(preds):
            np.testing.assert_allclose(got[f"{key}|pred{i}"], w, rtol=0, atol=1e-5,
                                       err_msg=key)
        if weights is not None:
            assert int(got[f"{key}|iterations"]) == 4, key
            for i, w in enumerate(weights):
                # measured <= 2.2e-7 in process; a fresh optimizer state: 2.5e-3 to 1.2e-1
                np.testing.assert_allclose(got[f"{key}|w{i}"], w, rtol=0, atol=5e-6,
                                           err_msg=f"{key} weight {i}")


@pytest.mark.tf
def test_unsupported_keras_layer_or_option_is_a_clear_error(tf_keras, tmp_path):
    _, keras = tf_keras
    L = keras.layers
    cases = [
        (keras.Sequential([keras.Input((4, 4, 2)), L.LayerNormalization(name="ln")]),
         NotImplementedError, r"layer 1 \(LayerNormalization 'ln'\).*LayerNormalization is not "
                              "supported"),
        (keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(2, 3, groups=2, name="g")]),
         NotImplementedError, r"'g'.*groups=2 is not supported"),
        (keras.Sequential([keras.Input((6, 6, 2)),
                           L.Conv2D(2, 3, kernel_constraint="non_neg", name="c")]),
         NotImplementedError, r"'c'.*kernel_constraint=.*is not supported"),
        (keras.Sequential([keras.Input((4,)), L.Dense(
            2, kernel_regularizer=keras.regularizers.OrthogonalRegularizer(), name="r")]),
         NotImplementedError, r"'r'.*kernel_regularizer='OrthogonalRegularizer' is not "
                              r"supported by cnnfast \(it runs the regularizers \['L1', 'L1L2', "
                              r"'L2'\]\)"),
        (keras.Sequential([keras.Input((6, 6, 2)),
                           L.DepthwiseConv2D(3, depthwise_regularizer="l2", name="dw")]),
         NotImplementedError, r"'dw'.*depthwise_regularizer=.*is not supported"),
        (keras.Sequential([keras.Input((6, 6, 2)), L.Softmax(axis=(1, 2), name="sm")]),
         NotImplementedError, r"'sm'.*axis=\[1, 2\].*several axes"),
    ]
    i = keras.Input((4,))
    cases.append((keras.Model(i, L.Add()([L.Dense(4)(i), i])), NotImplementedError,
                  r"Add.*not supported"))
    for n, (km, exc, pattern) in enumerate(cases):
        for ext in (".keras", ".h5"):
            km.save(tmp_path / f"{n}{ext}")
            with pytest.raises(exc, match=pattern):
                cf.models.load_model(tmp_path / f"{n}{ext}")
    km = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    km.compile(optimizer=keras.optimizers.Lion(), loss="mse")
    km.save(tmp_path / "lion.keras")
    with pytest.raises(NotImplementedError, match="optimizer 'Lion' is not supported"):
        cf.models.load_model(tmp_path / "lion.keras")
    assert cf.models.load_model(tmp_path / "lion.keras", compile=False).count_params() == 10


def test_broken_keras_files_are_clear_value_errors(tmp_path):
    m = cf.Sequential([layers.Input((4,)), layers.Dense(2)], name="tiny")
    m.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}

    def rezip(name, mem):
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            for n, d in mem.items():
                z.writestr(n, d)
        return tmp_path / name
    cases = {
        "no_weights.keras": ({k: v for k, v in members.items() if k != "model.weights.h5"},
                             "needs model.weights.h5"),
        "bad_h5.keras": ({**members, "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"0" * 64},
                         "not a valid HDF5 file"),
        "bad_json.keras": ({**members, "config.json": b"{nope"}, "config.json is not valid JSON"),
        "subclassed.keras": ({**members, "config.json": json.dumps(
            {"class_name": "MyModel", "config": {"layers": []}}).encode()},
            "model class 'MyModel' is not supported"),
    }
    for name, (mem, pattern) in cases.items():
        path = rezip(name, mem)
        exc = NotImplementedError if name.startswith("subclassed") else ValueError
        with pytest.raises(exc, match=pattern) as e:
            cf.models.load_model(path)
        assert name in str(e.value)
    other = cf.Sequential([layers.Input((4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"weight shapes \[\(4, 3\), \(3,\)\], the file has "
                                         r"\[\(4, 2\), \(2,\)\]"):
        other.load_weights(tmp_path / "ok.keras")
    # an archive whose end record is intact but whose central directory is not (is_zipfile
    # says yes, ZipFile raises BadZipFile): found by tests/test_fuzz_model.py's bit flips
    data = bytearray((tmp_path / "ok.keras").read_bytes())
    data[data.rfind(b"PK\x01\x02")] ^= 1
    (tmp_path / "bad_directory.keras").write_bytes(bytes(data))
    assert zipfile.is_zipfile(tmp_path / "bad_directory.keras")
    with pytest.raises(ValueError, match=r"bad_directory.keras: corrupt zip archive: Bad magic "
                                         "number for central directory"):
        cf.models.load_model(tmp_path / "bad_directory.keras")


# =============================================================================================
# cnnfast's own format, and files older cnnfast wrote
# =============================================================================================
def test_files_written_by_older_cnnfast_still_load():
    """tests/data/main_format_*: written by main's code (cnnfast's format under the names
    `.keras` and `.weights.h5`, which it used to accept) before the formats split."""
    exp = json.loads((DATA / "main_format_expected.json").read_text())
    x = np.asarray(exp["x"], np.float32)
    m = cf.models.load_model(DATA / "main_format_model.keras")
    np.testing.assert_array_equal(m.predict(x, verbose=0), np.asarray(exp["predict"],
                                                                      np.float32))
    assert m.optimizer.iterations == exp["iterations"]
    fresh = cf.models.load_model(DATA / "main_format_model.keras", compile=False)
    fresh.set_weights([np.zeros_like(w) for w in fresh.get_weights()])
    fresh.load_weights(DATA / "main_format.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), np.asarray(exp["predict"],
                                                                          np.float32))


def test_cnnfast_extension_writes_cnnfast_format_and_keras_names_write_keras(tmp_path):
    m = trainable_cnn(*cf_builders()[:3])
    m.save(tmp_path / "m.cnnfast")
    m.save(tmp_path / "m.keras")
    m.save(tmp_path / "m.h5")
    with zipfile.ZipFile(tmp_path / "m.cnnfast") as z:
        assert json.loads(z.read("metadata.json"))["format"] == "cnnfast.model"
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert json.loads(z.read("config.json"))["class_name"] == "Sequential"
    assert (tmp_path / "m.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    x = data()[0]
    for name in ("m.cnnfast", "m.keras", "m.h5"):
        np.testing.assert_array_equal(cf.models.load_model(tmp_path / name).predict(x, verbose=0),
                                      m.predict(x, verbose=0))


# ---- tf.keras 2.x legacy .h5 (tf.keras 2.x cannot be installed beside TF 2.21: this file is
# written by hand in its layout: batch_input_shape, dtype strings, BatchNormalization axis [3],
# nested inbound_nodes, 'Custom>Adam', MeanMetricWrapper, 'name:0' weight names) ------------
def _k2_layer(cls, name, **cfg):
    return {"class_name": cls, "config": {"name": name, "trainable": True, "dtype": "float32",
                                          **cfg}}


def _write_keras2_h5(path, model_config, weights, training_config=None, opt=None):
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = json.dumps(model_config)
        if training_config is not None:
            f.attrs["training_config"] = json.dumps(training_config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([n.encode() for n in weights], dtype="S")
        for lname, arrays in weights.items():
            lg = g.create_group(lname)
            names = [f"{lname}/{w}:0" for w in arrays]
            lg.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S") \
                if names else np.array([])
            for n, a in zip(names, arrays.values()):
                lg.create_dataset(n, data=a)
        if opt is not None:
            og = f.create_group("optimizer_weights")
            og.attrs["weight_names"] = np.array([n.encode() for n in opt], dtype="S")
            for n, a in opt.items():
                og.create_dataset(n, data=a)


def test_tf_keras_2_legacy_h5_layout_loads(tmp_path):
    r = np.random.default_rng(5)
    w = {"conv2d": {"kernel": r.standard_normal((3, 3, 1, 3)).astype(np.float32),
                    "bias": r.standard_normal(3).astype(np.float32)},
         "batch_normalization": {k: (r.random(3) + 0.5).astype(np.float32) for k in
                                 ("gamma", "beta", "moving_mean", "moving_variance")},
         "flatten": {},
         "dense": {"kernel": r.standard_normal((192, 2)).astype(np.float32),
                   "bias": r.standard_normal(2).astype(np.float32)}}
    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    conv = _k2_layer("Conv2D", "conv2d", batch_input_shape=[None, 8, 8, 1], filters=3,
                     kernel_size=[3, 3], strides=[1, 1], padding="same",
                     data_format="channels_last", dilation_rate=[1, 1], groups=1,
                     activation="relu", use_bias=True, kernel_initializer=init,
                     bias_initializer={"class_name": "Zeros", "config": {}},
                     kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                     kernel_constraint=None, bias_constraint=None)
    bn = _k2_layer("BatchNormalization", "batch_normalization", axis=[3], momentum=0.99,
                   epsilon=0.001, center=True, scale=True)
    rest = [_k2_layer("Flatten", "flatten", data_format="channels_last"),
            _k2_layer("Dense", "dense", units=2, activation="softmax", use_bias=True,
                      kernel_initializer=init)]
    seq_cfg = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 1],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "conv2d_input"}},
        conv, bn] + rest}}
    tc = {"loss": "sparse_categorical_crossentropy", "loss_weights": None,
          "weighted_metrics": None,
          "metrics": [[{"class_name": "MeanMetricWrapper", "config": {
              "name": "accuracy", "dtype": "float32", "fn": "sparse_categorical_accuracy"}}]],
          "optimizer_config": {"class_name": "Custom>Adam", "config": {
              "name": "Adam", "weight_decay": None, "clipnorm": None, "global_clipnorm": None,
              "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
              "ema_overwrite_frequency": None, "jit_compile": False,
              "is_legacy_optimizer": False, "learning_rate": 0.002, "beta_1": 0.9,
              "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}}
    opt = {"Adam/iter:0": np.array(7, np.int64)}
    _write_keras2_h5(tmp_path / "k2.h5", seq_cfg, w, tc, opt)
    with pytest.warns(UserWarning, match="tf.keras 2.x.*optimizer state.*not restored"):
        m = cf.models.load_model(tmp_path / "k2.h5")
    assert m.optimizer.learning_rate == 0.002 and m.optimizer.iterations == 0
    assert m._metrics[0].name == "accuracy" and m._metrics[0].kind == "sparse"
    ref = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(3, 3, padding="same",
                                                                activation="relu"),
                         layers.BatchNormalization(), layers.Flatten(),
                         layers.Dense(2, activation="softmax")])
    ref.set_weights([a for ws in w.values() for a in ws.values()])
    x = data(hw=8, c=1)[0]
    np.testing.assert_array_equal(m.predict(x, verbose=0), ref.predict(x, verbose=0))
    # functional: nested inbound_nodes, [[name, 0, 0]] inputs/outputs -> one tensor each
    fun_cfg = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [], "config": {
            "batch_input_shape": [None, 8, 8, 1], "dtype": "float32", "name": "input_1"}},
        {**conv, "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {**bn, "name": "batch_normalization",
         "inbound_nodes": [[["conv2d", 0, 0, {"training": False}]]]},
        {**rest[0], "name": "flatten", "inbound_nodes": [[["batch_normalization", 0, 0, {}]]]},
        {**rest[1], "name": "dense", "inbound_nodes": [[["flatten", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    _write_keras2_h5(tmp_path / "k2f.h5", fun_cfg, {"input_1": {}, **w})
    f = cf.models.load_model(tmp_path / "k2f.h5")
    assert type(f) is cf.Model
    np.testing.assert_array_equal(f.predict(x, verbose=0), ref.predict(x, verbose=0))
    # weights-only legacy layout (layer_names at the root), into a model built in code
    ref2 = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(3, 3, padding="same",
                                                                 activation="relu"),
                          layers.BatchNormalization(), layers.Flatten(),
                          layers.Dense(2, activation="softmax")])
    ref2.load_weights(tmp_path / "k2.h5")
    np.testing.assert_array_equal(ref2.predict(x, verbose=0), ref.predict(x, verbose=0))


def test_load_weights_restores_or_warns_about_the_optimizer_state(tmp_path):
    """Keras's load_weights also sets a compiled model's optimizer variables (and skips them
    with a warning when they do not fit); cnnfast does the same, changing nothing then."""
    x, y = data()

    def trained(opt):
        reset_names()
        m = trainable_cnn(*cf_builders()[:3])
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
        m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        return m
    a = trained(cf.optimizers.Adam(0.01))
    a.save_weights(tmp_path / "a.weights.h5")
    same = trained(cf.optimizers.Adam(0.01))
    same.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    same.load_weights(tmp_path / "a.weights.h5")
    assert same.optimizer.iterations == a.optimizer.iterations == 2
    for s, t in zip(same.optimizer._slots, a.optimizer._slots):
        for p, q in zip(s, t):
            assert (p is None and q is None) or np.array_equal(p, q)
    other = trained(cf.optimizers.SGD(0.05, momentum=0.9))
    before = [s[0].copy() for s in other.optimizer._slots]
    with pytest.warns(UserWarning, match="optimizer state not loaded.*holds 12 variables"):
        other.load_weights(tmp_path / "a.weights.h5")
    assert other.optimizer.iterations == 2
    for s, b in zip(other.optimizer._slots, before):
        np.testing.assert_array_equal(s[0], b)
    np.testing.assert_array_equal(other.predict(x, verbose=0), a.predict(x, verbose=0))


def _compile_with_auc_and_weighted(mod, model):
    m = mod.metrics
    model.compile(optimizer=mod.optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy", m.AUC(curve="PR", num_thresholds=50, name="pr")],
                  weighted_metrics=["accuracy", m.AUC(name="wauc", multi_label=True,
                                                      summation_method="minoring"),
                                    m.Precision(thresholds=0.3, name="prec")])


@pytest.mark.tf
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_auc_and_weighted_metrics_round_trip_with_tf_keras(tf_keras, tmp_path, ext):
    """compile_config's AUC (its curve, thresholds, label weights) and weighted_metrics:
    cnnfast -> file -> tf.keras and tf.keras -> file -> cnnfast give the same compiled
    metrics, named alike, with the same evaluate() values."""
    _, keras = tf_keras
    x, y = data(24)
    yy = np.eye(5, dtype=np.float32)[y]
    w = np.random.default_rng(2).random(24).astype(np.float32)
    m = trainable_cnn(*cf_builders()[:3])
    _compile_with_auc_and_weighted(cf, m)
    m.fit(x, yy, epochs=1, batch_size=8, verbose=0, sample_weight=w)
    want = m.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(want) == ["accuracy", "loss", "pr", "prec", "wauc", "weighted_accuracy"]
    m.save(tmp_path / f"cf{ext}")
    km = keras.models.load_model(tmp_path / f"cf{ext}")
    got = km.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(got) == sorted(want)
    for key in want:
        # the forward passes differ by ~1e-7: losses at 1e-5 relative, metrics at 1e-6
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    keras.backend.clear_session()
    km = build("trainable_cnn", *k_builders(keras))
    _compile_with_auc_and_weighted(keras, km)
    km.fit(x, yy, epochs=1, batch_size=8, verbose=0, sample_weight=w)
    want = km.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True)
    km.save(tmp_path / f"k{ext}")
    m2 = cf.models.load_model(tmp_path / f"k{ext}")
    assert [type(v).__name__ for v in m2._weighted_metrics] == ["Accuracy", "AUC", "Precision"]
    auc = m2._weighted_metrics[1]
    assert auc.multi_label and auc.summation_method == "minoring"
    assert m2._metrics[1].curve == "PR" and m2._metrics[1].num_thresholds == 50
    got = m2.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
