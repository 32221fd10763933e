"""What made an output: resolved config, library versions, data fingerprint, code revision."""

from __future__ import annotations

import getpass
import importlib.metadata
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

LIBRARIES = (
    "fedem",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "huggingface_hub",
    "safetensors",
    "lm_eval",
    "mamba_ssm",
    "causal_conv1d",
    "mambapy",
    "numpy",
)


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(path: str | Path = ".") -> str | None:
    """The fedem checkout's commit, when running from one (and ``+dirty`` when modified)."""
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def contributor_name(explicit: str | None = None) -> str:
    """Who is running this: explicit, else ``FEDEM_CONTRIBUTOR``, else the OS user."""
    import os

    return explicit or os.environ.get("FEDEM_CONTRIBUTOR") or getpass.getuser()


def environment() -> dict:
    return {
        "versions": library_versions(),
        "fedem_git": git_revision(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
    }
