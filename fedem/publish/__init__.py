"""Checkpoints: the checkpoint repo's files and caps, date tags, the model card, publish and pull.

- :mod:`~fedem.publish.files`: what a checkpoint folder may hold, and the download caps;
- :mod:`~fedem.publish.tags`: ``seshu-YYYYMMDD[-n]`` on the published revision id, never moved;
- :mod:`~fedem.publish.card`: the ``README.md`` (HF metadata, model-index, merge and credit sections);
- :mod:`~fedem.publish.checkpoint`: :func:`publish_checkpoint`, :func:`publish_root`, :func:`pull_checkpoint`.
"""

from fedem.publish.card import Credit, MergedAdapter, Method, model_card
from fedem.publish.checkpoint import (
    DEFAULT_REPO,
    Checkpoint,
    Published,
    check_checkpoint,
    hub_repo_id,
    latest_checkpoint,
    publish_checkpoint,
    publish_root,
    pull_checkpoint,
    read_record,
)
from fedem.publish.files import CHECKPOINT_FILES, CHECKPOINT_MAX_BYTES, CHECKPOINT_MAX_FILES, checkpoint_files
from fedem.publish.tags import checkpoint_tag, checkpoint_tags, tag_checkpoint

__all__ = [
    "CHECKPOINT_FILES",
    "CHECKPOINT_MAX_BYTES",
    "CHECKPOINT_MAX_FILES",
    "DEFAULT_REPO",
    "Checkpoint",
    "Credit",
    "MergedAdapter",
    "Method",
    "Published",
    "check_checkpoint",
    "checkpoint_files",
    "checkpoint_tag",
    "checkpoint_tags",
    "hub_repo_id",
    "latest_checkpoint",
    "model_card",
    "publish_checkpoint",
    "publish_root",
    "pull_checkpoint",
    "read_record",
    "tag_checkpoint",
]
