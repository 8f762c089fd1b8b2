"""The new optimizers, clipping, weight decay and learning-rate schedules on both engines: the
native Net (csrc/net_cpu.cpp optimizer_step) and the LayerEngine (Optimizer.apply) run the same
kernels in the same order, so a fit gives bit-identical weights, history and iterations."""
import numpy as np
import pytest
from test_executor import data, model, model_fused

import cnnfast as cf
from cnnfast import executor, layers, schedules

S = schedules
OPTS = {
    "nadam": lambda: cf.optimizers.Nadam(0.01),
    "adamax": lambda: cf.optimizers.Adamax(0.01),
    "adagrad": lambda: cf.optimizers.Adagrad(0.05),
    "adadelta": lambda: cf.optimizers.Adadelta(1.0),
    "adamw": lambda: cf.optimizers.AdamW(0.01, weight_decay=0.05),
    "sgd_exp_decay": lambda: cf.optimizers.SGD(S.ExponentialDecay(0.1, 3, 0.8), momentum=0.9),
    "adam_cosine_warmup_clipnorm": lambda: cf.optimizers.Adam(
        S.CosineDecay(0.001, 10, warmup_target=0.02, warmup_steps=4), clipnorm=0.5),
    "rmsprop_piecewise_clipvalue": lambda: cf.optimizers.RMSprop(
        S.PiecewiseConstantDecay([4, 8], [0.01, 0.005, 0.001]), clipvalue=0.01),
    "nadam_restarts_global_clipnorm_wd": lambda: cf.optimizers.Nadam(
        S.CosineDecayRestarts(0.01, 3), global_clipnorm=0.3, weight_decay=0.01),
    "adagrad_polynomial": lambda: cf.optimizers.Adagrad(S.PolynomialDecay(0.1, 6, cycle=True)),
    "adadelta_inverse_time_wd": lambda: cf.optimizers.Adadelta(S.InverseTimeDecay(1.0, 2, 0.5),
                                                               weight_decay=0.001),
}


def train(native, opt, monkeypatch, arch=model):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    x, y = data()
    m = arch()
    m.compile(optimizer=OPTS[opt](), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=7, epochs=2, shuffle=True, verbose=0, validation_split=0.2)
    tob = m.train_on_batch(x[:9], y[:9])
    return m, h.history, tob


@pytest.mark.parametrize("opt", sorted(OPTS))
def test_fit_is_bit_identical_on_both_engines(opt, monkeypatch):
    cf.utils.set_random_seed(11)
    m1, h1, t1 = train(True, opt, monkeypatch)
    cf.utils.set_random_seed(11)
    m2, h2, t2 = train(False, opt, monkeypatch)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2 and t1 == t2
    assert m1.optimizer.iterations == m2.optimizer.iterations == 2 * 6 + 1
    for s1, s2 in zip(m1.optimizer.slot_arrays, m2.optimizer.slot_arrays):
        for a, b in zip(s1, s2):
            if a is not None:
                np.testing.assert_array_equal(a, b)
    assert m1.optimizer.learning_rate == m2.optimizer.learning_rate
    assert not np.array_equal(m1.get_weights()[0], model().get_weights()[0])  # it trained


def test_fused_model_with_schedule_and_clipping(monkeypatch):
    opt = "adam_cosine_warmup_clipnorm"
    cf.utils.set_random_seed(2)
    m1, h1, _ = train(True, opt, monkeypatch, model_fused)
    cf.utils.set_random_seed(2)
    m2, h2, _ = train(False, opt, monkeypatch, model_fused)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2


@pytest.mark.parametrize("cb", [
    lambda: cf.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
    lambda: cf.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9),
])
def test_callbacks_that_set_a_scheduled_rate_raise_as_keras(cb):
    x, y = data()
    m = model()
    m.compile(cf.optimizers.SGD(S.ExponentialDecay(0.01, 10, 0.9)),
              "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="learning rate is not settable"):
        m.fit(x, y, epochs=2, verbose=0, callbacks=[cb()])


def test_learning_rate_log_follows_the_schedule():
    x, y = data(n=21)
    m = model()
    sched = S.ExponentialDecay(0.01, 2, 0.5)
    m.compile(cf.optimizers.SGD(sched), "sparse_categorical_crossentropy")
    h = m.fit(x, y, batch_size=7, epochs=2, verbose=0,
              callbacks=[cf.callbacks.ReduceLROnPlateau(monitor="loss", patience=5)])
    # read at each epoch's end: the schedule at iterations 3 and 6, in float32
    assert h.history["learning_rate"] == [float(sched(3)), float(sched(6))]


def test_save_and_load_keep_the_schedule_and_the_state(tmp_path):
    x, y = data()
    m = model()
    m.compile(cf.optimizers.Nadam(S.CosineDecay(0.01, 20), clipnorm=1.0, weight_decay=0.01),
              "sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=9, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    m.save(path)
    again = cf.models.load_model(path)
    assert again.optimizer.get_config() == m.optimizer.get_config()
    assert again.optimizer.iterations == m.optimizer.iterations == 5
    m.fit(x, y, batch_size=9, epochs=1, verbose=0, shuffle=False)
    again.fit(x, y, batch_size=9, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(m.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def _summary_optimizer_params(m):
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    return int(text.split("Optimizer params:")[1].split("(")[0].replace(",", ""))


KERAS_OPTS = ["Nadam", "Adamax", "Adagrad", "Adadelta", "AdamW", "SGD"]


@pytest.mark.tf
@pytest.mark.parametrize("cls", KERAS_OPTS)
@pytest.mark.parametrize("scheduled", [False, True])
def test_summary_optimizer_params_match_keras(tf_keras, cls, scheduled):
    tf, keras = tf_keras
    x = np.zeros((4, 5), np.float32)
    y = np.zeros(4, np.int64)

    def lr(mod):
        return mod.optimizers.schedules.ExponentialDecay(0.01, 3, 0.5) if scheduled else 0.01

    k = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    k.compile(getattr(keras.optimizers, cls)(lr(keras)), "sparse_categorical_crossentropy")
    k.fit(x, y, verbose=0)
    want = sum(int(np.prod(v.shape)) for v in k.optimizer.variables)
    m = cf.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
    m.compile(getattr(cf.optimizers, cls)(lr(cf.keras)), "sparse_categorical_crossentropy")
    m.fit(x, y, verbose=0)
    assert m.optimizer.variables_count() == want
    assert _summary_optimizer_params(m) == want
