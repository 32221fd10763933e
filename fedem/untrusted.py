"""Bounded parsing of everything fedem did not write itself: JSON and YAML from anyone.

Adapter records (``fedem.json``, ``adapter_config.json``), registry files (whether they came
by pull request or already sit on the branch) and job configs are all read here, with the same
limits, so that no door is softer than another:

- size: refused before reading (a file must be a regular file: ``/dev/zero`` or a FIFO is
  refused by its type, not by reading forever);
- depth: nesting past :data:`MAX_DEPTH` is refused (a deep list would exhaust the recursion);
- YAML anchors and aliases are refused outright (an alias bomb expands to gigabytes from a
  few hundred bytes; none of fedem's files needs them);
- duplicate mapping keys are refused (last-wins would let a file say two things);
- numbers: integers beyond ±2**63 and non-finite floats (``1e999``, ``NaN``, ``.inf``) are
  refused, so no downstream ``float()``/``int()`` overflows or turns a scale into infinity.

Each refusal is ``error(f"{where}: ...")``: the caller's FedemError subclass, one line.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from fedem.errors import FedemError

MAX_DEPTH = 32
MAX_INT = 2**63
DEFAULT_MAX_BYTES = 1 << 20

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(ValueError):
    """Internal: a limit was hit while parsing; the message says which."""


# -- files ------------------------------------------------------------------------------------------
def read_bytes(
    path: str | Path, *, max_bytes: int, error: type[FedemError] = FedemError, where=None
) -> bytes:
    """The bytes of regular file ``path``, refusing a missing, special or oversized file first."""
    path = Path(path)
    where = where or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{where}: file not found") from None
    except OSError as err:
        raise error(f"{where}: cannot open ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{where}: not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{where}: {st.st_size:,} bytes exceeds the cap of {max_bytes:,}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(max_bytes + 1)  # never past the cap, whatever the size said
        if len(raw) > max_bytes:
            raise error(f"{where}: larger than the cap of {max_bytes:,} bytes")
        return raw
    finally:
        os.close(fd)


def _text(raw: bytes, where: str, error: type[FedemError]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{where}: not UTF-8 text") from None


# -- JSON -------------------------------------------------------------------------------------------
def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) >= MAX_INT:
        raise _Refused(f"integer {text[:24]}{'…' if len(text) > 24 else ''} is out of range (|n| < 2**63)")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:24]} is not finite")
    return value


def _json_constant(name: str) -> float:
    raise _Refused(f"{name} is not a number JSON allows")


def _json_object(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def parse_json(raw: bytes | str, where: str, error: type[FedemError] = FedemError) -> Any:
    """A JSON value from ``raw`` within the module's limits; ``error`` (one line) otherwise."""
    text = raw if isinstance(raw, str) else _text(raw, where, error)
    try:
        value = json.loads(
            text,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
            object_pairs_hook=_json_object,
        )
    except _Refused as err:
        raise error(f"{where}: invalid JSON ({err})") from None
    except RecursionError:
        raise error(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as err:
        raise error(f"{where}: invalid JSON ({err})") from None
    _check_depth(value, where, error)
    return value


def parse_json_object(raw: bytes | str, where: str, error: type[FedemError] = FedemError) -> dict:
    """Like :func:`parse_json`, and the value must be an object."""
    value = parse_json(raw, where, error)
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object")
    return value


def read_json(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    error: type[FedemError] = FedemError,
    where: str | None = None,
) -> dict:
    """The JSON object in file ``path``, read within ``max_bytes``."""
    where = where or Path(path).name
    return parse_json_object(read_bytes(path, max_bytes=max_bytes, error=error, where=where), where, error)


# -- YAML -------------------------------------------------------------------------------------------
class _BoundedLoader(_Loader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader that refuses duplicate keys and out-of-range numbers."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _Refused(f"duplicate key {str(key)[:40]!r} (line {key_node.start_mark.line + 1})")
            except TypeError:
                raise _Refused(f"unhashable key (line {key_node.start_mark.line + 1})") from None
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        if abs(value) >= MAX_INT:
            raise _Refused(
                f"integer {node.value[:24]} is out of range (|n| < 2**63), line {node.start_mark.line + 1}"
            )
        return value

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(f"number {node.value[:24]} is not finite (line {node.start_mark.line + 1})")
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:map", _BoundedLoader.construct_yaml_map)
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)


def _check_yaml_events(text: str) -> None:
    """Refuse anchors, aliases and deep nesting from the event stream, before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused("YAML anchors and aliases are not allowed")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(
    raw: bytes | str, where: str, error: type[FedemError] = FedemError, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Any:
    """A YAML value from ``raw`` within the module's limits; ``error`` (one line) otherwise."""
    if len(raw) > max_bytes:
        raise error(f"{where}: {len(raw):,} bytes exceeds the cap of {max_bytes:,}")
    text = raw if isinstance(raw, str) else _text(raw, where, error)
    try:
        # The event scan runs first, always: the composer recurses per nesting level (in C for
        # the C loader), so depth must be bounded before anything is composed.
        _check_yaml_events(text)
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as err:
        raise error(f"{where}: {err}") from None
    except RecursionError:
        raise error(f"{where}: invalid YAML (nested too deeply)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())[:200]
        raise error(f"{where}: invalid YAML{at}: {problem}") from None


def read_yaml(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    error: type[FedemError] = FedemError,
    where: str | None = None,
) -> Any:
    """The YAML value in file ``path``, read within ``max_bytes``."""
    where = where or str(path)
    raw = read_bytes(path, max_bytes=max_bytes, error=error, where=where)
    return parse_yaml(raw, where, error, max_bytes=max_bytes)


def _check_depth(value: Any, where: str, error: type[FedemError]) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
