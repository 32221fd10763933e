"""Read a safetensors header without trusting it: sizes, dtypes, shapes and offsets, no tensors.

Format (https://huggingface.co/docs/safetensors): 8 bytes little-endian u64 ``N``, then ``N``
bytes of JSON mapping tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an
optional ``__metadata__`` of strings), then the data buffer. We parse it ourselves, with caps
checked before reading, so a hostile file cannot make us allocate or seek beyond it, and so
every size is proven consistent with the file before ``safetensors`` loads anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path

from fedem.errors import AdapterRejected

# Bytes per element of each safetensors dtype name.
ITEMSIZE: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offset into the data buffer
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    # JSON allows duplicate keys and parsers disagree on which wins; an adapter may not rely on it.
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_header(
    path: str | Path, *, max_header_bytes: int, allowed_dtypes: tuple[str, ...]
) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file, checked for consistency with the file's size.

    Raises AdapterRejected (one line) on a truncated file, an oversized or malformed header,
    a dtype outside ``allowed_dtypes``, a shape whose size disagrees with its offsets, or a data
    buffer with gaps, overlaps or trailing bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    where = path.name
    if size < 8:
        raise AdapterRejected(
            f"{where}: not a safetensors file ({size} bytes, shorter than its 8-byte header length)"
        )
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > max_header_bytes:
            raise AdapterRejected(
                f"{where}: safetensors header of {n:,} bytes exceeds the cap of {max_header_bytes:,}"
            )
        if n > size - 8:
            raise AdapterRejected(f"{where}: safetensors header length {n:,} runs past the end of the file")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as err:
        raise AdapterRejected(f"{where}: malformed safetensors header ({err})") from None
    except RecursionError:  # deep nesting exhausts the parser's stack; not a ValueError
        raise AdapterRejected(f"{where}: malformed safetensors header (nested too deeply)") from None
    if not isinstance(header, dict):
        raise AdapterRejected(f"{where}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise AdapterRejected(f"{where}: safetensors __metadata__ must map strings to strings")
    tensors = {name: _tensor(where, name, entry, allowed_dtypes) for name, entry in header.items()}
    _check_layout(where, tensors, data_bytes=size - 8 - n)
    return tensors


def _tensor(where: str, name: str, entry: object, allowed_dtypes: tuple[str, ...]) -> TensorInfo:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise AdapterRejected(f"{where}: tensor {name!r} must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in allowed_dtypes:
        raise AdapterRejected(
            f"{where}: tensor {name!r} has dtype {dtype!r}; allowed: {', '.join(allowed_dtypes)}"
        )
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise AdapterRejected(f"{where}: tensor {name!r} has an invalid shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise AdapterRejected(f"{where}: tensor {name!r} has invalid data_offsets {offsets!r}")
    info = TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])
    if info.numel * ITEMSIZE[dtype] != info.end - info.begin:
        raise AdapterRejected(
            f"{where}: tensor {name!r} of shape {list(shape)} {dtype} needs {info.numel * ITEMSIZE[dtype]:,} "
            f"bytes but its offsets span {info.end - info.begin:,}"
        )
    return info


def _check_layout(where: str, tensors: dict[str, TensorInfo], data_bytes: int) -> None:
    # The buffer must be tiled exactly: no overlaps (aliasing), no gaps or trailing bytes (smuggling).
    pos = 0
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != pos:
            raise AdapterRejected(
                f"{where}: tensor {t.name!r} starts at byte {t.begin:,}, expected {pos:,} (gap or overlap)"
            )
        pos = t.end
    if pos != data_bytes:
        raise AdapterRejected(
            f"{where}: data buffer holds {data_bytes:,} bytes but its tensors cover {pos:,}"
        )
