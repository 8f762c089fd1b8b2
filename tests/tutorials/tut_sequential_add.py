# A CNN tutorial: Sequential .add(), EarlyStopping and validation_data.
import os

import numpy as np
from tensorflow import keras
from tensorflow.keras.callbacks import EarlyStopping
from tensorflow.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tensorflow.keras.models import Sequential

SAMPLES = int(os.environ.get("TUTORIAL_SAMPLES", "60000"))

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = x_train[:SAMPLES].reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_test = x_test[:SAMPLES // 4].reshape(-1, 28, 28, 1).astype("float32") / 255.0
y_train, y_test = y_train[:SAMPLES], y_test[:SAMPLES // 4]

model = Sequential()
model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))
model.add(MaxPooling2D(2, 2))
model.add(Conv2D(filters=64, kernel_size=(3, 3), activation='relu'))
model.add(MaxPooling2D((2, 2), strides=2))
model.add(Flatten())
model.add(Dense(units=128, activation='relu'))
model.add(Dropout(0.3))
model.add(Dense(10, activation='softmax'))
model.summary()
print("params:", model.count_params())

model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
              loss='sparse_categorical_crossentropy', metrics=['accuracy'])
early = EarlyStopping(monitor='val_loss', patience=1, restore_best_weights=True)
history = model.fit(x_train, y_train, batch_size=64, epochs=3,
                    validation_data=(x_test, y_test), callbacks=[early], verbose=0)
print(sorted(history.history), len(history.history['loss']))
loss, acc = model.evaluate(x_test, y_test, verbose=0)
print(f"test accuracy {acc:.3f}")
RESULT = {"history": history.history, "test_acc": acc}
