"""`tensorflow.python.ops`: only the modules tutorials import from."""
