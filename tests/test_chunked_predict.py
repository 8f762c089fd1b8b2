"""Forward passes in chunks (docs/training_step.md#chunked-forward-passes): predict and evaluate
run the Net over max_batch rows at a time whatever batch_size the user passes, so memory is one
chunk's, and the results are the same bits as one pass over the whole batch."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import executor
from cnnfast.keras import layers


def cnn(seed=0):
    cf.utils.set_random_seed(seed)
    m = cf.keras.Sequential([
        cf.keras.Input((12, 12, 3)),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(16, 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(20, activation="relu"),
        layers.Dense(7),
    ])
    m.compile("adam", cf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def data(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 12, 12, 3), dtype=np.float32), rng.integers(0, 7, n)


def test_forward_rows_follow_the_chunk_budget():
    m = cnn()
    chain = executor._chain(m)
    # per row: 12*12*8 + 6*6*8 + 4*4*16 + 256 + 256 + 20 + 7 floats
    per_row = 4 * (12 * 12 * 8 + 6 * 6 * 8 + 4 * 4 * 16 + 256 + 256 + 20 + 7)
    want = max(executor.FORWARD_MIN_ROWS, executor.FORWARD_CHUNK_BYTES // per_row)
    assert executor._chain_row_bytes(chain, [12, 12, 3]) == per_row
    assert executor._graph_row_bytes(m) == per_row + 4 * 12 * 12 * 3  # and the input
    assert executor.forward_rows(per_row, 10 ** 6) == want
    assert executor.forward_rows(per_row, 5) == 5  # never more than the batch


@pytest.mark.parametrize("n", [1, 37, 250])
def test_chunked_predict_and_evaluate_equal_one_pass(monkeypatch, threads, n):
    x, y = data(n)
    monkeypatch.setenv("CNNFAST_FORWARD_ROWS", "100000")
    m = cnn()
    whole = m.predict(x, batch_size=n, verbose=0)
    whole_eval = m.evaluate(x, y, batch_size=n, verbose=0)
    assert m._engine_cache["native"].net.max_batch == n
    for rows in (1, 4, 33):
        m._engine_cache.clear()
        monkeypatch.setenv("CNNFAST_FORWARD_ROWS", str(rows))
        chunked = m.predict(x, batch_size=n, verbose=0)
        assert m._engine_cache["native"].net.max_batch == min(rows, n)
        np.testing.assert_array_equal(chunked, whole)
        # the mean loss is the running float32 sum in row order over all n rows: same bits
        assert m.evaluate(x, y, batch_size=n, verbose=0) == whole_eval


def test_chunked_predict_equals_the_layer_engine(monkeypatch):
    x, y = data(90)
    monkeypatch.setenv("CNNFAST_FORWARD_ROWS", "100000")
    m = cnn()
    native = m.predict(x, batch_size=90, verbose=0)
    native_eval = m.evaluate(x, y, batch_size=90, verbose=0)
    monkeypatch.setenv("CNNFAST_EXECUTOR", "0")
    for rows in (16, 90):  # the LayerEngine chunks too, and gives the same bits
        monkeypatch.setenv("CNNFAST_FORWARD_ROWS", str(rows))
        np.testing.assert_array_equal(m.predict(x, batch_size=90, verbose=0), native)
        assert m.evaluate(x, y, batch_size=90, verbose=0) == native_eval


def test_one_net_serves_training_and_forward_passes(monkeypatch):
    """A Net whose buffers hold a chunk serves every phase that fits: predict after fit at the
    same batch, and fit after a predict that built a bigger Net, reuse it."""
    monkeypatch.delenv("CNNFAST_FORWARD_ROWS", raising=False)
    x, y = data(64)
    m = cnn()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    net = m._engine_cache["native"].net
    m.predict(x, batch_size=16, verbose=0)
    m.evaluate(x, y, batch_size=16, verbose=0)
    assert m._engine_cache["native"].net is net
    m.predict(x, batch_size=64, verbose=0)  # 64 rows per chunk: a bigger Net
    net = m._engine_cache["native"].net
    assert net.max_batch == 64
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert m._engine_cache["native"].net is net


def test_net_forward_checks_its_arguments():
    m = cnn()
    m.predict(data(4)[0], batch_size=4, verbose=0)
    net = m._engine_cache["native"].net
    x = data(10)[0]
    with pytest.raises(ValueError, match=r"Net.predict: out has shape \(9, 7\); expected "
                                         r"\(10, 7\)"):
        net.predict(x, np.empty((9, 7), np.float32))
    with pytest.raises(ValueError, match=r"Net.predict: x has shape \(0, 12, 12, 3\)"):
        net.predict(x[:0], np.empty((0, 7), np.float32))
    with pytest.raises(ValueError, match="Net.evaluate: x has shape"):
        net.evaluate(x[:, :5], np.zeros(10, np.int32))
    with pytest.raises(ValueError, match="Net.evaluate"):
        net.evaluate(x, np.zeros(9, np.int32))
    out = np.empty((10, 7), np.float32)
    net.predict(x, out)  # 10 rows through a Net of max_batch 4: three chunks
    np.testing.assert_array_equal(out, m.predict(x, batch_size=10, verbose=0))


@pytest.mark.slow
def test_predict_memory_does_not_grow_with_batch_size(tmp_path):
    """A fresh process predicting 6000 rows at batch_size=6000 peaks within 64 MiB of the same
    at batch 32 (before chunking, batch 10000 on the tutorial CNN peaked at 4.2 GiB)."""
    script = textwrap.dedent("""
        import resource, sys, numpy as np, cnnfast as cf
        from cnnfast.keras import layers
        m = cf.keras.Sequential([cf.keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
        x = np.random.default_rng(0).random((6000, 28, 28, 1), dtype=np.float32)
        m.predict(x, batch_size=int(sys.argv[1]), verbose=0)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    env = dict(os.environ)
    env.pop("CNNFAST_FORWARD_ROWS", None)
    # the cnnfast this test imported (installed, or the source tree's in-place build)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(cf.__file__)), env.get("PYTHONPATH")) if p)
    peak = {}
    for b in (32, 6000):
        # cwd outside the source tree: `python -c` puts the cwd on sys.path, and the tests may
        # run against the installed package (CI)
        p = subprocess.run([sys.executable, "-c", script, str(b)], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        peak[b] = int(p.stdout.split()[-1])
    assert peak[6000] - peak[32] < 64 * 1024, peak  # KiB
