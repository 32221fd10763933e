"""fedem: community training of Seshu, a byte-level multilingual Mamba language model."""

__version__ = "0.1.0"
