"""edgefleet: take an AI model to a fleet of Linux edge devices and keep it running there."""

__all__ = ["__version__"]

__version__ = "0.1.0"
