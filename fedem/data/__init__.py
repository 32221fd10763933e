"""Data: sources, multilingual mixing, packing without padding, held-out split."""

from fedem.data.dataset import PackedData, SourceStats, build_dataset
from fedem.data.packing import encode_documents, pack, split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import EMBEDDED_LANGS, DataSpec, SourceSpec

__all__ = [
    "EMBEDDED_LANGS",
    "DataSpec",
    "PackedData",
    "SourceSpec",
    "SourceStats",
    "build_dataset",
    "encode_documents",
    "load_documents",
    "pack",
    "split_heldout",
]
