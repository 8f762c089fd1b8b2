# A tf.data input pipeline (map, cache, shuffle, batch, prefetch) feeding fit, with the
# usual callbacks: EarlyStopping, ModelCheckpoint (best model) and TensorBoard.
import os
import tempfile

import tensorflow as tf
from tensorflow import keras

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))
BATCH_SIZE = 64
AUTOTUNE = tf.data.AUTOTUNE

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train, y_train = x_train[:SAMPLES], y_train[:SAMPLES]
x_test, y_test = x_test[:SAMPLES // 4], y_test[:SAMPLES // 4]


def preprocess(image, label):
    image = tf.cast(image, tf.float32) / 255.0
    image = tf.expand_dims(image, -1)
    return image, label


train_ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
            .map(preprocess, num_parallel_calls=AUTOTUNE)
            .cache()
            .shuffle(1000, seed=1)
            .batch(BATCH_SIZE)
            .prefetch(AUTOTUNE))
val_ds = (tf.data.Dataset.from_tensor_slices((x_test, y_test))
          .map(preprocess)
          .batch(BATCH_SIZE)
          .prefetch(buffer_size=AUTOTUNE))

for images, labels in train_ds.take(1):
    print("batch:", images.shape, labels.shape)

model = keras.Sequential([
    keras.layers.Input(shape=(28, 28, 1)),
    keras.layers.Conv2D(32, 3, activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(64, 3, activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Flatten(),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

workdir = tempfile.mkdtemp()
checkpoint_path = os.path.join(workdir, "best_model.keras")
log_dir = os.path.join(workdir, "logs")
callbacks = [
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
    keras.callbacks.ModelCheckpoint(checkpoint_path, monitor="val_accuracy",
                                    save_best_only=True),
    keras.callbacks.TensorBoard(log_dir=log_dir),
]
history = model.fit(train_ds, validation_data=val_ds, epochs=2, callbacks=callbacks,
                    verbose=0)
print(sorted(history.history))
print("log dirs:", sorted(os.listdir(log_dir)))
best = keras.models.load_model(checkpoint_path)
test_loss, test_acc = best.evaluate(val_ds, verbose=0)
print("Test accuracy:", test_acc)
RESULT = {"history": history.history, "test_acc": test_acc}
