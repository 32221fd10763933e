"""The nightly job: gate the relayed hops, merge the accepted ones, publish a checkpoint, mark the hops.

- :mod:`~fedem.nightly.config`: :class:`NightlyConfig` (``pipelines/nightly.yaml``);
- :mod:`~fedem.nightly.plan`: which hops are new tonight, read against the hub's records;
- :mod:`~fedem.nightly.record`: the checkpoint folder (record and card);
- :mod:`~fedem.nightly.run`: :func:`run_nightly`, the steps in order.
"""

from fedem.nightly.config import NightlyConfig, RegistrySource
from fedem.nightly.run import NightlyOutcome, Verdict, run_nightly

__all__ = ["NightlyConfig", "NightlyOutcome", "RegistrySource", "Verdict", "run_nightly"]
