# A regularized CNN tutorial: L2 weight decay on the kernels, class weights for an unbalanced
# subset, a learning-rate schedule, steps_per_epoch and predictions read with .numpy().
import os

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers, regularizers
from tensorflow.keras.optimizers.schedules import ExponentialDecay

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:SAMPLES].reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_test = x_test[:SAMPLES // 4].reshape(-1, 28, 28, 1).astype("float32") / 255.0
y_train, y_test = y_train[:SAMPLES], y_test[:SAMPLES // 4]

model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu", kernel_regularizer=regularizers.l2(1e-4)),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(64, activation="relu", kernel_regularizer=regularizers.l1_l2(l1=1e-5, l2=1e-4),
                 bias_regularizer="l2"),
    layers.Dense(10, activation="softmax"),
])
model.summary()

counts = np.bincount(y_train, minlength=10)
class_weight = {i: float(len(y_train) / (10 * max(c, 1))) for i, c in enumerate(counts)}
schedule = ExponentialDecay(1e-3, decay_steps=100, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=3, steps_per_epoch=6,
                    class_weight=class_weight, validation_data=(x_test, y_test),
                    validation_freq=[1, 3], verbose=0)
print(sorted(history.history), len(history.history["loss"]), len(history.history["val_loss"]))
print("penalties:", len(model.losses))
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy {acc:.3f}")
probs = model(x_test[:5]).numpy()
print(probs.shape, probs.dtype, tf.argmax(probs, axis=1).numpy().shape)
RESULT = {"history": history.history, "test_acc": acc, "predictions": probs}
