"""Registry test fixtures (helpers live in ``_helpers``)."""

from ._helpers import clock, git_identity, make_remote  # noqa: F401
