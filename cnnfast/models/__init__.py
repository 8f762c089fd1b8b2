from .model import Model  # noqa: F401
from .sequential import Sequential  # noqa: F401
