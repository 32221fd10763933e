"""Push: validate a folder and publish it as the next revision (a compare-and-swap on its parent)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from fedem.adapter import package as pkg
from fedem.adapter.policy import DEFAULT_POLICY, AdapterPolicy, validate_adapter_name
from fedem.adapter.validate import check_files, validate_adapter
from fedem.errors import AdapterRejected, ConflictError, FedemError, HubError
from fedem.hub import Hub, Revision
from fedem.names import MAX_MESSAGE, check_free_text
from fedem.provenance import ParentRef
from fedem.relay.follow import _check_follow
from fedem.relay.pull import _hub, _short, _when, author_label


# -- push -------------------------------------------------------------------------------------------
def push_adapter(
    hub: str | Hub,
    name: str,
    folder: str | Path,
    *,
    message: str | None = None,
    parent: str | None = None,
    author: str | None = None,
    policy: AdapterPolicy = DEFAULT_POLICY,
) -> Revision:
    """Validate ``folder`` and publish it as the next revision of ``name``; return the revision.

    The parent is ``parent`` (a revision id, prefix or tag) or else the one recorded in
    ``fedem.json`` (None: a fresh adapter, only onto an empty repo). If the head moved since,
    ConflictError names the new head, its author and time; ``folder`` is never modified.
    """
    validate_adapter_name(name)
    hub = _hub(hub)
    folder = pkg.resolve_adapter_dir(folder)
    if not folder.is_dir():
        raise AdapterRejected(f"{folder}: adapter folder not found")
    check_files(folder, policy)  # before any copy: a FIFO or a device must never be opened
    with tempfile.TemporaryDirectory(prefix="fedem-push-") as tmp:
        # Publish exactly the bytes that were validated: a copy nobody else writes to.
        staged = Path(tmp) / name
        shutil.copytree(folder, staged, symlinks=True)
        report = validate_adapter(staged, None, policy, name=name)
        meta = json.loads((staged / pkg.PROVENANCE).read_text())
        recorded_repo = pkg.get_path(meta, "parent.repo")
        if recorded_repo not in (None, name):
            raise AdapterRejected(f"{folder}: continues adapter {recorded_repo!r}, not {name!r}")
        parent_id = _push_parent(hub, name, folder, report.parent_revision, parent)
        if parent_id is None:
            hub.create_repo(name, exist_ok=True)
        else:
            _check_continues(hub, name, parent_id, meta, staged)
            if report.parent_revision is None:  # an explicit --parent for a fresh adapter: record it
                p = hub.resolve(name, parent_id)
                parent_ref = ParentRef.of(name, p.id, p.author, p.time)
                pkg.restamp(
                    staged, {"parent": parent_ref.to_dict()}, card_base=pkg.get_path(meta, "base.repo")
                )
        author = check_free_text(
            author or os.environ.get("FEDEM_AUTHOR") or report.contributor, "author", FedemError
        )
        message = check_free_text(
            message
            or (
                f"{report.contributor}: {meta['metrics']['steps']} steps, held-out bits/byte "
                f"{report.bpb_before:.4f} -> {report.bpb_after:.4f}"
            ),
            "message",
            FedemError,
            max_len=MAX_MESSAGE,
            multiline=True,
        )
        try:
            return hub.publish(name, staged, message=message, parent=parent_id, author=author)
        except ConflictError:
            raise ConflictError(
                _conflict_message(hub, name, parent_id, folder, report.weights_sha256)
            ) from None


def _push_parent(hub: Hub, name: str, folder: Path, recorded: str | None, explicit: str | None) -> str | None:
    if recorded is not None:
        try:
            hub.resolve(name, recorded)
        except HubError:
            raise HubError(
                f"{folder} was trained from revision {_short(recorded)} of {name!r}, which is not on {hub.url}"
            ) from None
    if explicit is None:
        return recorded
    explicit_id = hub.resolve(name, explicit).id
    if recorded is not None and recorded != explicit_id:
        raise FedemError(
            f"{folder} was trained from revision {_short(recorded)} (fedem.json), not --parent "
            f"{_short(explicit_id)}; push it without --parent"
        )
    return explicit_id


def _check_continues(hub: Hub, name: str, parent_id: str, meta: dict, staged: Path) -> None:
    """A hop must keep its parent's base and LoRA shape; checked from the parent's small files."""
    try:
        theirs = pkg.parse_json_object(hub.read_file(name, pkg.PROVENANCE, parent_id), pkg.PROVENANCE)
        their_cfg = pkg.parse_json_object(hub.read_file(name, pkg.CONFIG, parent_id), pkg.CONFIG)
    except AdapterRejected:
        return  # an unreadable parent record cannot vouch for anything; the CAS still protects the chain
    moved = "follow" in meta
    if moved:
        _check_follow(hub, name, parent_id, theirs, meta)
    for field in ("base.arch", "base.sha256", "base.lora_shapes_sha256"):
        if field == "base.sha256" and moved:
            continue  # checked by _check_follow: one of the two allowed moves to a newer checkpoint
        if field == "base.lora_shapes_sha256" and None in (
            pkg.get_path(theirs, field),
            pkg.get_path(meta, field),
        ):
            continue  # recorded since 0.2; a 0.1.0 parent has none to compare
        if pkg.get_path(theirs, field) != pkg.get_path(meta, field):
            raise AdapterRejected(
                f"different base: revision {_short(parent_id)} of {name!r} has {field} "
                f"{str(pkg.get_path(theirs, field))[:12]}, this adapter {str(pkg.get_path(meta, field))[:12]}"
            )
    mine = json.loads((staged / pkg.CONFIG).read_text())
    for field in ("r", "target_modules"):
        if their_cfg.get(field) != mine.get(field):
            raise AdapterRejected(
                f"{pkg.CONFIG}: {field}={mine.get(field)!r} differs from revision {_short(parent_id)} "
                f"({their_cfg.get(field)!r}); a relay hop keeps its parent's LoRA shape"
            )


def _conflict_message(hub: Hub, name: str, parent_id: str | None, folder: Path, weights_sha256: str) -> str:
    try:
        head = hub.head(name)
    except FedemError:
        head = None
    if head is None:
        moved = "its head moved"
    else:
        desc = f"{_short(head.id)} by {author_label(head)} at {_when(head.time)}"
        moved = f"its head is now {desc}"
        try:
            theirs = pkg.parse_json_object(hub.read_file(name, pkg.PROVENANCE, head.id), pkg.PROVENANCE)
            if theirs.get("weights_sha256") == weights_sha256:
                return f"adapter {name!r} on {hub.url}: {folder} is already published as its head ({desc})"
        except FedemError:
            pass  # an unreadable head record just means it is not ours
    return (
        f"adapter {name!r} on {hub.url} moved on: {moved}, not your parent {_short(parent_id)}; "
        f"nothing was published and {folder} is untouched; pull the new head "
        f"(fedem finetune --hub {hub.url} --adapter {name} ...) and train again, then push"
    )
