from ..saving import load_model  # noqa: F401
from .cloning import clone_model  # noqa: F401
from .model import Model  # noqa: F401
from .node import Node  # noqa: F401
from .sequential import Sequential  # noqa: F401
