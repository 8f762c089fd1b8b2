"""The Nadam / Adamax / Adagrad / Adadelta / weight-decay / clipping kernels (csrc/optim.h)
against their formulas in NumPy float32 (bit for bit: one rounding per operation, in the order
optim.h states), on arrays large enough for the OpenMP path, with 1 and 2 threads."""
import numpy as np
import pytest

from cnnfast import _core
from cnnfast.reference.optimizers import powf

f32 = np.float32
N = 70_001  # > the kernels' parallel grain (2^15), odd


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = _core.num_threads()
    _core.set_num_threads(request.param)
    yield request.param
    _core.set_num_threads(old)


def arrays(seed, k, scale=1.0):
    r = np.random.default_rng(seed)
    return [(r.standard_normal(N) * scale).astype(f32) for _ in range(k)]


def test_nadam_update_formula(threads):
    w, m, g = arrays(1, 3)
    v = np.abs(arrays(2, 1)[0])
    lr, b1, b2, eps, step = f32(0.01), 0.9, 0.999, 1e-7, 3
    u = f32(1.0)
    for k in range(1, step + 1):
        nxt = f32(_core.nadam_u_product_next(u, b1, k))
        assert nxt == (u * f32(b1)) * (f32(1) - f32(0.5) * powf(0.96, k))
        u = nxt
    B1, B2 = f32(b1), f32(b2)
    u_t = B1 * (f32(1) - f32(0.5) * powf(0.96, step))
    u_t1 = B1 * (f32(1) - f32(0.5) * powf(0.96, step + 1))
    m2 = m + (g - m) * (f32(1) - B1)
    v2 = v + (g * g - v) * (f32(1) - B2)
    m_hat = (u_t1 * m2) / (f32(1) - u * u_t1) + ((f32(1) - u_t) * g) / (f32(1) - u)
    v_hat = v2 / (f32(1) - powf(B2, step))
    want = w - (m_hat * lr) / (np.sqrt(v_hat) + f32(eps))
    _core.nadam_update(w, m, v, g, lr, b1, b2, eps, step, float(u))
    np.testing.assert_array_equal(m, m2)
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(w, want)


def test_adamax_update_formula(threads):
    w, m, g, u = arrays(3, 4)
    u = np.abs(u)
    lr, b1, b2, eps, step = f32(0.002), 0.9, 0.999, 1e-7, 5
    m2 = m + (g - m) * f32(1 - b1)
    u2 = np.maximum(f32(b2) * u, np.abs(g))
    want = w - (lr * m2) / ((f32(1) - powf(b1, step)) * (u2 + f32(eps)))
    _core.adamax_update(w, m, u, g, lr, b1, b2, eps, step)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(w, want)


def test_adagrad_update_formula(threads):
    w, g = arrays(4, 2)
    acc = np.full(N, f32(0.1))
    acc2 = acc + g * g
    want = w - (f32(0.05) * g) / np.sqrt(acc2 + f32(1e-7))
    _core.adagrad_update(w, acc, g, f32(0.05), 1e-7)
    np.testing.assert_array_equal(acc, acc2)
    np.testing.assert_array_equal(w, want)


def test_adadelta_update_formula(threads):
    w, g, ag, ad = arrays(5, 4)
    ag, ad = np.abs(ag), np.abs(ad)
    rho, eps, lr = 0.95, 1e-7, f32(1.0)
    ag2 = f32(rho) * ag + f32(1 - rho) * (g * g)
    delta = -((np.sqrt(ad + f32(eps)) * g) / np.sqrt(ag2 + f32(eps)))
    ad2 = f32(rho) * ad + f32(1 - rho) * (delta * delta)
    want = w + lr * delta
    _core.adadelta_update(w, ag, ad, g, lr, rho, eps)
    np.testing.assert_array_equal(ag, ag2)
    np.testing.assert_array_equal(ad, ad2)
    np.testing.assert_array_equal(w, want)


def test_weight_decay_formula(threads):
    (w,) = arrays(6, 1)
    want = w - (w * f32(0.004)) * f32(0.01)
    _core.weight_decay_update(w, f32(0.01), 0.004)
    np.testing.assert_array_equal(w, want)


def _sum_squares(g):
    """The kernel's reduction: f32(g*g) summed in double, in blocks of 4096 combined in order."""
    sq = (g * g).astype(np.float64)
    return f32(sum(float(np.sum(sq[i:i + 4096])) for i in range(0, sq.size, 4096)))


def test_clip_value_and_norm_formulas(threads):
    gs = arrays(7, 2, scale=0.01) + [np.zeros(5, f32)]
    c = 0.05
    want = [np.minimum(np.maximum(g, -f32(c)), f32(c)) for g in gs]
    got = [g.copy() for g in gs]
    _core.clip_gradients(got, _core.ClipKind.value, c)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    got = [g.copy() for g in gs]
    _core.clip_gradients(got, _core.ClipKind.norm, 1.0)
    for a, g in zip(got, gs):
        s = _sum_squares(g)
        norm = np.sqrt(s) if s > 0 else s
        # the pairwise double sum differs from the blocked one only below float32 precision
        np.testing.assert_allclose(a, (g * f32(1.0)) / max(norm, f32(1.0)), rtol=2e-7, atol=0)
    assert not np.array_equal(got[0], gs[0])  # norm ~ 2.6 > 1: clipped
    np.testing.assert_array_equal(got[2], gs[2])  # a zero gradient stays zero (no NaN)


def test_global_clipnorm_formula_and_thread_independence(threads):
    gs = arrays(8, 3, scale=0.01)
    got = [g.copy() for g in gs]
    _core.clip_gradients(got, _core.ClipKind.global_norm, 1.0)
    total = f32(0)
    for g in gs:
        total = total + _sum_squares(g)
    norm = np.sqrt(total)
    scale = f32(1.0) * min(f32(1) / norm, f32(1 / 1.0)) + (norm - norm)
    for a, g in zip(got, gs):
        np.testing.assert_allclose(a, g * scale, rtol=2e-7, atol=0)
    # the same bits whatever the thread count
    _core.set_num_threads(3 - threads)
    again = [g.copy() for g in gs]
    _core.clip_gradients(again, _core.ClipKind.global_norm, 1.0)
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: _core.clip_gradients([np.zeros(3, f32)], _core.ClipKind.norm, 0.0), ValueError,
     "clip must be > 0"),
    (lambda: _core.clip_gradients([np.zeros(3)], _core.ClipKind.value, 1.0), TypeError,
     "dtype float32"),
    (lambda: _core.nadam_update(*[np.zeros(3, f32)] * 3, np.zeros(4, f32), 0.1, 0.9, 0.999,
                                1e-7, 1, 1.0), ValueError, "g has shape"),
    (lambda: _core.adamax_update(*[np.zeros(3, f32)] * 4, 0.1, 0.9, 0.999, 1e-7, 0),
     ValueError, "step must be >= 1"),
    (lambda: _core.OptSpec.adam(0.9, 0.999, 1e-7, False).with_clip(_core.ClipKind.norm, -1.0),
     ValueError, "value must be > 0"),
])
def test_bad_kernel_arguments_raise(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
