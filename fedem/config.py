"""Typed, frozen job configs, and their form on disk (YAML).

A config is a frozen dataclass; YAML is only how it is written down. :func:`load` reads a
file, applies ``key.path=value`` overrides, and builds the dataclass tree, rejecting unknown
keys, wrong types and impossible values with one line naming the file, the key and what was
expected. :func:`to_dict` / :func:`dump` write it back, so a config round-trips exactly.

The job dataclasses themselves live next to the jobs that use them (``fedem.train.config``,
``fedem.registry.model`` …); this module is the machinery they share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from fedem import untrusted
from fedem.errors import ConfigError
from fedem.io import atomic_write_yaml

T = TypeVar("T")


class Invalid(ValueError):
    """Raised by a dataclass ``__post_init__``/``check``: ``Invalid(field, expected)``."""

    def __init__(self, field: str, expected: str):
        super().__init__(f"{field}: expected {expected}")
        self.field = field
        self.expected = expected


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + (
            " or null" if len(args) < len(get_args(tp)) else ""
        )
    if origin in (tuple, list, Sequence):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin in (dict, Mapping):
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (tuple, list, Sequence):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (item,) = get_args(tp)[:1]
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        _, vt = get_args(tp)
        return types.MappingProxyType({str(k): _convert(vt, v, f"{key}.{k}") for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= untrusted.MAX_INT:
                raise ConfigError(f"{key}: {str(value)[:24]}… is out of range (|n| < 2**63)")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or abs(value) >= untrusted.MAX_INT:
                raise ConfigError(f"{key}: expected a finite number, got {str(value)[:24]}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {tp!r} at {key}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints re-evaluates string annotations on every call; a registry reads thousands of files.
    return get_type_hints(cls)


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from plain data, strictly. ``where`` prefixes key paths."""
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known keys: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: required key is missing")
    try:
        return cls(**kwargs)
    except Invalid as err:
        raise ConfigError(f"{prefix}{err.field}: expected {err.expected}") from None


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config tree (tuples become lists), the inverse of :func:`from_dict`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a mapping")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=3e-4"`` -> ``("train.lr", 0.0003)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.steps=100")
    try:
        value = untrusted.parse_yaml(raw, f"override {key.strip()}", ConfigError) if raw.strip() else ""
    except ConfigError:
        value = raw
    # YAML 1.1 reads "3e-4" as a string; numbers are what people mean here.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value) if any(c in value for c in ".eE") else int(value)
    return key.strip(), value


MAX_CONFIG_BYTES = 1 << 20


def read_yaml(path: str | Path) -> Any:
    """Parse a config file, bounded (:mod:`fedem.untrusted`: a regular file of at most 1 MiB, no
    anchors or aliases, no duplicate keys, bounded depth and numbers); one-line ConfigErrors."""
    return untrusted.read_yaml(path, max_bytes=MAX_CONFIG_BYTES, error=ConfigError)


def load(
    cls: type[T], path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None) plus overrides."""
    data = read_yaml(path) if path is not None else {}
    data = {} if data is None else data
    label = str(path) if path is not None else "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for key, value in items:
        if value is not None:
            _set_path(data, key, value)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None


def dump(cfg: Any, path: str | Path) -> Path:
    """Write a config atomically as YAML (the resolved form, every default spelled out)."""
    return atomic_write_yaml(path, to_dict(cfg))


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` that re-runs validation."""
    return dataclasses.replace(cfg, **changes)


__all__ = ["Invalid", "dump", "from_dict", "load", "parse_override", "read_yaml", "replace", "to_dict"]
