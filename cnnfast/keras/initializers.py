"""keras.initializers"""
from .._missing import missing_names as _missing_names
from ..initializers import (  # noqa: F401
                            GlorotNormal,
                            GlorotUniform,
                            HeNormal,
                            HeUniform,
                            Initializer,
                            Ones,
                            Zeros,
                            get,
)

glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_normal = HeNormal
he_uniform = HeUniform
zeros = Zeros
ones = Ones

__getattr__ = _missing_names("tensorflow.keras.initializers")
