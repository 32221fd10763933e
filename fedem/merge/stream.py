"""The streaming merge: base folder + adapters -> a merged HF model folder, one tensor at a time.

Cost is the physical floor plus the arithmetic: every base file is read once, in order, and the
output written once. A tensor no adapter touches is copied byte for byte; a touched one is
decoded, merged in fp32 (:func:`fedem.merge.methods.merged_weight`) and rounded once. A sharded
base (``model.safetensors.index.json`` + shards) is read and written shard by shard, with the
same shard names and the index copied verbatim, so the result loads wherever the base did.

Refusals (one line, nothing written): an existing output folder, a bad spec or weight count,
any adapter that fails validation against the base, adapters of different bases, and a base
whose weights are not the ones the adapters were trained on. That last check costs nothing:
the base's sha256 is computed from the bytes streamed, and compared before the folder is
renamed into place (:func:`fedem.io.atomic_dir`), so a failed or killed merge leaves no output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from fedem.adapter import BaseInfo
from fedem.errors import AdapterRejected, ModelError
from fedem.io import atomic_dir, atomic_write_json
from fedem.merge import inputs as inp
from fedem.merge.methods import merged_weight, one_thread
from fedem.merge.spec import MergeSpec
from fedem.merge.tensors import FLOAT_DTYPES, TensorFile, stream_file
from fedem.model import check_model_dir, resolve_model_dir
from fedem.names import MODEL_WEIGHTS as SINGLE
from fedem.names import PROVENANCE
from fedem.provenance import ModelRecord, created, get_path
from fedem.untrusted import parse_json_object, read_json

INDEX = "model.safetensors.index.json"
# Copied from the base: what makes the folder a standard HF model (config, tokenizer). Nothing
# else: the base's own fedem.json, card and training config describe the base, not the merge.
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)
_MAX_JSON = 100 << 20


@dataclasses.dataclass(frozen=True)
class MergeResult:
    """What a merge wrote, and what it cost in I/O (bytes through fedem.merge's own reads)."""

    output: Path
    method: str
    adapters: int
    merged: int  # tensors changed
    copied: int  # tensors copied byte for byte
    bytes_read: int
    bytes_written: int
    base_sha256: str | None  # the base's identity; None when it could not be checked
    weights_sha256: str | None  # the output's identity (fedem.model.weights_sha256)

    def summary(self) -> str:
        return (
            f"merged {self.merged} tensors from {self.adapters} adapter{'s' if self.adapters != 1 else ''} "
            f"({self.method}), copied {self.copied} unchanged, into {self.output}; "
            f"read {self.bytes_read / 1e6:,.1f} MB, wrote {self.bytes_written / 1e6:,.1f} MB"
        )


@dataclasses.dataclass(frozen=True)
class BaseLayout:
    """Which weights files a base folder has: one ``model.safetensors``, or shards and an index."""

    folder: Path
    shards: tuple[str, ...]
    index: bytes | None  # the index file's bytes, copied verbatim
    weight_map: dict[str, str] | None

    @classmethod
    def read(cls, folder: Path) -> BaseLayout:
        # transformers prefers the single file when both exist; so do we.
        if (folder / SINGLE).is_file():
            return cls(folder, (SINGLE,), None, None)
        path = folder / INDEX
        if not path.is_file():
            raise ModelError(f"{folder}: no {SINGLE} and no {INDEX}")
        if path.stat().st_size > _MAX_JSON:
            raise ModelError(f"{INDEX}: larger than {_MAX_JSON:,} bytes")
        raw = path.read_bytes()  # followed if a link: a base from the HF cache is links to blobs
        wmap = parse_json_object(raw, INDEX, ModelError).get("weight_map")
        if not isinstance(wmap, dict) or not wmap:
            raise ModelError(f"{INDEX}: expected a non-empty weight_map object")
        for name, shard in wmap.items():
            # Shard names come from a file: only plain *.safetensors names in this folder.
            if not (
                isinstance(shard, str)
                and shard.endswith(".safetensors")
                and Path(shard).name == shard
                and not shard.startswith(".")
            ):
                raise ModelError(f"{INDEX}: {name!r} maps to {str(shard)[:60]!r}, not a shard file name")
            if not (folder / shard).is_file():
                raise ModelError(f"{INDEX}: shard {shard} is missing")
        return cls(folder, tuple(sorted(set(wmap.values()))), raw, dict(wmap))

    def identity(self, sha256s: dict[str, str]) -> str | None:
        """The weights' identity from each file's sha256, as :func:`fedem.model.weights_sha256` defines it.

        One file: its sha256. Shards: the sha256 of their "name sha256" lines in name order,
        when the shards are exactly the folder's ``model-*.safetensors`` (what that rule lists);
        otherwise None, and the identity is not checked.
        """
        if self.index is None:
            return sha256s[SINGLE]
        listed = sorted(p.name for p in self.folder.glob("model-*.safetensors"))
        if listed != sorted(sha256s):
            return None
        return hashlib.sha256("".join(f"{n} {sha256s[n]}\n" for n in listed).encode()).hexdigest()

    def check_shard(self, shard: str, file: TensorFile) -> None:
        """Each shard holds exactly the tensors the index assigns it."""
        if self.weight_map is None:
            return
        expected = {k for k, v in self.weight_map.items() if v == shard}
        if set(file.tensors) != expected:
            odd = sorted(set(file.tensors) ^ expected)[0]
            raise ModelError(f"{INDEX}: {shard} and the index disagree about tensor {odd!r}")


def merge_to_dir(
    base_dir: str | Path,
    adapters: Sequence[str | Path],
    spec: MergeSpec,
    output: str | Path,
    *,
    revisions: Sequence[str | None] | None = None,
) -> MergeResult:
    """Merge ``adapters`` into the base in ``base_dir`` and write a new model folder ``output``.

    ``base_dir`` is a model folder (or a pretrain run folder holding ``model/``); ``adapters`` are
    adapter packages (or finetune run folders), merged with ``spec.weights`` in the order given.
    ``revisions`` are their hub revisions, recorded in provenance (default: what each
    ``fedem.json`` records). Raises a one-line FedemError, having written nothing, on bad input.
    """
    output = Path(output)
    if output.exists() or output.is_symlink():
        raise ModelError(f"{output}: already exists; a merge never overwrites (choose another output)")
    with one_thread(), contextlib.ExitStack() as open_files:
        folder = check_model_dir(resolve_model_dir(base_dir))
        layout = BaseLayout.read(folder)
        info = _base_info(folder)
        adapters_in = inp.open_adapters(adapters, info, spec.weights_for(len(adapters)), revisions=revisions)
        open_files.callback(inp.close_all, adapters_in)
        expected_sha = inp.common_base_sha256([a.report for a in adapters_in])
        base_meta = _read_meta(folder / PROVENANCE)
        _check_recorded_identity(base_meta, expected_sha, layout)
        planned = inp.plan(adapters_in)
        files = [open_files.enter_context(TensorFile(folder / s)) for s in layout.shards]
        _check_planned(layout, files, planned, info)
        with _no_trace(output):
            return _write(
                output,
                layout,
                files,
                adapters_in,
                planned,
                spec,
                expected_sha,
                base_meta,
                Path(base_dir).name,
            )


def _write(
    output, layout, files, adapters_in, planned, spec, expected_sha, base_meta, base_name
) -> MergeResult:
    def merge_one(name, w0):
        return merged_weight(w0, inp.terms_for(adapters_in, name, planned[name]), spec, name)

    shard_sha: dict[str, str] = {}
    out_sha: dict[str, str] = {}
    written = 0
    with atomic_dir(output) as tmp:
        for shard, src in zip(layout.shards, files, strict=True):
            with open(tmp / shard, "wb") as dst:
                touched = {n for n in planned if n in src.tensors}
                shard_sha[shard], out_sha[shard], n = stream_file(src, dst, merge_one, touched)
                dst.flush()
                os.fsync(dst.fileno())  # the rename publishes the folder: its bytes must be on disk first
            written += n
        base_sha = layout.identity(shard_sha)
        if base_sha is not None and base_sha != expected_sha:
            raise AdapterRejected(
                f"different base: the adapters were trained on base weights sha256 {expected_sha[:12]}…, "
                f"this base is {base_sha[:12]}…"
            )
        if layout.index is not None:
            (tmp / INDEX).write_bytes(layout.index)
        for name in SIDE_FILES:
            if (layout.folder / name).is_file():
                shutil.copyfile(layout.folder / name, tmp / name)
        copied = sum(len(f.tensors) for f in files) - len(planned)
        out_identity = layout.identity(out_sha)  # the same shard names: the same rule applies
        record = ModelRecord(
            created=created(),
            # The folder's name only: a local path would publish the merger's disk layout.
            init=base_name,
            init_sha256=base_sha,
            config=_merged_config(base_meta, adapters_in),
            data={},
            metrics={},
            parameters=sum(t.numel for f in files for t in f.tensors.values()),
            weights_sha256=out_identity,
            extra={
                "merge": spec.record(len(adapters_in)),
                "base": {"path": base_name, "sha256": base_sha, "identity_checked": base_sha is not None},
                "adapters": [a.record() for a in adapters_in],
                "tensors": {"merged": len(planned), "copied": copied},
                "shards": {"base": shard_sha, "output": out_sha} if layout.index is not None else None,
            },
        )
        atomic_write_json(tmp / PROVENANCE, record.to_dict())
    return MergeResult(
        output=output,
        method=spec.method,
        adapters=len(adapters_in),
        merged=len(planned),
        copied=copied,
        bytes_read=sum(f.bytes_read for f in files) + sum(a.file.bytes_read for a in adapters_in),
        bytes_written=written,
        base_sha256=base_sha,
        weights_sha256=out_identity,
    )


def _merged_config(base_meta: dict, adapters_in) -> dict:
    """The merged model's ``config.data``: the base's training mixture, with the held-out
    fraction that still holds for the merge.

    The mixture is the base's (the adapters only nudge it): a finetune of the merged model replays
    it (fedem.data.replay), so dropping it would make every hop after a merge replay the embedded
    corpus instead of what the chain trained on. Held-out sets nest (fedem.train.jobs): a document
    is held out by a fraction f when its hash is below f, so the merge never trained on documents
    below the smallest fraction of the base and every adapter. Recording it keeps a finetune of
    the merged model from scoring what it saw; when one of them records none, none is claimed.
    """
    data = get_path(base_meta, "config.data")
    data = {k: v for k, v in data.items() if k != "heldout_fraction"} if isinstance(data, dict) else {}
    base = get_path(base_meta, "config.data.heldout_fraction")
    fractions = [base if isinstance(base, (int, float)) and not isinstance(base, bool) else None]
    fractions += [a.heldout_fraction for a in adapters_in]
    if all(f is not None for f in fractions):
        data["heldout_fraction"] = min(float(f) for f in fractions)
    return {"data": data} if data else {}


def _base_info(base_dir: Path) -> BaseInfo:
    """The base's architecture and Linear shapes, from its config (weights are hashed as streamed)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(base_dir, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{base_dir}: unreadable config.json ({str(err).splitlines()[0]})") from None
    return BaseInfo.from_config(config)


def _read_meta(path: Path) -> dict:
    """The base's own fedem.json, or {} when it has none (a model from elsewhere) or it is unreadable."""
    if not path.is_file():
        return {}
    try:
        return read_json(path, max_bytes=_MAX_JSON, error=ModelError)
    except ModelError:
        return {}


def _check_recorded_identity(base_meta: dict, expected_sha: str, layout: BaseLayout) -> None:
    """Refuse early when the base's own fedem.json already says it is another base.

    The streamed hash is the real check; this one only saves a full pass when the answer is known.
    """
    recorded = base_meta.get("weights_sha256")
    if isinstance(recorded, str) and recorded != expected_sha:
        raise AdapterRejected(
            f"different base: the adapters were trained on base weights sha256 {expected_sha[:12]}…, "
            f"this base records {recorded[:12]}… ({PROVENANCE})"
        )


def _check_planned(layout: BaseLayout, files: list[TensorFile], planned: dict, info: BaseInfo) -> None:
    """Every weight an adapter changes exists once, as a float matrix of the shape it expects."""
    where: dict[str, TensorFile] = {}
    for shard, f in zip(layout.shards, files, strict=True):
        layout.check_shard(shard, f)
        for name in f.tensors:
            if name in where:
                raise ModelError(f"{shard}: tensor {name!r} is also in {where[name].path.name}")
            where[name] = f
    for name in planned:
        module = name.removesuffix(".weight")
        if name not in where:
            raise ModelError(f"{layout.folder}: the adapters change {name}, which the base's weights lack")
        t = where[name].tensors[name]
        if t.shape != info.linear_shapes[module]:
            raise ModelError(
                f"{where[name].path.name}: {name} has shape {list(t.shape)}, its config says "
                f"{list(info.linear_shapes[module])}"
            )
        if t.dtype not in FLOAT_DTYPES:
            raise ModelError(
                f"{where[name].path.name}: {name} is {t.dtype}; only float weights can be merged"
            )


@contextlib.contextmanager
def _no_trace(path: Path):
    """On failure, remove the parent folders that writing ``path`` created (only while empty)."""
    created = []
    p = path.absolute().parent
    while not p.exists():
        created.append(p)  # deepest first
        p = p.parent
    try:
        yield
    except BaseException:
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty: never removes what someone else put there
        raise
