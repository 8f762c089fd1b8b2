"""cnnfast: fast small CNNs on the CPU with a tf.keras-shaped API."""
__version__ = "0.1.0"
