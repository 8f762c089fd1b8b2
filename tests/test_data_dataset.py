"""cnnfast.data.Dataset (tf.data.Dataset under `import cnnfast as tf`): the pipeline
semantics against tf.data on the same arrays (marked `tf`), the shuffle buffer's guarantees,
seeding, and the errors for what cnnfast does not implement."""
import numpy as np
import pytest

import cnnfast as tf
from cnnfast.data import Dataset
from cnnfast.tensor import Tensor

X = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
Y = np.arange(23, dtype=np.int64) * 10


def as_lists(ds):
    """Elements as nested Python lists, comparable between cnnfast and tf.data."""
    def conv(e):
        if isinstance(e, tuple):
            return tuple(conv(v) for v in e)
        if isinstance(e, dict):
            return {k: conv(v) for k, v in e.items()}
        return np.asarray(e).tolist()
    return [conv(e) for e in ds.as_numpy_iterator()]


# (name, pipeline) - each takes the Dataset class of cnnfast or tf.data
PIPELINES = {
    "slices": lambda D: D.from_tensor_slices(X),
    "tuple_batch": lambda D: D.from_tensor_slices((X, Y)).batch(5),
    "batch_drop": lambda D: D.from_tensor_slices((X, Y)).batch(5, drop_remainder=True),
    "dict_batch": lambda D: D.from_tensor_slices({"img": X, "label": Y}).batch(7),
    "take_skip": lambda D: D.from_tensor_slices(Y).skip(3).take(6),
    "skip_all": lambda D: D.from_tensor_slices(Y).skip(-1),
    "take_more": lambda D: D.from_tensor_slices(Y).take(100),
    "repeat_batch": lambda D: D.from_tensor_slices(Y).repeat(3).batch(10),
    "batch_repeat": lambda D: D.from_tensor_slices(Y).batch(10).repeat(2),
    "repeat_take": lambda D: D.from_tensor_slices(Y).repeat().take(50),
    "map_tuple": lambda D: D.from_tensor_slices((X, Y)).map(lambda x, y: (x * 2.0, y + 1)),
    "map_batch_unbatch": lambda D: D.from_tensor_slices((X, Y)).batch(4).unbatch().map(
        lambda x, y: (x[0], y)),
    "cache_prefetch": lambda D: D.from_tensor_slices(Y).cache().prefetch(2).batch(6),
    "filter": lambda D: D.range(20).filter(lambda v: v % 3 == 0),
    "range_zip": lambda D: D.zip((D.range(5), D.from_tensor_slices(Y))),
    "enumerate": lambda D: D.from_tensor_slices(Y).take(4).enumerate(),
    "concatenate": lambda D: D.range(3).concatenate(D.range(10, 12)),
    "from_tensors": lambda D: D.from_tensors((X[:2], Y[:2])).repeat(2),
    "list_slices": lambda D: D.from_tensor_slices([[1, 2], [3, 4], [5, 6]]).batch(2),
    "python_floats": lambda D: D.from_tensor_slices([0.5, 1.5]).map(lambda v: v * 2),
    "map_returns_list": lambda D: D.from_tensor_slices((X, Y)).map(lambda x, y: [y, x]),
    "shuffle_buffer_1": lambda D: D.from_tensor_slices(Y).shuffle(1).batch(4),
}


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_elements_as_tf_data(tf_keras, name):
    real_tf, _ = tf_keras
    ours, theirs = PIPELINES[name](Dataset), PIPELINES[name](real_tf.data.Dataset)
    assert int(ours.cardinality()) == int(theirs.cardinality())
    expected = as_lists(theirs)
    assert as_lists(ours) == expected
    if not expected:
        return
    # dtypes of the leaves, as tf.data's (float32 from Python floats, int64 from range)
    ours_e, theirs_e = next(ours.as_numpy_iterator()), next(theirs.as_numpy_iterator())
    flat = lambda e: list(e.values()) if isinstance(e, dict) else (  # noqa: E731
        list(e) if isinstance(e, tuple) else [e])
    assert [np.asarray(v).dtype for v in flat(ours_e)] == \
        [np.asarray(v).dtype for v in flat(theirs_e)]


@pytest.mark.tf
def test_cardinality_and_len_as_tf_data(tf_keras):
    real_tf, _ = tf_keras
    for build in (lambda D: D.from_tensor_slices(Y).repeat(),
                  lambda D: D.from_tensor_slices(Y).filter(lambda v: v > 0),
                  lambda D: D.from_tensor_slices(Y).repeat().take(7),
                  lambda D: D.from_tensor_slices(Y).batch(4, drop_remainder=True).unbatch(),
                  lambda D: D.from_tensor_slices(Y).repeat(0),
                  lambda D: D.from_tensor_slices(Y).shuffle(5).batch(3)):
        ours, theirs = build(Dataset), build(real_tf.data.Dataset)
        assert int(ours.cardinality()) == int(theirs.cardinality())
        try:
            expected = len(theirs)
        except TypeError as e:
            with pytest.raises(TypeError, match=str(e)):
                len(ours)
        else:
            assert len(ours) == expected
    assert tf.data.INFINITE_CARDINALITY == real_tf.data.INFINITE_CARDINALITY
    assert tf.data.UNKNOWN_CARDINALITY == real_tf.data.UNKNOWN_CARDINALITY
    assert tf.data.AUTOTUNE == real_tf.data.AUTOTUNE == tf.data.experimental.AUTOTUNE


def _window_ok(order, buffer_size):
    """TF's buffer guarantee: output position j holds an input element < j + buffer_size."""
    return all(v < j + buffer_size for j, v in enumerate(order))


@pytest.mark.tf
@pytest.mark.parametrize("buffer_size", [2, 5, 50])
def test_shuffle_buffer_semantics_as_tf_data(tf_keras, buffer_size):
    real_tf, _ = tf_keras
    n = 40
    for D in (Dataset, real_tf.data.Dataset):
        ds = D.range(n).shuffle(buffer_size, seed=3)
        orders = [[int(v) for v in ds.as_numpy_iterator()] for _ in range(3)]
        for order in orders:
            assert sorted(order) == list(range(n))  # a permutation
            assert _window_ok(order, buffer_size)
        assert orders[0] != orders[1]  # reshuffle_each_iteration=True
        fixed = D.range(n).shuffle(buffer_size, seed=3, reshuffle_each_iteration=False)
        assert list(fixed.as_numpy_iterator()) == list(fixed.as_numpy_iterator())


def test_small_shuffle_buffer_is_not_a_full_shuffle():
    # with a buffer of 2 the first output is element 0 or 1; with a full buffer any element
    firsts = set()
    for seed in range(40):
        order = [int(v) for v in Dataset.range(30).shuffle(2, seed=seed).as_numpy_iterator()]
        firsts.add(order[0])
        assert _window_ok(order, 2)
    assert firsts == {0, 1}
    firsts = {int(next(Dataset.range(30).shuffle(30, seed=s).as_numpy_iterator()))
              for s in range(40)}
    assert max(firsts) > 10


def test_shuffle_is_deterministic_given_cnnfast_seed():
    def orders():
        tf.random.set_seed(7)
        ds = Dataset.from_tensor_slices(Y).shuffle(8)
        return [as_lists(ds) for _ in range(2)]
    a, b = orders(), orders()
    assert a == b and a[0] != a[1]
    assert as_lists(Dataset.from_tensor_slices(Y).shuffle(8, seed=1)) == \
        as_lists(Dataset.from_tensor_slices(Y).shuffle(8, seed=1))
    # shuffle then repeat: each repetition is another order; cache after shuffle replays one
    ds = Dataset.range(10).shuffle(10, seed=2).repeat(2)
    order = [int(v) for v in ds.as_numpy_iterator()]
    assert sorted(order[:10]) == sorted(order[10:]) == list(range(10))
    assert order[:10] != order[10:]
    cached = Dataset.range(10).shuffle(10, seed=2).cache().repeat(2)
    order = [int(v) for v in cached.as_numpy_iterator()]
    assert order[:10] == order[10:]


def test_elements_are_tensors_and_numpy_iterator_plain_numpy():
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)
    xb, yb = next(iter(ds))
    assert isinstance(xb, Tensor) and xb.shape == (4, 2) and xb.numpy().dtype == np.float32
    xb, yb = next(ds.as_numpy_iterator())
    assert type(xb) is np.ndarray
    (v,) = list(Dataset.range(1).as_numpy_iterator())
    assert type(v) is np.int64
    # the tf.* helpers work inside map
    ds = tf.data.Dataset.from_tensor_slices((X.astype(np.uint8), Y)).map(
        lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.one_hot(y % 3, 3)))
    x0, y0 = next(iter(ds))
    assert x0.dtype == np.float32 and y0.tolist() == [1.0, 0.0, 0.0]


def test_errors():
    with pytest.raises(ValueError, match="same size in their first dimension"):
        Dataset.from_tensor_slices((X, Y[:5]))
    with pytest.raises(ValueError, match="Cannot batch tensors with different shapes"):
        list(Dataset.range(4).map(lambda v: np.zeros(int(v) % 2 + 1)).batch(2))
    with pytest.raises(ValueError, match="buffer_size must be positive"):
        Dataset.range(3).shuffle(0)
    with pytest.raises(NotImplementedError, match="caching to a file"):
        Dataset.range(3).cache("/tmp/x")
    for method in ("interleave", "padded_batch", "window", "flat_map", "from_generator"):
        with pytest.raises(NotImplementedError, match=f"Dataset.{method} is not implemented"):
            getattr(Dataset.range(3), method)(lambda v: v)
    with pytest.raises(NotImplementedError, match="element_spec"):
        Dataset.range(3).element_spec  # noqa: B018
    assert list(Dataset.range(0).repeat().as_numpy_iterator()) == []  # empty, no hang
