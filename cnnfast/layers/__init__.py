"""Layers with the tf.keras API: Input, Conv2D, DepthwiseConv2D, SeparableConv2D,
MaxPooling2D, AveragePooling2D, Dense, Flatten, Dropout, SpatialDropout2D, Activation, ReLU,
LeakyReLU, ELU, PReLU, Softmax, BatchNormalization, GlobalAveragePooling2D, GlobalMaxPooling2D,
RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomCrop,
Rescaling, Reshape, ZeroPadding2D."""
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax  # noqa: F401
from .base import Input, InputLayer, KerasTensor, Layer  # noqa: F401
from .convolutional import Conv2D, DepthwiseConv2D, SeparableConv2D  # noqa: F401
from .core import Activation, Dense, Dropout, Flatten, SpatialDropout2D  # noqa: F401
from .normalization import BatchNormalization  # noqa: F401
from .pooling import (  # noqa: F401
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)
from .preprocessing import (  # noqa: F401
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from .reshaping import Rescaling, Reshape, ZeroPadding2D  # noqa: F401

Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D
