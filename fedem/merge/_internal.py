"""The fedem internals merge needs beyond the package top levels, in one place.

Everything ``fedem.merge`` takes from below a package's ``__init__`` is imported here, so that a
move of one of these touches this file only.
"""

from __future__ import annotations

from fedem.adapter.header import ITEMSIZE, TensorInfo, read_header
from fedem.adapter.package import resolve_adapter_dir

__all__ = ["ITEMSIZE", "TensorInfo", "read_header", "resolve_adapter_dir"]
