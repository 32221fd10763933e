"""The gate policy: pipelines/nightly.yaml loads, bad values are one line, the seed is date + salt."""

from datetime import date
from pathlib import Path

import pytest

from fedem.errors import ConfigError
from fedem.gate.policy import GatePolicy, gate_seed, load_policy, read_salt

NIGHTLY = Path(__file__).resolve().parents[2] / "pipelines" / "nightly.yaml"


def test_shipped_policy_is_the_default():
    assert load_policy(NIGHTLY) == GatePolicy()


@pytest.mark.parametrize(
    ("gate", "match"),
    [
        ("epsilon: abc", r"gate\.epsilon: expected a number, got 'abc'"),
        ("epsilon: .nan", r"number \.nan is not finite"),  # refused by the bounded YAML reader itself
        ("languages: [hi, xx]", r"gate\.languages\[1\]: expected one of en, hi"),
        ("confidence: 1.5", r"gate\.confidence"),
        ("docs_per_language: 4", r"gate\.docs_per_language: expected an integer >= min_docs"),
        ("seed_salt_env: 'not a var'", r"gate\.seed_salt_env"),
        ("epsilon_typo: 1", r"gate\.epsilon_typo: unknown key"),
    ],
)
def test_bad_policy_values_are_one_line(tmp_path, gate, match):
    p = tmp_path / "nightly.yaml"
    p.write_text(f"gate:\n  {gate}\n")
    with pytest.raises(ConfigError, match=match) as err:
        load_policy(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_seed_depends_on_date_and_salt_only():
    d = date(2026, 12, 1)
    assert gate_seed(d, "s") == gate_seed(date(2026, 12, 1), "s")
    assert gate_seed(d, "s") != gate_seed(date(2026, 12, 2), "s")
    assert gate_seed(d, "s") != gate_seed(d, "t")
    assert 0 <= gate_seed(d, "s") < 2**64


def test_missing_salt_is_refused(monkeypatch):
    monkeypatch.delenv("FEDEM_GATE_SALT", raising=False)
    with pytest.raises(ConfigError, match=r"\$FEDEM_GATE_SALT: not set"):
        read_salt(GatePolicy())
