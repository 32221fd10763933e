"""The exceptions fedem raises on purpose.

Every :class:`FedemError` carries one line meant for a person: it names the file, field or
resource and says what was expected. The CLI prints it as ``error: <line>`` and exits with
code 2, never with a traceback. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class FedemError(Exception):
    """An expected, user-facing failure. ``str(err)`` is one line."""

    exit_code = 2

    def __init__(self, message: str):
        # Collapse newlines: the contract is one line, fit for a terminal or a PR comment.
        super().__init__(" ".join(str(message).split()))


class ConfigError(FedemError):
    """A config file, key or value is wrong."""


class DataError(FedemError):
    """A data source is missing, empty or unreadable."""


class ModelError(FedemError):
    """A model or adapter directory cannot be used."""


class AdapterRejected(ModelError):
    """An adapter failed validation and was not loaded."""


class ConflictError(FedemError):
    """A compare-and-swap failed: somebody else moved the head first. Nothing was written."""


class HubError(FedemError):
    """A hub operation failed (auth, missing repo or revision, transport)."""


class RegistryError(FedemError):
    """A registry file or claim is invalid."""
