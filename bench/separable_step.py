"""CPU ms per training step of a small CNN with SeparableConv2D, 1 thread, on the engine that
CNNFAST_EXECUTOR picks (0: the LayerEngine, 1: the Net). Run each in a fresh process,
alternating, and compare medians (bench/RESULTS.md, 2026-12-02):

    for i in 1 2 3 4 5; do for e in 0 1; do
        OMP_NUM_THREADS=1 CNNFAST_EXECUTOR=$e python -m bench.separable_step; done; done
"""
import time

import numpy as np


def main():
    import cnnfast as cf
    from cnnfast import executor
    from cnnfast import layers as L

    cf.set_num_threads(1)
    cf.utils.set_random_seed(0)
    m = cf.Sequential([
        L.Input((28, 28, 1)), L.Conv2D(16, 3, padding="same", activation="relu"),
        L.SeparableConv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.SeparableConv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    batch, steps = 64, 30
    r = np.random.default_rng(0)
    x = r.random((batch * steps, 28, 28, 1), dtype=np.float32)
    y = r.integers(0, 10, batch * steps)
    engine = type(executor.for_model(m, batch, "train")).__name__
    m.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    t = time.process_time()
    m.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    print(f"{engine} {(time.process_time() - t) / steps * 1e3:.3f} CPU ms/step")


if __name__ == "__main__":
    main()
