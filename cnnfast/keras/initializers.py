"""keras.initializers"""
from ..initializers import (GlorotNormal, GlorotUniform, HeNormal, HeUniform,  # noqa: F401
                            Initializer, Ones, Zeros, get)

glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_normal = HeNormal
he_uniform = HeUniform
zeros = Zeros
ones = Ones
