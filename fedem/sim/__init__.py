"""Simulators that drive fedem's real code on a simulated clock.

* :mod:`fedem.sim.registry_scale`: the claim registry at scale (``fedem simulate
  --registry-only``): real check-claim jobs racing on a real bare git remote, the real
  reconciler every few simulated minutes, a ``file://`` hub, and invariants checked from the
  branch's history by code that shares nothing with the code under test.

Nothing here is imported by the rest of fedem; the modules load only what they use.
"""
