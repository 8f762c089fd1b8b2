# "The journey of an image through a CNN": a model over every layer's output.
import os

import numpy as np
import tensorflow as tf
from tensorflow.keras import Model
from tensorflow.keras.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))

(x_train, y_train), (x_test, y_test) = tf.keras.datasets.fashion_mnist.load_data()
x_train = (x_train[:SAMPLES] / 255.0).reshape(-1, 28, 28, 1)
y_train = y_train[:SAMPLES]

model = tf.keras.models.Sequential([
    Input(shape=(28, 28, 1)),
    Conv2D(32, (3, 3), padding='same', activation='relu'),
    MaxPooling2D(2, 2),
    Conv2D(64, (3, 3), padding='same', activation='relu'),
    MaxPooling2D(2, 2),
    Flatten(),
    Dense(128, activation='relu'),
    Dense(10, activation='softmax'),
])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, epochs=1, verbose=0)

layer_outputs = [layer.output for layer in model.layers]
# Keras 3 raises on Sequential.input (never "called"); .inputs works in both engines.
activation_model = Model(inputs=model.inputs, outputs=layer_outputs)
activations = activation_model.predict(x_train[:1], verbose=0)
for layer, fmap in zip(model.layers, activations):
    print(layer.name, fmap.shape)
conv_maps = [a for l, a in zip(model.layers, activations) if 'conv' in l.name]
print("first conv map range:", float(conv_maps[0].min()) >= 0.0)
RESULT = {"shapes": [a.shape for a in activations], "names": [l.name for l in model.layers]}
