"""``fedem merge`` as a job: :class:`MergeConfig` (``pipelines/merge.yaml`` is its disk form) and :func:`run`."""

from __future__ import annotations

import dataclasses

from fedem.config import Invalid
from fedem.merge.spec import MergeSpec


@dataclasses.dataclass(frozen=True)
class MergeConfig:
    """Merge ``adapters`` into ``base`` with ``merge`` settings; write the model folder ``output``.

    ``revisions`` (optional, one per adapter, null where unknown) are the adapters' hub
    revisions, recorded in the output's provenance.
    """

    base: str
    adapters: tuple[str, ...]
    output: str
    merge: MergeSpec = dataclasses.field(default_factory=MergeSpec)
    revisions: tuple[str | None, ...] | None = None

    def __post_init__(self):
        if not self.adapters:
            raise Invalid("adapters", "at least one adapter folder")
        if self.revisions is not None and len(self.revisions) != len(self.adapters):
            raise Invalid("revisions", f"one per adapter ({len(self.adapters)}), or null")
        # Checked here, not only at merge time: a config that cannot run is refused when loaded.
        w, n = self.merge.weights, len(self.adapters)
        if w is not None and len(w) != n:
            raise Invalid("merge.weights", f"one weight per adapter ({len(w)} given for {n})")


def run(cfg: MergeConfig):
    """Run the merge a config describes; returns the :class:`~fedem.merge.MergeResult`."""
    from fedem.merge.stream import merge_to_dir

    return merge_to_dir(cfg.base, cfg.adapters, cfg.merge, cfg.output, revisions=cfg.revisions)
