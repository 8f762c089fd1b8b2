"""The elementwise losses (csrc/losses.h, cnnfast/losses.py) against tf.keras (the oracle):
per-sample values and the gradient of the batch loss for each loss, then one fit epoch per
loss with copied weights (History loss and every final weight); plus the engine choice (the
Net declines these losses), names, errors and saving. docs/keras_semantics.md#losses."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor
from cnnfast.layers.base import reset_names


def _targets(name, rng, shape):
    if name in ("hinge", "squared_hinge"):
        return rng.choice([-1.0, 1.0], size=shape).astype(np.float32)
    if name in ("binary_crossentropy", "binary_crossentropy_ls", "binary_crossentropy_logits"):
        return (rng.random(shape) > 0.5).astype(np.float32)
    if name in ("kl_divergence", "categorical_hinge"):
        t = rng.random(shape).astype(np.float32)
        return (t / t.sum(-1, keepdims=True)).astype(np.float32) if name == "kl_divergence" \
            else np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[0])]
    return rng.standard_normal(shape).astype(np.float32)


def _preds(name, rng, shape):
    if name in ("binary_crossentropy", "binary_crossentropy_ls", "kl_divergence"):
        p = rng.random(shape).astype(np.float32)
        p[0, 0], p[-1, -1] = 0.0, 1.0  # the clipped ends, where the gradient is 0
        return p
    return (rng.standard_normal(shape) * 1.5).astype(np.float32)


# name -> (class name, kwargs); the same on both sides
LOSSES = {
    "mean_squared_error": ("MeanSquaredError", {}),
    "mean_absolute_error": ("MeanAbsoluteError", {}),
    "huber": ("Huber", {"delta": 0.7}),
    "binary_crossentropy": ("BinaryCrossentropy", {}),
    "binary_crossentropy_ls": ("BinaryCrossentropy", {"label_smoothing": 0.1}),
    "binary_crossentropy_logits": ("BinaryCrossentropy", {"from_logits": True}),
    "kl_divergence": ("KLDivergence", {}),
    "hinge": ("Hinge", {}),
    "squared_hinge": ("SquaredHinge", {}),
    "categorical_hinge": ("CategoricalHinge", {}),
}


@pytest.mark.tf
@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("shape", [(8, 5), (3, 1), (64, 10)], ids=str)
def test_loss_values_and_gradient_match_keras(tf_keras, name, shape):
    tf, keras = tf_keras
    rng = np.random.default_rng(tf_oracle.seed_of(name, shape))
    t, p = _targets(name, rng, shape), _preds(name, rng, shape)
    cls, kw = LOSSES[name]
    kl, cl = getattr(keras.losses, cls)(**kw), getattr(cf.losses, cls)(**kw)
    pt = tf.constant(p)
    with tf.GradientTape() as tape:
        tape.watch(pt)
        want = kl(tf.constant(t), pt)
    want_grad = tape.gradient(want, pt).numpy()
    per = np.empty(shape[0], np.float32)
    grad = np.empty(shape, np.float32)
    mean = cl.per_sample(t, p, cl.from_logits, per, grad, np.float32(1) / np.float32(shape[0]))
    tf_oracle.check(f"{name} loss", np.float32(mean), want.numpy())
    tf_oracle.check(f"{name} eager loss", cl(t, p), want.numpy())
    tf_oracle.check(f"{name} dpred", grad, want_grad)
    if not kw:  # the per-sample function, as keras.losses.<name>
        tf_oracle.check(f"{name} per sample", getattr(cf.losses, name)(t, p),
                        getattr(keras.losses, name)(t, p).numpy())


@pytest.mark.tf
def test_hinge_converts_binary_labels_per_batch(tf_keras):
    tf, keras = tf_keras
    rng = np.random.default_rng(3)
    p = rng.standard_normal((6, 3)).astype(np.float32)
    t01 = (rng.random((6, 3)) > 0.5).astype(np.float32)
    for cls in ("Hinge", "SquaredHinge"):
        tf_oracle.check(f"{cls} 0/1 labels", getattr(cf.losses, cls)()(t01, p),
                        getattr(keras.losses, cls)()(t01, p).numpy())


def _mlp(lib, units, activation):
    return [lib.layers.Input((6,)), lib.layers.Dense(8, activation="relu"),
            lib.layers.Dense(units, activation=activation)]


# name -> (loss on both sides, output units, output activation, targets)
FITS = {
    "mse": ("mse", 3, "linear", "regression"),
    "mae": ("mean_absolute_error", 3, "linear", "regression"),
    "huber": (lambda lib: lib.losses.Huber(delta=0.5), 3, "linear", "regression"),
    "bce_sigmoid": ("binary_crossentropy", 1, "sigmoid", "binary"),  # cached logits
    "bce_logits": (lambda lib: lib.losses.BinaryCrossentropy(from_logits=True), 1, "linear",
                   "binary"),
    "bce_multi_ls": (lambda lib: lib.losses.BinaryCrossentropy(label_smoothing=0.2), 4,
                     "sigmoid", "multilabel"),
    "kld": ("kl_divergence", 4, "softmax", "distribution"),
    "hinge": ("hinge", 1, "tanh", "binary"),  # 0/1 labels: converted to -1/+1
    "squared_hinge": (lambda lib: lib.losses.SquaredHinge(), 4, "tanh", "multilabel"),
    "categorical_hinge": ("categorical_hinge", 4, "linear", "onehot"),
}


def _fit_data(kind, units, n=96):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    w = rng.standard_normal((6, units)).astype(np.float32)
    s = x @ w
    if kind == "regression":
        return x, (s + 0.1 * rng.standard_normal(s.shape)).astype(np.float32)
    if kind == "binary":
        return x, (s[:, 0] > 0).astype(np.float32)  # (n,): Keras expands to (n, 1)
    if kind == "multilabel":
        return x, (s > 0).astype(np.float32)
    if kind == "distribution":
        e = np.exp(s - s.max(1, keepdims=True))
        return x, (e / e.sum(1, keepdims=True)).astype(np.float32)
    return x, np.eye(units, dtype=np.float32)[np.argmax(s, 1)]


@pytest.mark.tf
@pytest.mark.parametrize("name", list(FITS))
def test_fit_epoch_matches_keras(tf_keras, name):
    """One epoch of Adam on a small MLP, batches of 16, Keras's weights copied: the History
    loss, the per-epoch evaluate loss and every final weight."""
    tf, keras = tf_keras
    loss, units, act, kind = FITS[name]
    keras.utils.set_random_seed(0)
    reset_names()
    km, cm = keras.Sequential(_mlp(keras, units, act)), cf.Sequential(_mlp(cf, units, act))
    cm.set_weights(km.get_weights())
    w0 = km.get_weights()
    lk, lc = (loss(keras), loss(cf)) if callable(loss) else (loss, loss)
    km.compile(optimizer=keras.optimizers.Adam(0.01), loss=lk, jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(0.01), loss=lc)
    x, y = _fit_data(kind, units)
    assert executor.for_model(cm, 16, "train").__class__ is executor.LayerEngine
    hk = km.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    hc = cm.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    # float32 rounding drift over 12 Adam steps (the cross-entropy fits hold 1e-5, FREE_RUN)
    tf_oracle.check(f"{name} fit History loss", hc["loss"], hk["loss"], atol=1e-6, rtol=1e-5)
    tf_oracle.check(f"{name} evaluate", cm.evaluate(x, y, verbose=0),
                    km.evaluate(x, y, verbose=0), atol=1e-6, rtol=1e-5)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(km.get_weights(), w0))
    assert moved > 1e-2
    for i, (a, b) in enumerate(zip(cm.get_weights(), km.get_weights())):
        tf_oracle.check(f"{name} fit weight {i}", a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "binary_crossentropy", "kld",
                                  "hinge", "squared_hinge", "categorical_hinge"])
def test_native_engine_declines_elementwise_losses(loss):
    """The Net computes cross-entropy only: these losses run on the LayerEngine for training
    and evaluation (predict, which needs no loss, stays native)."""
    m = cf.Sequential(_mlp(cf, 4, "sigmoid"))
    m.compile(optimizer="adam", loss=loss)
    assert isinstance(executor.for_model(m, 8, "train"), executor.LayerEngine)
    assert isinstance(executor.for_model(m, 8, "evaluate"), executor.LayerEngine)
    assert isinstance(executor.for_model(m, 8, "predict"), executor.NativeEngine)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)


def test_loss_names_resolve_to_classes():
    L = cf.losses
    for names, cls in ((("mse", "MSE", "mean_squared_error"), L.MeanSquaredError),
                       (("mae", "mean_absolute_error"), L.MeanAbsoluteError),
                       (("huber", "huber_loss"), L.Huber),
                       (("binary_crossentropy",), L.BinaryCrossentropy),
                       (("kld", "kl_divergence"), L.KLDivergence),
                       (("hinge",), L.Hinge), (("squared_hinge",), L.SquaredHinge),
                       (("categorical_hinge",), L.CategoricalHinge)):
        for n in names:
            assert type(L.get(n)) is cls
    assert type(L.get(L.huber)) is L.Huber
    assert type(cf.keras.losses.get(cf.keras.losses.mse)) is L.MeanSquaredError
    with pytest.raises(NotImplementedError, match="poisson"):
        L.get("poisson")


def test_targets_must_match_the_output():
    m = cf.Sequential(_mlp(cf, 3, "linear"))
    m.compile(optimizer="adam", loss="mse")
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"targets of the output's shape \(4, 3\)"):
        m.fit(x, np.zeros((4, 2), np.float32), verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        m.fit(x, np.full((4, 3), np.nan, np.float32), verbose=0)


def test_element_loss_binding_checks():
    b = cf.backend
    p = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="target"):
        b.element_loss(np.empty(2, np.float32), None, p, np.zeros((2, 2), np.float32),
                       b.ElementLoss.hinge)
    with pytest.raises(TypeError, match="pred"):
        b.element_loss(np.empty(2, np.float32), None, p.astype(np.float64), p,
                       b.ElementLoss.hinge)


@pytest.mark.parametrize("loss", [cf.losses.Huber(delta=0.3, name="h"),
                                  cf.losses.BinaryCrossentropy(from_logits=True,
                                                               label_smoothing=0.1),
                                  "mse", "kld", "categorical_hinge"], ids=str)
def test_saving_round_trips_the_loss(tmp_path, loss):
    m = cf.Sequential(_mlp(cf, 3, "linear"))
    m.compile(optimizer="adam", loss=loss)
    m.save(tmp_path / "m.keras")
    m2 = cf.models.load_model(tmp_path / "m.keras")
    assert type(m2.loss) is type(m.loss)
    assert m2.loss.get_config() == m.loss.get_config()
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    y = np.random.default_rng(1).random((5, 3)).astype(np.float32)
    assert m2.evaluate(x, y, verbose=0) == m.evaluate(x, y, verbose=0)
