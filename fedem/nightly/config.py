"""``fedem nightly``'s config: one frozen, validated dataclass; ``pipelines/nightly.yaml`` is its disk form.

The ``gate:`` section is the gate's policy (:class:`~fedem.gate.policy.GatePolicy`, also read
alone by ``fedem gate``), ``merge:`` the merge method (:class:`~fedem.merge.MergeSpec`), and
the rest says where the checkpoints and the registry live. Loaded like every job config
(:func:`fedem.config.load`: strict keys and types, ``--set key=value``, one-line errors).
"""

from __future__ import annotations

import dataclasses

from fedem.config import Invalid
from fedem.gate.policy import GatePolicy
from fedem.merge.spec import MergeSpec
from fedem.publish.checkpoint import check_publisher


@dataclasses.dataclass(frozen=True)
class RegistrySource:
    """The registry branch the nightly reads hops from and marks ``merged_into`` on.

    ``remote``: the git remote (a URL or a path; null: ``--remote``, else
    ``$FEDEM_REGISTRY_REMOTE``); ``branch``: its registry branch; ``cache``: a local
    repository the job fetches into (created bare when absent; only private refs are written).
    """

    remote: str | None = None
    branch: str = "registry"
    cache: str = ".fedem/registry.git"

    def __post_init__(self):
        if not self.branch or self.branch.startswith("-") or any(c in self.branch for c in " \t\n~^:?*[\\"):
            raise Invalid("branch", "a git branch name")
        if self.remote is not None and (not self.remote.strip() or self.remote.startswith("-")):
            raise Invalid("remote", "a git remote URL or path")


@dataclasses.dataclass(frozen=True)
class NightlyConfig:
    """``fedem nightly``: gate the hops not yet merged, merge the accepted ones, publish.

    - ``hub``: the hub of the checkpoints and the adapters (null: ``--hub``, else
      ``$FEDEM_HUB``, else ``file://./hub``); ``repo``: the checkpoint repo on it;
    - ``registry``: where the hops are recorded (:class:`RegistrySource`);
    - ``gate``: the single-blind gate's policy; the merged model must also pass its
      no-regression rule (no language's upper bound of Δ above ``gate.delta``) against the
      current checkpoint before anything is published;
    - ``merge``: the method and its parameters; ``output``: the job's local folder (the report,
      the resolved config; scratch is rebuilt on every run); ``author``: the publisher.
    """

    hub: str | None = None
    repo: str = "seshu"
    registry: RegistrySource = dataclasses.field(default_factory=RegistrySource)
    gate: GatePolicy = dataclasses.field(default_factory=GatePolicy)
    merge: MergeSpec = dataclasses.field(default_factory=MergeSpec)
    output: str = "runs/nightly"
    author: str | None = None

    def __post_init__(self):
        check_publisher(self.repo, self.author)
        if self.merge.weights is not None:
            raise Invalid("merge.weights", "null: the nightly merges however many adapters were accepted")
