"""`from tensorflow.python.ops.confusion_matrix import confusion_matrix`."""
from ...math import confusion_matrix  # noqa: F401
