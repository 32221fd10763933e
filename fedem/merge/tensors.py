"""safetensors files read by byte range, and written by streaming the base's layout.

Why not ``safetensors.safe_open`` for the base: its handle maps the file, and reading the
``in_proj`` tensors of a 181 MB bf16 model through one handle raised peak RSS by 177 MB
(measured, safetensors 0.8). Here the header is parsed by fedem's hardened reader
(:func:`fedem.adapter.header.read_header`: caps, dtypes, offsets tiling the buffer exactly)
and each tensor is one ``pread`` into a fresh buffer, so memory is one tensor at a time and
every byte read is counted. Nothing is ever unpickled: safetensors holds raw little-endian
arrays, decoded with ``torch.frombuffer``.

A merge changes values, never dtypes or shapes, so the output file has the base's header,
byte for byte, and the same data layout: :func:`stream_file` copies the header and each
untouched tensor's bytes verbatim and writes the merged tensors in their place, in file order.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from fedem.errors import AdapterRejected, FedemError, ModelError
from fedem.merge._internal import ITEMSIZE, TensorInfo, read_header

# safetensors dtype name -> torch dtype, for the tensors a merge decodes (floating point only).
FLOAT_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}
MAX_HEADER_BYTES = 100 << 20  # safetensors' own cap
COPY_CHUNK = 4 << 20


class TensorFile:
    """An open safetensors file: its validated header, and tensors read one at a time by ``pread``."""

    def __init__(self, path: str | Path, *, error: type[FedemError] = ModelError):
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as err:
            raise error(f"{self.path}: cannot open ({err.strerror})") from None
        try:
            # Parse through the descriptor's own inode (Linux /proc), so a file swapped in under
            # the same name after opening cannot pair one file's header with another's data.
            via = Path(f"/proc/self/fd/{self.fd}")
            where = via if via.exists() else self.path
            try:
                self.tensors: dict[str, TensorInfo] = read_header(
                    where, max_header_bytes=MAX_HEADER_BYTES, allowed_dtypes=tuple(ITEMSIZE)
                )
            except AdapterRejected as err:
                raise error(f"{self.path.name}: {str(err).split(': ', 1)[-1]}") from None
            (n,) = struct.unpack("<Q", os.pread(self.fd, 8, 0))
            self.data_start = 8 + n
            self.size = os.fstat(self.fd).st_size
            self.bytes_read = 0  # through this object (the header parse above not counted)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def in_file_order(self) -> list[TensorInfo]:
        return sorted(self.tensors.values(), key=lambda t: t.begin)

    def read_into(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` from the file at ``offset`` (one read may return less than asked)."""
        done = 0
        while done < len(view):
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n <= 0:
                raise ModelError(f"{self.path.name}: truncated at byte {offset + done:,}")
            done += n
        self.bytes_read += done

    def read_bytes(self, info: TensorInfo) -> bytearray:
        """The raw bytes of one tensor (a fresh buffer)."""
        buf = bytearray(info.end - info.begin)
        self.read_into(memoryview(buf), self.data_start + info.begin)
        return buf

    def read(self, name: str) -> torch.Tensor:
        """One floating-point tensor, decoded from its bytes (never unpickled)."""
        info = self.tensors[name]
        return decode(self.read_bytes(info), info, self.path.name)

    def sha256(self) -> str:
        """sha256 of the whole file as this descriptor sees it."""
        h = hashlib.sha256()
        buf = bytearray(COPY_CHUNK)
        view = memoryview(buf)
        for off in range(0, self.size, COPY_CHUNK):
            n = min(COPY_CHUNK, self.size - off)
            self.read_into(view[:n], off)
            h.update(view[:n])
        return h.hexdigest()


def decode(buf: bytearray, info: TensorInfo, where: str) -> torch.Tensor:
    dtype = FLOAT_DTYPES.get(info.dtype)
    if dtype is None:
        raise ModelError(
            f"{where}: {info.name} has dtype {info.dtype}; only floating-point weights can be merged"
        )
    if not buf:
        return torch.empty(info.shape, dtype=dtype)
    return torch.frombuffer(buf, dtype=dtype).reshape(info.shape)


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The little-endian bytes of a CPU tensor, without a copy when it is contiguous."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


_DONE = object()


class _Writer(threading.Thread):
    """Writes queued byte buffers to ``dst`` in order, hashing them, off the caller's thread.

    File writes and ``hashlib`` release the GIL, so this overlaps the caller's arithmetic. The
    queue is short: it bounds the bytes in flight. An error is kept and re-raised to the caller
    at its next :meth:`put` or at :meth:`finish`.
    """

    def __init__(self, dst: BinaryIO, depth: int = 2):
        super().__init__(daemon=True)
        self.dst, self.sha256 = dst, hashlib.sha256()
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (data := self.queue.get()) is not _DONE:
            if self.error is None:
                try:
                    self.dst.write(data)
                    self.sha256.update(data)
                except BaseException as err:  # handed to the caller, never lost
                    self.error = err

    def put(self, data) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(data)

    def finish(self) -> None:
        self.queue.put(_DONE)
        self.join()
        if self.error is not None:
            raise self.error


class _Reader(threading.Thread):
    """Reads ``src`` in file order, hashing it, into a short queue: reads overlap the arithmetic.

    Items are ``(tensor info, bytes)``: whole tensors for those in ``touched``, 4 MiB chunks of
    the others, and ``(None, header)`` first. The caller takes them with :meth:`get` until
    ``_DONE``, and calls :meth:`cancel` if it stops early (which unblocks and ends the thread).
    """

    def __init__(self, src: TensorFile, touched: set[str], depth: int = 2):
        super().__init__(daemon=True)
        self.src, self.touched, self.sha256 = src, touched, hashlib.sha256()
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop, self.error, self.nread, self.ended = threading.Event(), None, 0, False

    def _items(self):
        src = self.src
        header = bytearray(src.data_start)
        src.read_into(memoryview(header), 0)
        yield None, header
        for info in src.in_file_order():
            if info.name in self.touched:
                yield info, src.read_bytes(info)
                continue
            # A fresh buffer per chunk: the writer may still hold the previous one.
            for off in range(info.begin, info.end, COPY_CHUNK):
                chunk = bytearray(min(COPY_CHUNK, info.end - off))
                src.read_into(memoryview(chunk), src.data_start + off)
                yield info, chunk

    def run(self) -> None:
        try:
            for info, data in self._items():
                if self.stop.is_set():
                    break
                self.sha256.update(data)
                self.nread += len(data)
                self.queue.put((info, data))
        except BaseException as err:  # handed to the caller, never lost
            self.error = err
        finally:
            self.queue.put(_DONE)

    def get(self):
        item = self.queue.get()
        if item is _DONE:
            self.ended = True
            if self.error is not None:
                raise self.error
        return item

    def cancel(self) -> None:
        self.stop.set()
        while not self.ended:  # drain, so a blocked put returns and the thread ends
            self.ended = self.queue.get() is _DONE
        self.join()


def stream_file(
    src: TensorFile,
    dst: BinaryIO,
    merge: Callable[[str, torch.Tensor], torch.Tensor],
    touched: set[str],
) -> tuple[str, str, int]:
    """Write ``src`` to ``dst`` with each tensor in ``touched`` replaced by ``merge(name, tensor)``.

    Everything is read once, in file order, so the sha256 of the input comes for free (the base's
    identity is checked against it); the output's sha256 is computed as it is written. Returns
    (input sha256, output sha256, bytes read). Reading and writing (each with its hashing) run on
    two threads; the arithmetic runs here, on the tensors in between.
    """
    with contextlib.suppress(AttributeError, OSError):  # read ahead: the whole file is wanted, in order
        os.posix_fadvise(src.fd, 0, 0, os.POSIX_FADV_WILLNEED)
    reader, writer = _Reader(src, touched), _Writer(dst)
    reader.start()
    writer.start()
    try:
        while (item := reader.get()) is not _DONE:
            info, data = item
            if info is None or info.name not in touched:
                writer.put(data)  # header and untouched bytes, verbatim (never decoded or re-rounded)
                continue
            base = decode(data, info, src.path.name)
            merged = merge(info.name, base)
            if merged.dtype != base.dtype or tuple(merged.shape) != info.shape:
                raise AssertionError(f"{info.name}: merge changed dtype or shape")  # a bug, not bad input
            writer.put(tensor_bytes(merged))
    except BaseException:
        reader.cancel()
        with contextlib.suppress(BaseException):  # the first error is the one that propagates
            writer.finish()
        raise
    reader.join()
    writer.finish()
    if reader.nread != src.size:  # the header's layout tiles the file exactly (read_header checked)
        raise ModelError(f"{src.path.name}: read {reader.nread:,} of {src.size:,} bytes")
    return reader.sha256.hexdigest(), writer.sha256.hexdigest(), reader.nread
