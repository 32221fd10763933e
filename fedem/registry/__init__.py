"""The adapter registry: who trains which adapter now, kept as YAML on the ``registry`` branch.

Modules, one concept each:

* :mod:`~fedem.registry.model`: adapter files (spec, lock, previous holder, hops); names and paths;
* :mod:`~fedem.registry.policy`: ``policy.yaml`` (TTL, per-user cap, cool-down, maintainers,
  the GitHub login -> hub account map);
* :mod:`~fedem.clock`: the injectable clock and the timestamp form;
* :mod:`~fedem.registry.reconcile`: the pure core ``reconcile(state, now, hub_heads, policy)``;
* :mod:`~fedem.registry.git` / :mod:`~fedem.registry.store`: git plumbing and the
  fetch → decide → commit → push (compare-and-swap) loop;
* :mod:`~fedem.registry.claims`: claim/release pull requests checked as data, applied by the server;
* :mod:`~fedem.registry.contribute`: the contributor's side (``fedem claim`` / ``fedem release``);
* :mod:`~fedem.registry.status`: the status table; :mod:`~fedem.registry.ops`: init and reconcile runs.

Importing this package loads only PyYAML and the standard library (no torch), so the
registry workflows install just ``pyyaml`` and ``click``.
"""

from fedem.clock import Clock, ManualClock, SystemClock
from fedem.registry.model import Adapter, Hop, Lock, Previous, Spec
from fedem.registry.policy import Policy
from fedem.registry.reconcile import Event, reconcile

__all__ = [
    "Adapter",
    "Clock",
    "Event",
    "Hop",
    "Lock",
    "ManualClock",
    "Policy",
    "Previous",
    "Spec",
    "SystemClock",
    "reconcile",
]
