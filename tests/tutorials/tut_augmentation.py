# Data augmentation layers in front of a small CNN, plus Dropout: the layers are active only
# while training.
import os

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))
keras.utils.set_random_seed(42)

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = np.expand_dims(x_train[:SAMPLES], -1).astype("float32") / 255.0
x_test = np.expand_dims(x_test[:SAMPLES // 4], -1).astype("float32") / 255.0
y_train, y_test = y_train[:SAMPLES], y_test[:SAMPLES // 4]

data_augmentation = keras.Sequential([
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.1),
    layers.RandomZoom(0.1),
], name="data_augmentation")

augmented = data_augmentation(x_train[:9], training=True)
print("augmented batch:", augmented.shape)

model = keras.Sequential([
    layers.Input(shape=(28, 28, 1)),
    data_augmentation,
    layers.Conv2D(32, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),
    layers.Flatten(),
    layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
model.summary()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=2,
                    validation_data=(x_test, y_test), verbose=0)
print(sorted(history.history.keys()))
# augmentation is off at inference: two predictions of the same images agree
p1 = model.predict(x_test[:16], verbose=0)
p2 = model.predict(x_test[:16], verbose=0)
print("deterministic at inference:", bool(np.allclose(p1, p2)))
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
print(f"Test accuracy: {test_acc:.3f}")
RESULT = {"history": history.history, "test_acc": test_acc, "predictions": p1}
