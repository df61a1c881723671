"""Eunomia Stream: container runtime security as a stream-processing pipeline on Kafka."""

__version__ = "0.1.0"
__all__ = ["__version__"]
