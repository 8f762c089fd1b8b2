"""keras.layers"""
from ..layers import (Activation, AveragePooling2D, AvgPool2D, Conv2D, Convolution2D,  # noqa: F401
                      Dense, Dropout, Flatten, Input, InputLayer, Layer, MaxPool2D,
                      MaxPooling2D, ReLU, Softmax)
