"""`tf.random.set_seed` for scripts that `import cnnfast as tf`."""
from ._missing import missing_names as _missing_names
from .utils import set_random_seed


def set_seed(seed):
    """Seed cnnfast's random streams (same as cnnfast.utils.set_random_seed)."""
    set_random_seed(seed)


__getattr__ = _missing_names("tensorflow.random")
