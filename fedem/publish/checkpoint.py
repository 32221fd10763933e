"""Checkpoints on a hub: publish one (compare-and-swap, then its date tag), pull one (checked).

A checkpoint repo (``seshu``) goes through the same :class:`~fedem.hub.base.Hub` contract as an
adapter: each checkpoint is a new revision on top of its parent, and the revision id is its
identity. What makes a folder a checkpoint (:func:`check_checkpoint`): only the files of
:mod:`fedem.publish.files`, a loadable safetensors model folder
(:func:`fedem.model.check_model_dir`), and a ``fedem.json`` (:class:`~fedem.provenance.ModelRecord`)
whose ``weights_sha256`` is the folder's own (:func:`fedem.model.weights_sha256`).

The parent of a publish is the one the record names: a CPT or merge output records the
revision it continued, and the hub refuses the publish (ConflictError, nothing written) if
that is no longer the head. A root (``fedem publish`` of a pretrain output) records none and
goes only onto an empty repo. Publishing then tags the new revision (:mod:`fedem.publish.tags`);
a crash between the two leaves an untagged but complete checkpoint, and tagging again is
idempotent (:func:`fedem.publish.tags.tag_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from fedem import untrusted
from fedem.clock import Clock
from fedem.errors import FedemError, HubError, ModelError
from fedem.hub import Hub, Revision
from fedem.model import check_model_dir, resolve_model_dir, weights_sha256
from fedem.names import CARD, MAX_MESSAGE, PROVENANCE, check_free_text, check_repo_name, is_revision_id
from fedem.provenance import ModelRecord, get_path
from fedem.publish.card import model_card
from fedem.publish.files import (
    CHECKPOINT_MAX_BYTES,
    CHECKPOINT_MAX_FILES,
    CHECKPOINT_MAX_TEXT_BYTES,
    checkpoint_files,
)
from fedem.publish.tags import checkpoint_tags, tag_checkpoint

DEFAULT_REPO = "seshu"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint revision on local disk."""

    repo: str
    revision: Revision
    folder: Path
    record: ModelRecord

    @property
    def tag(self) -> str | None:
        tags = checkpoint_tags(self.repo, self.revision)
        return tags[0] if tags else None


@dataclasses.dataclass(frozen=True)
class Published:
    """What a publish made: the new revision (its id is the checkpoint's identity) and its tag."""

    repo: str
    revision: Revision
    tag: str


def read_record(folder: Path) -> ModelRecord:
    """The checkpoint record of ``folder``, read bounded (:mod:`fedem.untrusted`) and checked."""
    raw = untrusted.read_json(
        folder / PROVENANCE,
        max_bytes=CHECKPOINT_MAX_TEXT_BYTES,
        error=ModelError,
        where=f"{folder.name}/{PROVENANCE}",
    )
    return ModelRecord.from_dict(raw)


def check_checkpoint(folder: str | Path) -> ModelRecord:
    """Refuse (ModelError, one line) a folder that is not a checkpoint; return its record."""
    folder = Path(folder)
    checkpoint_files(folder)
    check_model_dir(folder)
    record = read_record(folder)
    actual = weights_sha256(folder)
    if actual != record.weights_sha256:
        raise ModelError(
            f"{folder}: weights sha256 {str(actual)[:12]} differs from the {PROVENANCE} record "
            f"{record.weights_sha256[:12]}; the weights are not the ones recorded"
        )
    return record


def check_publisher(repo: str, author: str | None) -> None:
    """A job config's checkpoint ``repo`` and ``author`` fields (``Invalid`` naming the field)."""
    from fedem.config import Invalid
    from fedem.names import MAX_PERSON, free_text_problem, repo_name_problem

    if (problem := repo_name_problem(repo)) is not None:
        raise Invalid("repo", f"a hub repo name ({problem})")
    if author is not None and (problem := free_text_problem(author, max_len=MAX_PERSON)):
        raise Invalid("author", f"a short one-line name ({problem})")


def hub_repo_id(hub: Hub, repo: str) -> str:
    """The repo's full name on its hub (``ORG/seshu`` on ``hf://``, ``seshu`` on ``file://``)."""
    repo_id = getattr(hub, "repo_id", None)
    return repo_id(repo) if callable(repo_id) else repo


def publish_checkpoint(
    hub: Hub,
    repo: str,
    folder: str | Path,
    *,
    message: str,
    author: str | None = None,
    clock: Clock | None = None,
) -> Published:
    """Publish checkpoint folder ``folder`` onto the revision its record names, then tag it.

    The folder must already hold its card and record (:func:`check_checkpoint`). ConflictError
    (nothing published) when the record's parent is no longer the head.
    """
    check_repo_name(repo, HubError)
    folder = Path(folder)
    record = check_checkpoint(folder)
    message = check_free_text(message, "message", FedemError, max_len=MAX_MESSAGE, multiline=True)
    parent = record.parent.revision if record.parent else None
    if record.parent is not None and record.parent.repo != repo:
        raise ModelError(f"{folder}: continues checkpoint repo {record.parent.repo!r}, not {repo!r}")
    if parent is None:
        hub.create_repo(repo, exist_ok=True)
        head = hub.head(repo)
        if head is not None:
            raise FedemError(
                f"repo {repo!r} on {hub.url} already has checkpoints (head {head.id[:12]}); "
                "a root checkpoint goes only onto an empty repo"
            )
    rev = hub.publish(repo, folder, message=message, parent=parent, author=author)
    tag = tag_checkpoint(hub, repo, rev.id, clock=clock)
    return Published(repo, hub.resolve(repo, rev.id), tag)


def _languages(record: ModelRecord) -> list[str]:
    """Language codes a pretrain's sources name (``embedded:te``, ``ai4bharat/samanantar:hi``)."""
    from fedem.data.spec import EMBEDDED_LANGS

    out = []
    for src in get_path(record.data, "sources", []) or []:
        code = str(src.get("name", "")).rsplit(":", 1)[-1] if isinstance(src, dict) else ""
        if code in EMBEDDED_LANGS and code not in out:
            out.append(code)
    return out


def publish_root(
    hub: Hub,
    model_dir: str | Path,
    *,
    repo: str = DEFAULT_REPO,
    author: str | None = None,
    clock: Clock | None = None,
) -> Published:
    """Publish a pretrain output (a run folder or its ``model/``) as the root checkpoint of ``repo``.

    The maintainer's first step. The model folder is not modified: its files are staged beside
    it (hard links where the file system allows, else copies) with a generated card.
    """
    model_dir = resolve_model_dir(model_dir)
    record = check_checkpoint(model_dir)
    if record.parent is not None:
        raise ModelError(
            f"{model_dir}: continues checkpoint {record.parent.repo}@{record.parent.revision[:12]}; "
            "fedem publish publishes a root (a pretrain output) only"
        )
    bpb = get_path(record.metrics, "bpb_after")
    card = model_card(
        model_name=hub_repo_id(hub, repo),
        relation=None,
        bpb={"all": bpb} if isinstance(bpb, (int, float)) and not isinstance(bpb, bool) else {},
        languages=_languages(record),
        summary=f"{record.parameters:,} parameters.",
        data_fingerprints={"pretraining data": record.data["fingerprint"]}
        if isinstance(record.data.get("fingerprint"), str)
        else None,
    )
    try:  # beside the model, so hard links work; elsewhere if its folder is read-only
        stage = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.publish-", dir=model_dir.parent))
    except OSError:
        stage = Path(tempfile.mkdtemp(prefix="fedem-publish-"))
    try:
        for src in checkpoint_files(model_dir):
            if src.name != CARD:
                link_or_copy(src, stage / src.name)
        (stage / CARD).write_text(card, encoding="utf-8")
        message = f"root checkpoint: pretrained, {record.parameters:,} parameters"
        return publish_checkpoint(hub, repo, stage, message=message, author=author, clock=clock)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``, or copy it where the file system cannot link."""
    # A hard link costs no space (a 2.8b checkpoint is 11 GB); the hub copies what it stores anyway.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# -- pull -------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where pulled checkpoints are kept: ``$FEDEM_CACHE/checkpoints``, else ``~/.cache/fedem/checkpoints``."""
    return Path(os.environ.get("FEDEM_CACHE") or Path.home() / ".cache" / "fedem") / "checkpoints"


def latest_checkpoint(hub: Hub, repo: str = DEFAULT_REPO) -> Revision:
    """The newest checkpoint of ``repo``; one line naming the fix when there is none."""
    try:
        head = hub.head(repo)
    except HubError:
        head = None
    if head is None:
        raise HubError(
            f"no checkpoint in repo {repo!r} on {hub.url}; publish the root first: "
            f"fedem publish RUN_DIR --hub {hub.url} --repo {repo}"
        )
    return head


def pull_checkpoint(
    hub: Hub,
    repo: str = DEFAULT_REPO,
    revision: str | None = None,
    *,
    dest: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Checkpoint:
    """Download checkpoint ``revision`` (an id, a unique prefix, a tag; None: the newest) and check it.

    Checked: the checkpoint caps before anything is fetched, then :func:`check_checkpoint`, and
    that the record's parent is the hub's parent of this revision. The files land in a hidden
    sibling and move to ``dest`` only once checked. ``dest`` defaults to the cache, one folder
    per revision id (revisions are immutable), re-checked on every use.
    """
    check_repo_name(repo, HubError)
    rev = hub.resolve(repo, revision) if revision is not None else latest_checkpoint(hub, repo)
    if not is_revision_id(rev.id):
        raise HubError(f"hub returned {rev.id[:80]!r} for {repo!r}, which is not a revision id")
    if dest is None:
        hub_key = hashlib.sha256(hub.url.encode()).hexdigest()[:16]
        dest = Path(cache_dir) if cache_dir else default_cache_dir()
        dest = dest / hub_key / repo / rev.id
        if (dest / PROVENANCE).is_file():
            return Checkpoint(repo, rev, dest, _checked(dest, rev))
        shutil.rmtree(dest, ignore_errors=True)  # a partial copy never checks; start again
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubError(f"cannot pull into {dest}: it exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.pull-{uuid.uuid4().hex[:8]}"
    try:
        hub.download(repo, rev.id, staging, max_files=CHECKPOINT_MAX_FILES, max_bytes=CHECKPOINT_MAX_BYTES)
        record = _checked(staging, rev)
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Checkpoint(repo, rev, dest, record)


def _checked(folder: Path, rev: Revision) -> ModelRecord:
    record = check_checkpoint(folder)
    recorded = record.parent.revision if record.parent else None
    if recorded != rev.parent:
        raise ModelError(
            f"revision {rev.id[:12]} of {rev.repo!r}: {PROVENANCE} records parent "
            f"{(recorded or '(none)')[:12]} but the hub's parent is {(rev.parent or '(none)')[:12]}"
        )
    return record
