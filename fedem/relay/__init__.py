"""The relay: pull an adapter from a hub, validate it, train it one hop further, push it back.

One adapter is one hub repo; each hop is one revision whose parent is the revision it was
trained from. The hub's compare-and-swap on the parent makes concurrent hops safe: of two
contributors who trained on the same head, the first push wins and the second gets a
:class:`~fedem.errors.ConflictError` telling them who moved the head and when, and nothing of
theirs is lost (their folder is never touched; push publishes from a validated copy).

Every adapter is validated (:func:`fedem.adapter.validate_adapter`) before it is loaded: on pull,
before training, after training and again on push. A hop never silently starts a fresh adapter:
that takes ``new=True`` (``--new``) and an empty repo. Lineage and tags live in
:mod:`fedem.adapter.lineage` and are re-exported here.
"""

from fedem.adapter.lineage import LineageEntry, format_lineage, lineage, merged_tag, tag_revision
from fedem.relay.follow import CHECKPOINT_PREFIX
from fedem.relay.hop import RelayHop, relay_finetune
from fedem.relay.pull import Pulled, _cached_pull, _checked, author_label, default_cache_dir, pull_adapter
from fedem.relay.push import push_adapter

__all__ = [
    "CHECKPOINT_PREFIX",
    "LineageEntry",
    "Pulled",
    "RelayHop",
    "_cached_pull",
    "_checked",
    "author_label",
    "default_cache_dir",
    "format_lineage",
    "lineage",
    "merged_tag",
    "pull_adapter",
    "push_adapter",
    "relay_finetune",
    "tag_revision",
]
