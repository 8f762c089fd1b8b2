# Functional API: Input, chained calls, one-hot labels, categorical_crossentropy,
# validation_split and the history dict.
import os

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers
from tensorflow.keras.utils import to_categorical

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))
tf.random.set_seed(42)

(x_train, y_train), (x_test, y_test) = tf.keras.datasets.fashion_mnist.load_data()
x_train = np.expand_dims(x_train[:SAMPLES], -1).astype("float32") / 255
x_test = np.expand_dims(x_test[:SAMPLES // 4], -1).astype("float32") / 255
y_train = to_categorical(y_train[:SAMPLES], 10)
y_test = to_categorical(y_test[:SAMPLES // 4], num_classes=10)
print("x_train shape:", x_train.shape, "y_train shape:", y_train.shape)

inputs = tf.keras.Input(shape=(28, 28, 1))
x = layers.Conv2D(32, kernel_size=(3, 3), activation="relu")(inputs)
x = layers.MaxPooling2D(pool_size=(2, 2))(x)
x = layers.Conv2D(64, kernel_size=(3, 3), activation=tf.nn.relu)(x)
x = layers.MaxPooling2D(pool_size=(2, 2))(x)
x = layers.Flatten()(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = tf.keras.Model(inputs=inputs, outputs=outputs)
model.summary()

model.compile(loss=tf.keras.losses.categorical_crossentropy, optimizer="adam",
              metrics=["accuracy"])
history = model.fit(x=x_train, y=y_train, batch_size=128, epochs=2, validation_split=0.1,
                    verbose=0)
print(list(history.history.keys()))
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
print([l.name for l in model.layers], model.get_layer(index=1).name)
RESULT = {"history": history.history, "test_acc": score[1]}
