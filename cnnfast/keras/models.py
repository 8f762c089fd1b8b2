"""keras.models"""
from ..models import Model, Sequential, load_model  # noqa: F401
