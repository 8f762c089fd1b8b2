# TensorFlow's "basic classification" tutorial (Fashion-MNIST), Sequential list form.
import os

import numpy as np
import tensorflow as tf

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))  # the test runs a subset

fashion_mnist = tf.keras.datasets.fashion_mnist
(train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
train_images, train_labels = train_images[:SAMPLES], train_labels[:SAMPLES]
test_images, test_labels = test_images[:SAMPLES // 4], test_labels[:SAMPLES // 4]
class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
print(train_images.shape, len(train_labels), test_images.shape)

train_images = train_images / 255.0
test_images = test_images / 255.0

model = tf.keras.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(128, activation='relu'),
    tf.keras.layers.Dense(10)
])
model.summary()
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
history = model.fit(train_images, train_labels, epochs=2, verbose=2)

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print('\nTest accuracy:', test_acc)

probability_model = tf.keras.Sequential([model, tf.keras.layers.Softmax()])
predictions = probability_model.predict(test_images, verbose=0)
print(predictions.shape, np.argmax(predictions[0]), class_names[test_labels[0]])

img = np.expand_dims(test_images[1], 0)
predictions_single = probability_model.predict(img, verbose=0)
print(img.shape, predictions_single.shape)
RESULT = {"history": history.history, "test_acc": test_acc, "predictions": predictions}
