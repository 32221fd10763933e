"""The gate's policy (the ``gate:`` section of ``pipelines/nightly.yaml``) and the nightly seed.

The policy is a frozen dataclass validated like every fedem config; YAML is its form on disk.
Other sections of ``nightly.yaml`` (merge, publish) belong to their own jobs and are not read
here. The seed that draws each night's documents is ``sha256(salt, date)``: fixed at gate time
from a secret salt (an environment variable the policy names), so nobody can know on pushing
which documents will be scored, and a rerun of the same night scores the same ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from datetime import date
from pathlib import Path

from fedem.config import Invalid, from_dict, read_yaml
from fedem.data.spec import EMBEDDED_LANGS
from fedem.errors import ConfigError

_ENV_NAME = "an environment variable name (letters, digits, _)"


def _is_env_name(name: str) -> bool:
    return bool(name) and name.replace("_", "a").isalnum() and not name[0].isdigit() and name.isascii()


@dataclasses.dataclass(frozen=True)
class GatePolicy:
    """When a candidate adapter is accepted. Bits/byte deltas are candidate minus base.

    - ``epsilon``: on every target language the upper confidence bound of Δ must be below -ε;
    - ``delta``: on every other language the upper confidence bound of Δ must be at most δ
      (a non-inferiority test: the adapter must show it does not regress more than δ);
    - ``confidence``: coverage of the two-sided paired-bootstrap interval; ``resamples`` its size;
    - ``docs_per_language``: documents drawn per language each night; ``min_docs``: fewer held-out
      documents than this in a scored language is an error;
    - ``max_length``: the rolling-window length every score is taken at;
    - ``duplicate_cosine``: |cos(ΔW_a, ΔW_b)| at or above this is a near-duplicate;
    - ``min_delta_norm`` / ``max_delta_norm``: bounds on ‖ΔW‖_F / ‖W‖_F over the adapted modules;
      below is a no-op, above is out of bounds (a scaled-up copy);
    - ``merge_tolerance``: largest relative logit gap between merged and unmerged forwards;
    - ``heldout_env`` / ``seed_salt_env``: the environment variables naming the private held-out
      file and holding the seed's secret salt.
    """

    epsilon: float = 0.002
    delta: float = 0.01
    confidence: float = 0.95
    resamples: int = 2000
    docs_per_language: int = 64
    min_docs: int = 8
    max_length: int = 2048
    languages: tuple[str, ...] = EMBEDDED_LANGS
    duplicate_cosine: float = 0.95
    min_delta_norm: float = 1e-5
    max_delta_norm: float = 0.5
    merge_tolerance: float = 1e-3
    heldout_env: str = "FEDEM_HELDOUT"
    seed_salt_env: str = "FEDEM_GATE_SALT"

    def __post_init__(self):
        for name in ("epsilon", "delta", "min_delta_norm", "merge_tolerance"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise Invalid(name, "a finite number >= 0")
        if not 0 < self.confidence < 1:
            raise Invalid("confidence", "a number strictly between 0 and 1, e.g. 0.95")
        if not 100 <= self.resamples <= 1_000_000:
            raise Invalid("resamples", "an integer between 100 and 1000000")
        if self.min_docs < 2:
            raise Invalid("min_docs", "an integer >= 2 (a bootstrap needs documents to resample)")
        if self.docs_per_language < self.min_docs:
            raise Invalid("docs_per_language", f"an integer >= min_docs ({self.min_docs})")
        if not 1 <= self.max_length <= 1 << 20:
            raise Invalid("max_length", "an integer between 1 and 1048576")
        if not self.languages:
            raise Invalid("languages", "at least one language")
        for i, lang in enumerate(self.languages):
            if lang not in EMBEDDED_LANGS:
                raise Invalid(f"languages[{i}]", f"one of {', '.join(EMBEDDED_LANGS)} (got {lang!r})")
        if len(set(self.languages)) != len(self.languages):
            raise Invalid("languages", "each language once")
        if not 0 < self.duplicate_cosine <= 1 or not math.isfinite(self.duplicate_cosine):
            raise Invalid("duplicate_cosine", "a number in (0, 1]")
        if not (math.isfinite(self.max_delta_norm) and self.max_delta_norm > self.min_delta_norm):
            raise Invalid("max_delta_norm", f"a finite number > min_delta_norm ({self.min_delta_norm})")
        for name in ("heldout_env", "seed_salt_env"):
            if not _is_env_name(getattr(self, name)):
                raise Invalid(name, _ENV_NAME)


def load_policy(path: str | Path) -> GatePolicy:
    """The ``gate:`` section of a nightly YAML, strictly (unknown keys, wrong types: one line)."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("gate"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'gate' section")
    try:
        return from_dict(GatePolicy, data["gate"], "gate")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def gate_seed(day: date, salt: str) -> int:
    """The night's 64-bit seed: ``sha256("fedem-gate-v1", salt, day)``. Known to nobody without the salt."""
    digest = hashlib.sha256(b"fedem-gate-v1\0" + salt.encode() + b"\0" + day.isoformat().encode()).digest()
    return int.from_bytes(digest[:8], "big")


def read_salt(policy: GatePolicy) -> str:
    """The secret salt from ``$seed_salt_env``; unset or empty is an error (the draw would be guessable)."""
    salt = os.environ.get(policy.seed_salt_env, "")
    if not salt:
        raise ConfigError(
            f"${policy.seed_salt_env}: not set; the gate's seed needs a secret salt, or tomorrow's "
            "documents could be known today"
        )
    return salt
