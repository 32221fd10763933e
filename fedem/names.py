"""The names fedem agrees on everywhere: adapters, hub repos, tags, revision ids, files, archs.

Each rule has exactly one home, here, so that ``fedem push``, the relay, the hub backends and
the registry give the same verdict on the same name (a test feeds all of them one list). This
module imports nothing heavy: the registry workflows load it with only pyyaml and click.

Callers raise their own error type (AdapterRejected, HubError, RegistryError) with the reason
these functions produce, so the message reads the same at every door.
"""

from __future__ import annotations

import re

from fedem.errors import FedemError

# -- adapter names ----------------------------------------------------------------------------------
# An adapter name becomes a hub repo name, a registry file name (registry/adapters/<name>.yaml)
# and a folder name in caches and run folders, so it is strict: lower case, no org prefix, no
# path tricks, short enough for every one of those uses.
ADAPTER_NAME_PATTERN = "[a-z0-9][a-z0-9._-]*"
MAX_ADAPTER_NAME = 64
_ADAPTER_RE = re.compile(ADAPTER_NAME_PATTERN)
ADAPTER_NAME_RULE = (
    f"lower-case letters, digits, '.', '_', '-', starting with a letter or digit, "
    f"at most {MAX_ADAPTER_NAME} characters, no '..'"
)


def adapter_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid adapter name, or None when it is."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if len(name) > MAX_ADAPTER_NAME:
        return f"{len(name)} characters, at most {MAX_ADAPTER_NAME} allowed"
    if not _ADAPTER_RE.fullmatch(name) or ".." in name:
        return f"use {ADAPTER_NAME_RULE}"
    return None


def check_adapter_name(
    name: object, error: type[FedemError] = FedemError, where: str = "adapter name"
) -> str:
    """Return ``name`` if it is a valid adapter name; else raise ``error`` with the one reason."""
    problem = adapter_name_problem(name)
    if problem is not None:
        raise error(f"invalid {where} {str(name)[:80]!r}: {problem}")
    return name  # type: ignore[return-value]


def is_adapter_name(name: object) -> bool:
    return adapter_name_problem(name) is None


# -- hub repos and tags -----------------------------------------------------------------------------
# A hub repo is an adapter (or checkpoint) name, optionally behind one owner: ``org/name``. Hub
# owners (HF orgs and users) may use upper case; the repo part follows the adapter rule.
_OWNER = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_OWNER_RE = re.compile(_OWNER)
MAX_OWNER = 96
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_TAG = 128


def repo_name_problem(name: object) -> str | None:
    """Why ``name`` is not ``NAME`` or ``OWNER/NAME``, or None when it is."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    owner, sep, repo = name.rpartition("/")
    if sep and (not _OWNER_RE.fullmatch(owner) or ".." in owner or len(owner) > MAX_OWNER):
        return "the owner before '/' must be letters, digits, '.', '_', '-' (one 'org/' prefix at most)"
    problem = adapter_name_problem(repo)
    return None if problem is None else f"the repo name: {problem}"


def check_repo_name(name: object, error: type[FedemError] = FedemError) -> str:
    """Return ``name`` if it is a valid hub repo name; else raise ``error``."""
    problem = repo_name_problem(name)
    if problem is not None:
        raise error(f"invalid repo name {str(name)[:80]!r}: {problem}")
    return name  # type: ignore[return-value]


def check_tag(tag: object, error: type[FedemError] = FedemError) -> str:
    """Return ``tag`` if it is a valid tag (and cannot be mistaken for a revision id)."""
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag) or ".." in tag or len(tag) > MAX_TAG:
        raise error(
            f"invalid tag {str(tag)[:80]!r}: use letters, digits, '.', '_', '-', starting with a letter or digit"
        )
    if is_revision_id(tag):
        raise error(f"invalid tag {tag!r}: it looks like a revision id")
    return tag


# -- revision ids -----------------------------------------------------------------------------------
# A revision id is what a backend makes: a git commit (40 hex, hf://) or a sha256 (64 hex,
# file://). Ids read back from a hub become folder names (the relay's pull cache), so anything
# else is refused, never trusted.
GIT_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_git_commit(value: object) -> bool:
    return isinstance(value, str) and GIT_COMMIT_RE.fullmatch(value) is not None


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


def is_revision_id(value: object) -> bool:
    """Whether ``value`` has the shape of a revision id of some backend."""
    return is_git_commit(value) or is_sha256(value)


# -- free text --------------------------------------------------------------------------------------
# Contributor names, hub authors and revision messages reach the hub, PR comments and terminals.
MAX_PERSON = 100
MAX_MESSAGE = 2000


def free_text_problem(value: object, *, max_len: int, multiline: bool = False) -> str | None:
    """Why ``value`` is not acceptable free text (a string, bounded, printable), or None."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value.strip():
        return "expected a non-empty string"
    if len(value) > max_len:
        return f"{len(value)} characters, at most {max_len} allowed"
    allowed = "\n\t" if multiline else ""
    if any((not c.isprintable()) and c not in allowed for c in value):
        return "control characters are not allowed" + ("" if multiline else " (one line only)")
    return None


def check_free_text(
    value: object,
    field: str,
    error: type[FedemError] = FedemError,
    *,
    max_len: int = MAX_PERSON,
    multiline=False,
) -> str:
    """Return ``value`` if it is acceptable free text for ``field``; else raise ``error``."""
    problem = free_text_problem(value, max_len=max_len, multiline=multiline)
    if problem is not None:
        raise error(f"{field} {str(value)[:40]!r}: {problem}")
    return value  # type: ignore[return-value]


# -- files ------------------------------------------------------------------------------------------
PROVENANCE = "fedem.json"  # every output fedem writes: what made it
RUN_CONFIG = "config.yaml"  # the resolved job config, in run folders and packages
CARD = "README.md"  # a model or adapter card
MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_safe_file_name(name: object) -> bool:
    """A file name that can travel anywhere: no path parts, no control or shell characters."""
    return isinstance(name, str) and _FILE_NAME_RE.fullmatch(name) is not None and ".." not in name


# Pickle-based formats run code when loaded: refused wherever a model or adapter is read.
PICKLE_SUFFIXES: tuple[str, ...] = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

# -- architectures ----------------------------------------------------------------------------------
# transformers' model_type of each Seshu architecture. The model presets build both, the LoRA
# policy names the safe targets of each, configs and adapters are checked against this list.
ARCHS: tuple[str, ...] = ("mamba2", "mamba")
