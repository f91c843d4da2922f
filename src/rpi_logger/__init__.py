"""RPi Logger: synchronized multi-sensor data logger."""

__version__ = "0.1.0"
