"""`tf.nn`-style functions that tutorials pass as `activation=` (cnnfast.nn.relu, .softmax)."""
from .activations import relu, sigmoid, softmax, tanh  # noqa: F401
