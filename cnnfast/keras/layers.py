"""keras.layers"""
from .._missing import missing_names as _missing_names
from ..layers import (  # noqa: F401
                      Activation,
                      AveragePooling2D,
                      AvgPool2D,
                      BatchNormalization,
                      Conv2D,
                      Convolution2D,
                      Dense,
                      Dropout,
                      Flatten,
                      GlobalAveragePooling2D,
                      GlobalAvgPool2D,
                      GlobalMaxPool2D,
                      GlobalMaxPooling2D,
                      Input,
                      InputLayer,
                      Layer,
                      MaxPool2D,
                      MaxPooling2D,
                      RandomFlip,
                      RandomRotation,
                      RandomZoom,
                      ReLU,
                      Rescaling,
                      Reshape,
                      Softmax,
                      ZeroPadding2D,
)

__getattr__ = _missing_names("tensorflow.keras.layers")
