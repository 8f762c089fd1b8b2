# Batch normalization after each convolution, global average pooling instead of Flatten, and
# a learning-rate schedule given to the optimizer.
import os

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))
tf.random.set_seed(7)

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:SAMPLES][..., np.newaxis].astype("float32") / 255.0
x_test = x_test[:SAMPLES // 4][..., np.newaxis].astype("float32") / 255.0
y_train, y_test = y_train[:SAMPLES], y_test[:SAMPLES // 4]


def conv_block(filters):
    # momentum=0.9: the moving statistics catch up within a short run
    return [layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu")]


model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    *conv_block(32),
    layers.MaxPooling2D(),
    *conv_block(64),
    layers.MaxPooling2D(),
    *conv_block(64),
    layers.GlobalAveragePooling2D(),
    layers.Dense(10, activation="softmax"),
])
model.summary()

lr_schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate=1e-2, decay_steps=100, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr_schedule),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=3, batch_size=32, validation_split=0.1,
                    verbose=0)
print(sorted(history.history))
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
print("Test accuracy:", test_acc)
print("steps:", int(model.optimizer.iterations))
bn = model.layers[1]
print(bn.name, [w.name for w in bn.weights], [w.name for w in bn.trainable_weights])
RESULT = {"history": history.history, "test_acc": test_acc}
