"""slimray: distributed, pruning-aware training that physically removes channels.

Importing this package is cheap: TensorFlow, Keras and Ray load only in the modules that need them.
"""

__version__ = "0.1.0"
