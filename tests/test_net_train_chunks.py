"""The Net's training forward runs a Conv2D and the MaxPool2D above it chunk by chunk of images
(csrc/net_cpu.cpp, kTrainChunkFloats = 128 Ki floats of conv output), and a max-pool above a
ReLU takes the ReLU's derivative from its own pooled output. Both must give the LayerEngine's
bits (whole-batch passes), on 1 and 2 threads.

The convolutions here have 32*32*24 = 24576 outputs per image, so a chunk is 5 images and a
batch of 8 runs as two unequal chunks (5 + 3); the last batch of an epoch (30 = 3*8 + 6) as
5 + 1."""
import numpy as np
import pytest
from helpers import assert_engines_agree, fit_on_engine

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names

MODELS = {
    # few taps (K = 9), ReLU in the conv's epilogue, 2x2 pool: the pooled-output ReLU mask
    "relu_small_k": lambda: [layers.Conv2D(24, 3, padding="same", activation="relu"),
                             layers.MaxPooling2D()],
    # im2col path (K = 25), tanh kept apart from the conv (activation_forward per chunk),
    # overlapping 3x3/2 "same" windows (the untiled backward)
    "tanh_im2col_overlap": lambda: [layers.Conv2D(24, 5, padding="same", activation="tanh"),
                                    layers.MaxPooling2D(3, 2, padding="same")],
    # ReLU in the epilogue and overlapping windows: the untiled backward with the pooled mask
    "relu_overlap": lambda: [layers.Conv2D(24, 5, padding="same", activation="relu"),
                             layers.MaxPooling2D(3, 2, padding="valid")],
    # a ReLU layer between (not chunked; the pool fuses that layer's derivative)
    "relu_layer": lambda: [layers.Conv2D(24, 3, padding="same"), layers.ReLU(),
                           layers.MaxPooling2D()],
}


def make(name):
    def build():
        reset_names()
        cf.utils.set_random_seed(0)
        return cf.Sequential([layers.Input((32, 32, 1))] + MODELS[name]() +
                             [layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(4, activation="softmax")])
    return build


def data(n=30, seed=1):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 32, 32, 1)).astype(np.float32), r.integers(0, 4, n)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_conv_pool_trains_as_the_layer_engine(name, monkeypatch):
    x, y = data()
    assert_engines_agree(lambda native: fit_on_engine(monkeypatch, native, make(name), x, y))


@pytest.mark.parametrize("name", ["relu_small_k", "tanh_im2col_overlap"])
def test_chunked_conv_pool_one_and_two_threads_same_bits(name, monkeypatch):
    x, y = data()
    runs = []
    old = cf.backend.get_num_threads()
    try:
        for n in (1, 2):
            cf.backend.set_num_threads(n)
            runs.append(fit_on_engine(monkeypatch, True, make(name), x, y))
    finally:
        cf.backend.set_num_threads(old)
    (w1, h1, p1), (w2, h2, p2) = runs
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
