"""keras.models"""
from ..models import Model, Sequential  # noqa: F401
