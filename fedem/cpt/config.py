"""``fedem cpt``'s config: a frozen, validated dataclass; ``pipelines/cpt.yaml`` is its disk form.

Loaded like every job config (:func:`fedem.config.load`: strict keys and types, ``--set
key=value`` overrides, one-line errors naming the file and the key).
"""

from __future__ import annotations

import dataclasses
import math

from fedem.config import Invalid
from fedem.data.spec import DataSpec, SourceSpec, default_sources
from fedem.publish.checkpoint import check_publisher
from fedem.train.config import TrainSpec


def language_of(src: SourceSpec) -> str:
    """The label a held-out source is scored and reported under: its embedded language code,
    else its name (so name a local or hub source by its language: ``name: hi``)."""
    return src.embedded or src.name


@dataclasses.dataclass(frozen=True)
class CptEval:
    """The publish rule, scored on each language's held-out blocks, parent vs. trained model.

    Publish only if the mean over languages of held-out bits/byte drops by more than
    ``min_improvement`` and no language gets worse by more than ``delta`` (bits/byte). Each
    source of ``sources`` is one language (:func:`language_of`): its documents held out at the
    job's ``data.heldout_fraction``, packed at ``data.block_size``, at most ``max_blocks`` of them.
    """

    sources: tuple[SourceSpec, ...] = dataclasses.field(default_factory=default_sources)
    max_blocks: int = 32
    batch_size: int = 16
    delta: float = 0.01
    min_improvement: float = 0.0

    def __post_init__(self):
        if not self.sources:
            raise Invalid("sources", "at least one held-out source (one per language)")
        labels = [language_of(s) for s in self.sources]
        if len(set(labels)) != len(labels):
            raise Invalid("sources", f"one source per language (duplicates in {labels})")
        if not 1 <= self.max_blocks <= 1 << 20:
            raise Invalid("max_blocks", "an integer from 1 to 1048576")
        if not 1 <= self.batch_size <= 1 << 16:
            raise Invalid("batch_size", "an integer from 1 to 65536")
        for name in ("delta", "min_improvement"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= 8):
                raise Invalid(name, "a number of bits/byte from 0 to 8")


@dataclasses.dataclass(frozen=True)
class CptConfig:
    """``fedem cpt``: continue the newest checkpoint of ``repo`` on data it has not seen.

    - ``hub``: the checkpoint hub (``file://PATH``, ``hf://ORG``); null: ``--hub``, else
      ``$FEDEM_HUB``, else ``file://./hub``;
    - ``data``: the training sources; each is continued where the checkpoint's data cursor says
      its chain stopped (:mod:`fedem.cpt.cursor`), so ``block_size`` and ``heldout_fraction``
      must be the cursor's;
    - ``train``: the optimisation; ``train.steps`` is the step budget (fewer steps when less
      new data is left: no block is trained on twice);
    - ``eval``: the publish rule; ``output``: the local run folder; ``author``: the publisher
      named in the revision (null: the hub's default).
    """

    hub: str | None = None
    repo: str = "seshu"
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    train: TrainSpec = dataclasses.field(
        default_factory=lambda: TrainSpec(steps=1000, lr=1e-3, warmup_steps=50, save_every=250)
    )
    eval: CptEval = dataclasses.field(default_factory=CptEval)
    output: str = "runs/cpt"
    author: str | None = None

    def __post_init__(self):
        check_publisher(self.repo, self.author)
