"""Validate an adapter package before anything loads it: on push, on every pull, before evaluating.

:func:`validate_adapter` runs cheap checks first and loads tensors last, only once every size,
name, dtype and shape is proven sane from the file system and the safetensors header:

1. files: only safetensors/JSON/Markdown/YAML, flat, no symlinks, within the count and size caps;
2. ``fedem.json``: complete provenance, the right adapter name, weights sha256 matches;
3. ``adapter_config.json``: LoRA only, rank within the cap, allowed targets (fedem.adapter.lora's
   policy), no option our loader would ignore (DoRA, rsLoRA, rank patterns, extra modules);
4. base: same architecture, same base weights (sha256), same base repo/revision when both known;
5. safetensors header, parsed by hand: allowed dtypes, and exactly the LoRA A/B keys of the
   targeted layers with the base's shapes (or, without a base, well-formed A/B pairs of rank r);
6. tensors: loaded one at a time from safetensors (never pickle), all values finite.

Each refusal is an :class:`~fedem.errors.AdapterRejected` with a specific one-line reason.
"""

from __future__ import annotations

import dataclasses
import math
import re
import stat
from pathlib import Path

import torch
from safetensors import safe_open

from fedem.adapter import package as pkg
from fedem.adapter.base import BaseInfo, as_base_info, shapes_sha256
from fedem.adapter.header import TensorInfo, read_header
from fedem.adapter.lora import lora_spec_from_config
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.errors import AdapterRejected
from fedem.io import sha256_file
from fedem.names import ARCHS, PICKLE_SUFFIXES, is_safe_file_name

_KEY_RE = re.compile(r"base_model\.model\.((?:[A-Za-z0-9_]+\.)*([A-Za-z0-9_]+))\.lora_([AB])\.weight")


@dataclasses.dataclass(frozen=True)
class AdapterReport:
    """What a valid adapter is: enough to log, compare and decide without reopening it."""

    folder: Path
    name: str
    arch: str
    rank: int
    alpha: float
    targets: tuple[str, ...]
    tensors: int
    parameters: int
    bytes: int
    weights_sha256: str
    base_sha256: str
    base_checked: bool  # shapes and identity were checked against a real base, not only self-consistency
    parent_revision: str | None
    contributor: str
    bpb_before: float
    bpb_after: float


def validate_adapter(
    folder: str | Path,
    base: BaseInfo | str | Path | torch.nn.Module | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
    *,
    name: str | None = None,
) -> AdapterReport:
    """Check the package in ``folder``; return its report or raise AdapterRejected (one line).

    ``base`` is the base model it will be used with (a :class:`BaseInfo`, a model folder, a
    transformers model or config); None checks everything that does not need one. ``name``,
    when given, must be the adapter name recorded in ``fedem.json``.
    """
    folder = Path(folder)
    if name is not None:
        validate_adapter_name(name)
    total = check_files(folder, policy)
    meta = pkg.read_json(folder / pkg.PROVENANCE, max_bytes=policy.max_text_bytes)
    pkg.check_provenance_fields(meta)
    recorded = meta["adapter"]
    validate_adapter_name(recorded)
    if name is not None and recorded != name:
        raise AdapterRejected(
            f"{pkg.PROVENANCE}: this is adapter {recorded!r}, not {name!r} (train it with --set name={name})"
        )
    weights = folder / pkg.WEIGHTS
    sha = sha256_file(weights)
    if sha != meta["weights_sha256"]:
        raise AdapterRejected(
            f"{pkg.WEIGHTS}: sha256 {sha[:12]}… does not match fedem.json weights_sha256 "
            f"{str(meta['weights_sha256'])[:12]}… (weights were altered after training)"
        )
    arch = _check_arch(meta["base"]["arch"])
    metrics = _check_metrics(meta["metrics"])
    cfg = pkg.read_json(folder / pkg.CONFIG, max_bytes=policy.max_text_bytes)
    r, alpha, targets = _check_lora_config(cfg, arch, policy)
    info = as_base_info(base)
    if info is not None:
        _check_same_base(meta, info)
    tensors = read_header(
        weights, max_header_bytes=policy.max_header_bytes, allowed_dtypes=policy.allowed_dtypes
    )
    # Checks that need no base come first, so every door (push has no base) says the same line.
    _check_keys_self(tensors, targets, r)
    # The shapes the trainer recorded from its base must be the shapes these tensors have. This
    # needs no base either, so push refuses an adapter that does not fit the base it names with the same
    # line as every later door. (Records from 0.1.0 carry no such hash.)
    recorded_shapes = pkg.get_path(meta, "base.lora_shapes_sha256")
    if recorded_shapes is not None and recorded_shapes != shapes_sha256(
        {k: t.shape for k, t in tensors.items()}
    ):
        raise AdapterRejected(
            f"{pkg.WEIGHTS}: tensor shapes do not fit the base it names "
            f"({pkg.PROVENANCE} base.lora_shapes_sha256 {str(recorded_shapes)[:12]}…)"
        )
    if info is not None:
        expected = info.lora_shapes(targets, r)
        if recorded_shapes is not None and recorded_shapes != shapes_sha256(expected):
            raise AdapterRejected(
                f"different base: {pkg.PROVENANCE} records the LoRA shapes of another base "
                f"(base.lora_shapes_sha256 {str(recorded_shapes)[:12]}…)"
            )
        _check_keys_against_base(tensors, expected)
    _check_finite(weights, tensors)
    return AdapterReport(
        folder=folder,
        name=recorded,
        arch=arch,
        rank=r,
        alpha=alpha,
        targets=targets,
        tensors=len(tensors),
        parameters=sum(t.numel for t in tensors.values()),
        bytes=total,
        weights_sha256=sha,
        base_sha256=str(meta["base"]["sha256"]),
        base_checked=info is not None,
        parent_revision=pkg.parent_revision(meta),
        contributor=str(meta["contributor"]),
        bpb_before=metrics["bpb_before"],
        bpb_after=metrics["bpb_after"],
    )


def check_files(folder: Path, policy: AdapterPolicy = DEFAULT_POLICY) -> int:
    """Refuse unexpected files before reading or copying any; return the folder's size in bytes.

    Judged from ``lstat`` alone: only regular files with names from a safe character set, no
    symlinks, FIFOs, devices, sockets or sub-folders (opening a FIFO would block a push forever).
    """
    if not folder.is_dir():
        raise AdapterRejected(f"{folder}: adapter folder not found")
    entries = sorted(folder.iterdir())
    if len(entries) > policy.max_files:
        raise AdapterRejected(f"{folder.name}: {len(entries)} files exceeds the cap of {policy.max_files}")
    sizes = {}
    for p in entries:
        if not is_safe_file_name(p.name):
            raise AdapterRejected(
                f"{p.name[:60]!r}: file names in an adapter use letters, digits, '.', '_', '-' only"
            )
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise AdapterRejected(f"{p.name}: symlinks are refused (an adapter holds plain files)")
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise AdapterRejected(
                f"{p.name}: pickle files run code when loaded and are refused; adapters are safetensors"
            )
        if stat.S_ISDIR(mode):
            raise AdapterRejected(f"{p.name}/: sub-folders are refused (an adapter is one flat folder)")
        if not stat.S_ISREG(mode):
            raise AdapterRejected(f"{p.name}: not a regular file (FIFOs, devices and sockets are refused)")
        if p.suffix not in policy.allowed_suffixes:
            raise AdapterRejected(
                f"{p.name}: only {', '.join(policy.allowed_suffixes)} files are allowed in an adapter"
            )
        sizes[p.name] = p.lstat().st_size
    for required in pkg.REQUIRED_FILES:
        if required not in sizes:
            raise AdapterRejected(f"{folder.name}: missing {required}")
    for name, size in sizes.items():
        if not name.endswith(".safetensors") and size > policy.max_text_bytes:
            raise AdapterRejected(
                f"{name}: {size:,} bytes exceeds the cap of {policy.max_text_bytes:,} for a text file"
            )
    total = sum(sizes.values())
    if total > policy.max_bytes:
        raise AdapterRejected(
            f"{folder.name}: {total:,} bytes exceeds the adapter size cap of {policy.max_bytes:,}"
        )
    extra = [n for n in sizes if n.endswith(".safetensors") and n != pkg.WEIGHTS]
    if extra:
        raise AdapterRejected(f"{extra[0]}: unexpected weights file; an adapter holds only {pkg.WEIGHTS}")
    return total


def _check_arch(arch: object) -> str:
    # Checked before anything looks the arch up (target policy, base shapes): a hostile record
    # must be refused in one line, not crash a dict lookup.
    if not isinstance(arch, str) or arch not in ARCHS:
        raise AdapterRejected(
            f"{pkg.PROVENANCE}: base.arch {str(arch)[:40]!r} is not a supported architecture "
            f"(expected one of {', '.join(ARCHS)})"
        )
    return arch


def _check_metrics(metrics: object) -> dict:
    """The recorded metrics, type-checked: they are shown, compared and gated on downstream."""
    if not isinstance(metrics, dict):
        raise AdapterRejected(f"{pkg.PROVENANCE}: metrics must be an object")
    out = dict(metrics)
    for field in ("bpb_before", "bpb_after"):
        v = metrics[field]
        # bool is an int to Python, and NaN/inf pass float(): neither is a measurement.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise AdapterRejected(
                f"{pkg.PROVENANCE}: metrics.{field} must be a finite number (got {str(v)[:40]!r})"
            )
        out[field] = float(v)
    for field in ("steps", "tokens"):
        v = metrics[field]
        if type(v) is not int or v < 0:
            raise AdapterRejected(
                f"{pkg.PROVENANCE}: metrics.{field} must be a non-negative integer (got {str(v)[:40]!r})"
            )
    return out


def _check_lora_config(cfg: dict, arch: str, policy: AdapterPolicy) -> tuple[int, float, tuple[str, ...]]:
    spec = lora_spec_from_config(cfg, arch, max_rank=policy.max_rank)
    return spec.r, float(spec.alpha), spec.targets


def _check_same_base(meta: dict, base: BaseInfo) -> None:
    recorded = meta["base"]
    if recorded["arch"] != base.arch:
        raise AdapterRejected(
            f"different base: the adapter was trained on a {recorded['arch']} Seshu, this base is {base.arch}"
        )
    if base.sha256 is not None and recorded["sha256"] != base.sha256:
        raise AdapterRejected(
            f"different base: the adapter was trained on base weights sha256 {str(recorded['sha256'])[:12]}…, "
            f"this base is {base.sha256[:12]}…"
        )
    for field in ("repo", "revision"):
        mine, theirs = getattr(base, field), recorded.get(field)
        if mine is not None and theirs is not None and mine != theirs:
            raise AdapterRejected(
                f"different base: the adapter records base {field} {theirs!r}, this base is {mine!r}"
            )


def _check_keys_against_base(tensors: dict[str, TensorInfo], expected: dict[str, tuple[int, int]]) -> None:
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise AdapterRejected(
            f"{pkg.WEIGHTS}: unexpected tensor {unexpected[0]!r} (only LoRA A/B weights of the targeted layers are allowed)"
        )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise AdapterRejected(f"{pkg.WEIGHTS}: missing tensor {missing[0]!r} that this base expects")
    for k, t in tensors.items():
        if t.shape != expected[k]:
            raise AdapterRejected(
                f"{pkg.WEIGHTS}: {k} has shape {list(t.shape)}, this base expects {list(expected[k])}"
            )


def _check_keys_self(tensors: dict[str, TensorInfo], targets: tuple[str, ...], r: int) -> None:
    """Without a base: every key is a LoRA A/B of a target, A is (r, i), B is (o, r), in pairs."""
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for k, t in tensors.items():
        m = _KEY_RE.fullmatch(k)
        if m is None or m.group(2) not in targets:
            raise AdapterRejected(
                f"{pkg.WEIGHTS}: unexpected tensor {k!r} (only LoRA A/B weights of {', '.join(targets)} are allowed)"
            )
        if len(t.shape) != 2:
            raise AdapterRejected(f"{pkg.WEIGHTS}: {k} has shape {list(t.shape)}, expected a matrix")
        pairs.setdefault(m.group(1), {})[m.group(3)] = t
    if not pairs:
        raise AdapterRejected(f"{pkg.WEIGHTS}: holds no LoRA tensors")
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise AdapterRejected(f"{pkg.WEIGHTS}: {module} has lora_{next(iter(ab))} without its partner")
        if ab["A"].shape[0] != r or ab["B"].shape[1] != r:
            raise AdapterRejected(
                f"{pkg.WEIGHTS}: {module} has A {list(ab['A'].shape)} and B {list(ab['B'].shape)}, "
                f"inconsistent with rank r={r}"
            )


def _check_finite(weights: Path, tensors: dict[str, TensorInfo]) -> None:
    # One tensor at a time: peak memory is the largest tensor, whose size the header proved.
    try:
        with safe_open(str(weights), framework="pt") as f:
            for k in sorted(tensors):
                if not torch.isfinite(f.get_tensor(k)).all():
                    raise AdapterRejected(f"{pkg.WEIGHTS}: {k} has non-finite values (NaN or inf)")
    except AdapterRejected:
        raise
    except Exception as err:  # safetensors raises its own types for corrupt files
        raise AdapterRejected(f"{pkg.WEIGHTS}: unreadable safetensors ({err})") from None
