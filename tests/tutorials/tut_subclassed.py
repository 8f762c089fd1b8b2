# Model subclassing: the layers are attributes, call() wires them; fit, evaluate, predict,
# summary, and saving the weights.
import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = (x_train[:SAMPLES] / 255.0).reshape(-1, 28, 28, 1).astype("float32")
x_test = (x_test[:SAMPLES // 4] / 255.0).reshape(-1, 28, 28, 1).astype("float32")
y_train, y_test = y_train[:SAMPLES], y_test[:SAMPLES // 4]


class FashionCNN(keras.Model):
    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(32, 3, activation="relu")
        self.pool1 = layers.MaxPooling2D()
        self.conv2 = layers.Conv2D(64, 3, activation="relu")
        self.pool2 = layers.MaxPooling2D()
        self.flatten = layers.Flatten()
        self.dropout = layers.Dropout(0.3)
        self.dense = layers.Dense(128, activation="relu")
        self.classifier = layers.Dense(num_classes, activation="softmax")

    def call(self, inputs, training=False):
        x = self.pool1(self.conv1(inputs))
        x = self.pool2(self.conv2(x))
        x = self.flatten(x)
        x = self.dense(x)
        x = self.dropout(x, training=training)
        return self.classifier(x)


model = FashionCNN()
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(),
              metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=2, batch_size=64, validation_split=0.1,
                    verbose=0)
model.summary()
print(sorted(history.history))
print([layer.name for layer in model.layers])
print(model.get_config()["num_classes"], len(model.trainable_weights))
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
print("Test accuracy:", test_acc)
predictions = model.predict(x_test[:5], verbose=0)
print("predicted classes:", predictions.shape, np.argmax(predictions, axis=1).shape)

weights_path = os.path.join(tempfile.mkdtemp(), "fashion_cnn.weights.h5")
model.save_weights(weights_path)
restored = FashionCNN()
restored(x_test[:1])
restored.load_weights(weights_path)
print("restored equal:", bool(np.allclose(restored.predict(x_test[:5], verbose=0),
                                          predictions, atol=1e-6)))
RESULT = {"history": history.history, "test_acc": test_acc, "predictions": predictions}
