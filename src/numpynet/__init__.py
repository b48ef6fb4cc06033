"""numpynet: multilayer perceptrons written from scratch in NumPy.

The package does no I/O at import and never reads ``params.yaml`` itself: the stage entry points
under ``stages/`` load the validated configuration and pass plain values into these functions.
"""

__version__ = "0.1.0"
