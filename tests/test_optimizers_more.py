"""Nadam, Adamax, Adagrad, Adadelta, AdamW, weight decay, clipping and learning-rate schedules
on the optimizers, against tf.keras (marked tf), plus the errors and the config round trips.

The optimizer runs as the engines run it (`step` below: the learning rate as applied, the
optimizer's prepare_step, apply, iterations + 1) on copied float32 weights and identical
gradients; Keras runs `apply_gradients` on tf.Variables."""
import numpy as np
import pytest
from helpers import rand
from tf_oracle import check, seed_of

from cnnfast import optimizers, schedules
from cnnfast.optimizers import applied_learning_rate


def step(opt, weights, grads):
    """One update of `weights` as either engine applies it (cnnfast/executor.py)."""
    lr = applied_learning_rate(opt)
    s = opt.iterations + 1
    opt.prepare_step(s)
    opt.apply(weights, [g.copy() for g in grads], lr, s)
    opt.iterations = s


def exp_decay(m):
    return m.optimizers.schedules.ExponentialDecay(0.01, 3, 0.7)


def cos_warm(m):
    return m.optimizers.schedules.CosineDecay(0.001, 5, alpha=0.1, warmup_target=0.01,
                                              warmup_steps=3)


# name -> (kwargs built from a module (keras or cnnfast), class name)
CASES = {
    "nadam": (lambda m: {}, "Nadam"),
    "nadam_beta": (lambda m: dict(beta_1=0.8, beta_2=0.99, epsilon=1e-5), "Nadam"),
    "adamax": (lambda m: {}, "Adamax"),
    "adamax_beta": (lambda m: dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95), "Adamax"),
    "adagrad": (lambda m: {}, "Adagrad"),
    "adagrad_init": (lambda m: dict(learning_rate=0.1, initial_accumulator_value=0.0,
                                    epsilon=1e-6), "Adagrad"),
    "adadelta": (lambda m: {}, "Adadelta"),
    "adadelta_lr1": (lambda m: dict(learning_rate=1.0, rho=0.9), "Adadelta"),
    "adamw": (lambda m: {}, "AdamW"),
    "adamw_amsgrad": (lambda m: dict(weight_decay=0.1, amsgrad=True), "AdamW"),
    "sgd_weight_decay": (lambda m: dict(momentum=0.9, weight_decay=0.01), "SGD"),
    "adam_clipvalue": (lambda m: dict(clipvalue=0.05), "Adam"),
    "rmsprop_clipnorm": (lambda m: dict(clipnorm=0.1), "RMSprop"),
    "sgd_global_clipnorm": (lambda m: dict(learning_rate=0.1, global_clipnorm=0.5), "SGD"),
    "nadam_clipnorm_wd": (lambda m: dict(clipnorm=1.0, weight_decay=0.05), "Nadam"),
    "sgd_exp_decay": (lambda m: dict(learning_rate=exp_decay(m), momentum=0.5), "SGD"),
    "adamw_cosine_warmup": (lambda m: dict(learning_rate=cos_warm(m)), "AdamW"),
    "adagrad_exp_decay_clip": (lambda m: dict(learning_rate=exp_decay(m), global_clipnorm=0.2),
                               "Adagrad"),
}

# Where the sums of squares of clipnorm/global_clipnorm differ from TF's: cnnfast sums in
# double in index order, TF in float32 in Eigen's order; a few ulps in the norm then scale
# every clipped gradient (measured: 1 ulp-level difference, 9e-10, in nadam_clipnorm_wd; the
# other clipnorm cases bit-identical). All other cases are bit-identical (atol=0).
CLIP_NORM_TOL = dict(atol=1e-7, rtol=1e-6)


class _Keras:
    """A stand-in module whose .optimizers is cnnfast's (so CASES build both sides)."""
    optimizers = optimizers


@pytest.mark.tf
@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_keras(tf_keras, name):
    tf, keras = tf_keras
    kwargs, cls = CASES[name]
    rng = np.random.default_rng(seed_of("optimizers_more", name))
    shapes = [(3, 3, 2, 4), (37,), (5, 3)]
    w0 = [rand(rng, s) for s in shapes]
    grads = [[rand(rng, s, scale=10.0 ** rng.integers(-4, 1)) for s in shapes]
             for _ in range(12)]
    for g in grads:  # zeros exercise the eps handling
        g[1][:3] = 0.0
    tf_vars = [tf.Variable(w) for w in w0]
    theirs = getattr(keras.optimizers, cls)(**kwargs(keras))
    ours_opt = getattr(optimizers, cls)(**kwargs(_Keras))
    ours = [w.copy() for w in w0]
    for g in grads:
        theirs.apply_gradients(zip([tf.constant(x) for x in g], tf_vars))
        step(ours_opt, ours, g)
        assert ours_opt.iterations == int(theirs.iterations.numpy())
        assert applied_learning_rate(ours_opt) == float(theirs.learning_rate.numpy())
    tol = CLIP_NORM_TOL if "clipnorm" in name else dict(atol=0, rtol=0)
    for w, v in zip(ours, tf_vars):
        check(f"optimizer {name}", w, v.numpy(), **tol)


# ---- schedules: values at every step ------------------------------------------------------
SCHEDULES = {
    "exponential": ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7,
                                             decay_rate=0.96)),
    "exponential_staircase": ("ExponentialDecay", dict(initial_learning_rate=0.01,
                                                       decay_steps=10, decay_rate=0.5,
                                                       staircase=True)),
    "piecewise": ("PiecewiseConstantDecay", dict(boundaries=[10, 25, 40],
                                                 values=[0.1, 0.05, 0.01, 0.001])),
    "piecewise_one": ("PiecewiseConstantDecay", dict(boundaries=[5], values=[1.0, 0.5])),
    "inverse_time": ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=3,
                                              decay_rate=0.5)),
    "inverse_time_staircase": ("InverseTimeDecay", dict(initial_learning_rate=0.1,
                                                        decay_steps=4, decay_rate=0.3,
                                                        staircase=True)),
    "polynomial": ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=50)),
    "polynomial_power_cycle": ("PolynomialDecay", dict(initial_learning_rate=0.1,
                                                       decay_steps=13, end_learning_rate=0.01,
                                                       power=0.5, cycle=True)),
    "cosine": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=60)),
    "cosine_alpha": ("CosineDecay", dict(initial_learning_rate=0.05, decay_steps=33,
                                         alpha=0.2)),
    "cosine_warmup": ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=40,
                                          warmup_target=0.1, warmup_steps=17)),
    "cosine_restarts": ("CosineDecayRestarts", dict(initial_learning_rate=0.1,
                                                    first_decay_steps=7)),
    "cosine_restarts_mul": ("CosineDecayRestarts", dict(initial_learning_rate=0.1,
                                                        first_decay_steps=5, t_mul=1.5,
                                                        m_mul=0.8, alpha=0.05)),
    "cosine_restarts_t1": ("CosineDecayRestarts", dict(initial_learning_rate=0.1,
                                                       first_decay_steps=6, t_mul=1.0,
                                                       m_mul=0.9)),
}


@pytest.mark.tf
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_keras_bit_for_bit(tf_keras, name):
    """Every step 0..199 (and a few far ones), on Keras's int64 iteration tensor."""
    tf, keras = tf_keras
    cls, kw = SCHEDULES[name]
    theirs = getattr(keras.optimizers.schedules, cls)(**kw)
    ours = getattr(schedules, cls)(**kw)
    steps = list(range(200)) + [1000, 12345, 99999]
    want = np.array([theirs(tf.constant(s, tf.int64)).numpy() for s in steps], np.float32)
    got = np.array([ours(s) for s in steps], np.float32)
    bad = np.flatnonzero(got.view(np.int32) != want.view(np.int32))
    assert bad.size == 0, (f"{name}: {bad.size} steps differ, first at step "
                           f"{steps[bad[0]]}: {got[bad[0]]!r} vs Keras {want[bad[0]]!r}")
    assert ours.get_config() == theirs.get_config()


@pytest.mark.tf
def test_optimizer_config_with_schedule_is_keras_s(tf_keras):
    tf, keras = tf_keras
    kw = dict(initial_learning_rate=0.01, decay_steps=10, decay_rate=0.9)
    theirs = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(**kw)).get_config()
    ours = optimizers.SGD(schedules.ExponentialDecay(**kw)).get_config()
    assert ours["learning_rate"] == theirs["learning_rate"]
    assert set(ours) == set(theirs)
    for cls in ("Nadam", "Adamax", "Adagrad", "Adadelta", "AdamW"):
        t = getattr(keras.optimizers, cls)().get_config()
        o = getattr(optimizers, cls)().get_config()
        assert set(o) == set(t), cls
        for k in set(t) - {"name", "learning_rate"}:
            assert o[k] == t[k], (cls, k)


# ---- behaviour without TF -----------------------------------------------------------------
def test_learning_rate_with_a_schedule_reads_and_refuses_set():
    opt = optimizers.Adam(schedules.ExponentialDecay(0.1, 2, 0.5))
    assert opt.learning_rate == float(np.float32(0.1))
    opt.iterations = 2
    assert opt.learning_rate == float(np.float32(0.05))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.01
    opt.learning_rate = schedules.InverseTimeDecay(0.2, 1, 1.0)  # a schedule replaces one
    assert opt.learning_rate == float(np.float32(0.2) / np.float32(3))


def test_callable_learning_rate_is_called_each_step():
    values = iter([0.5, 0.25])
    opt = optimizers.SGD(lambda: next(values))
    w, g = np.ones(3, np.float32), np.ones(3, np.float32)
    step(opt, [w], [g])
    step(opt, [w], [g])
    np.testing.assert_array_equal(w, np.float32(1) - np.float32(0.5) - np.float32(0.25))


def test_custom_schedule_subclass():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2 ** step

        def get_config(self):
            return {}

    opt = optimizers.SGD(Halving())
    w, g = np.zeros(2, np.float32), np.ones(2, np.float32)
    for _ in range(3):
        step(opt, [w], [g])
    np.testing.assert_array_equal(w, -np.float32(1.75))
    with pytest.raises(ValueError, match="only"):
        opt.get_config()


@pytest.mark.parametrize("make, match", [
    (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), "Only one of"),
    (lambda: optimizers.SGD(global_clipnorm=1.0, clipnorm=2.0), "Only one of"),
    (lambda: optimizers.Adam(clipnorm="big"), "clipnorm must be None or a finite float"),
    (lambda: optimizers.Adam(weight_decay=float("nan")), "weight_decay must be"),
    (lambda: optimizers.AdamW(weight_decay=None), "weight_decay` must be a float"),
    (lambda: optimizers.Nadam(beta_1=1.0), "beta_1 must be a float in"),
    (lambda: optimizers.Adamax(beta_2=-0.1), "beta_2 must be a float in"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: optimizers.Adadelta(rho=1.5), "rho must be a float in"),
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps` must be > 0"),
    (lambda: schedules.CosineDecayRestarts(0.1, -1), "first_decay_steps` must be > 0"),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "1 less than"),
])
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types_raise():
    with pytest.raises(TypeError, match="learning_rate must be a float or a Learning"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(TypeError, match="decay_steps"):
        schedules.PolynomialDecay(0.1, "ten")
    with pytest.raises(TypeError, match="unrecognized keyword"):
        optimizers.Nadam(momentum=0.9)


@pytest.mark.parametrize("name, cls", [("nadam", "Nadam"), ("adamw", "AdamW"),
                                       ("Adamax", "Adamax"), ("adagrad", "Adagrad"),
                                       ("ADADELTA", "Adadelta")])
def test_string_names_resolve(name, cls):
    assert type(optimizers.get(name)).__name__ == cls


def test_from_config_round_trips_every_optimizer_and_schedule():
    scheds = [schedules.ExponentialDecay(0.1, 3, 0.5, staircase=True),
              schedules.PiecewiseConstantDecay([3], [0.1, 0.01]),
              schedules.PolynomialDecay(0.1, 9, power=2.0, cycle=True),
              schedules.InverseTimeDecay(0.1, 2, 0.3),
              schedules.CosineDecay(0.0, 9, warmup_target=0.1, warmup_steps=3),
              schedules.CosineDecayRestarts(0.1, 4, t_mul=1.5)]
    opts = [optimizers.Nadam(clipnorm=0.5), optimizers.Adamax(clipvalue=0.1),
            optimizers.Adagrad(weight_decay=0.01), optimizers.Adadelta(global_clipnorm=2.0),
            optimizers.AdamW(weight_decay=0.1)]
    opts += [optimizers.SGD(s) for s in scheds]
    for opt in opts:
        again = type(opt).from_config(opt.get_config())
        assert again.get_config() == opt.get_config()
        for it in (0, 1, 7, 50):
            opt.iterations = again.iterations = it
            assert applied_learning_rate(again) == applied_learning_rate(opt)


def test_nadam_u_product_recomputed_after_iterations_jump():
    """u_product is a function of the step count: a Nadam whose iterations were set (a loaded
    model) gives the same update as one that ran every step."""
    a, b = optimizers.Nadam(), optimizers.Nadam()
    wa, wb = [np.ones(4, np.float32)], [np.ones(4, np.float32)]
    g = [np.full(4, 0.3, np.float32)]
    for _ in range(5):
        step(a, wa, g)
    b.iterations = 5
    b.build(wb)
    for sa, sb in zip(a.slot_arrays[0], b.slot_arrays[0]):
        sb[...] = sa
    wb[0][...] = wa[0]
    step(a, wa, g)
    step(b, wb, g)
    np.testing.assert_array_equal(wa[0], wb[0])
    assert a.state_array[0] == b.state_array[0]
