# A binary sub-task of Fashion-MNIST (is it footwear?) fed by Python generators: a training
# generator of (x, y, sample_weight) batches with steps_per_epoch, a separable-conv CNN with
# LeakyReLU, AUC / Precision / Recall metrics, weighted accuracy, and evaluate/predict on
# generators of (x, y) batches.
import os

import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))
BATCH_SIZE = 32
FOOTWEAR = [5, 7, 9]  # sandal, sneaker, ankle boot

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:SAMPLES].reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_test = x_test[:SAMPLES // 4].reshape(-1, 28, 28, 1).astype("float32") / 255.0
y_train = np.isin(y_train[:SAMPLES], FOOTWEAR).astype("float32")
y_test = np.isin(y_test[:SAMPLES // 4], FOOTWEAR).astype("float32")
print("train:", x_train.shape, y_train.shape, y_train.dtype)

# Footwear is 3 classes of 10: weight the positives up so both classes count the same.
pos_weight = float((1 - y_train).sum() / max(y_train.sum(), 1))


def train_batches(x, y, batch_size):
    rng = np.random.default_rng(0)
    while True:
        idx = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            b = idx[start:start + batch_size]
            weights = np.where(y[b] == 1, pos_weight, 1.0).astype("float32")
            yield x[b], y[b], weights


def test_batches(x, y, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]


model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(16, 3, padding="same"),
    layers.LeakyReLU(negative_slope=0.1),
    layers.MaxPooling2D(),
    layers.SeparableConv2D(32, 3, padding="same"),
    layers.LeakyReLU(negative_slope=0.1),
    layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(32, activation="relu"),
    layers.Dense(1, activation="sigmoid"),
])
model.summary()

model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
              metrics=[keras.metrics.AUC(name="auc"), keras.metrics.Precision(name="precision"),
                       keras.metrics.Recall(name="recall")],
              weighted_metrics=["accuracy"])

steps = len(x_train) // BATCH_SIZE
history = model.fit(train_batches(x_train, y_train, BATCH_SIZE), steps_per_epoch=steps,
                    epochs=2, validation_data=(x_test, y_test),
                    verbose=0)
print(sorted(history.history))
print({k: len(v) for k, v in sorted(history.history.items())})

results = model.evaluate(test_batches(x_test, y_test, BATCH_SIZE), verbose=0,
                         return_dict=True)
print(sorted(results))
test_acc = results["accuracy"]
print(f"test accuracy {test_acc:.3f}, test auc {results['auc']:.3f}")

probs = model.predict(test_batches(x_test, y_test, BATCH_SIZE), verbose=0)
print(probs.shape, probs.dtype)
RESULT = {"history": history.history, "test_acc": test_acc, "predictions": probs}
