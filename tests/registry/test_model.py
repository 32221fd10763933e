"""Adapter/policy files: strict validation, errors naming file and field, names and paths."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from fedem.errors import RegistryError
from fedem.registry.model import (
    Hop,
    Lock,
    adapter_path,
    check_name,
    dump_adapter,
    name_from_path,
    parse_adapter,
)
from fedem.registry.policy import parse_policy
from fedem.registry.store import snapshot_from_dir

from ._helpers import CATALOGUE, REPO_ROOT, make_adapter

PATH = "registry/adapters/seshu-hi.yaml"


def test_catalogue_is_valid_and_canonical():
    snap = snapshot_from_dir(REPO_ROOT)
    assert snap.errors == ()
    assert {"seshu-hi", "seshu-te", "seshu-ta"} <= set(snap.adapters)
    assert snap.policy.ttl_minutes == 180
    for adapter in snap.adapters.values():
        assert adapter.lock.state == "free"
        assert dump_adapter(adapter).encode() == snap.raw[adapter.path], (
            "catalogue files are in canonical form"
        )


def test_schema_agrees_with_the_model():
    adapter_schema = json.loads((CATALOGUE / "schema" / "adapter.schema.json").read_text())
    policy_schema = json.loads((CATALOGUE / "schema" / "policy.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((CATALOGUE / "policy.yaml").read_text()), policy_schema)
    held = make_adapter(holder="alice")
    held = held.__class__(
        **{**held.__dict__, "hops": (Hop("bob", "abc", "2026-11-28T01:00:00Z", "2026-11-28T00:00:00Z"),)}
    )
    for data in [yaml.safe_load(p.read_text()) for p in (CATALOGUE / "adapters").glob("*.yaml")] + [
        yaml.safe_load(dump_adapter(held))
    ]:
        jsonschema.validate(data, adapter_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "Bad Name", "spec": {}}, adapter_schema)


def test_round_trip_is_exact():
    a = make_adapter(holder="alice")
    text = dump_adapter(a)
    assert parse_adapter(text, PATH) == a
    assert dump_adapter(parse_adapter(text, PATH)) == text
    assert "'2026-11-28T09:00:00Z'" in text  # quoted: YAML would read a bare time as a datetime


def test_unquoted_times_are_accepted():
    text = re.sub(r"'(\d{4}-[^']*)'", r"\1", dump_adapter(make_adapter(holder="alice")))
    assert "since: 2026-11-28T09:00:00Z" in text
    assert parse_adapter(text, PATH).lock.since == "2026-11-28T09:00:00Z"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["spec"].update(rank="sixteen"), "spec.rank"),
        (lambda d: d["spec"].update(rank=0), "spec.rank"),
        (lambda d: d["spec"].pop("base_model"), "spec.base_model"),
        (lambda d: d["lock"].update(colour="red"), "lock.colour"),
        (lambda d: d["lock"].update(since="yesterday"), "lock.since"),
        (lambda d: d["lock"].update(until=None), "lock.until"),
        (lambda d: d["lock"].update(holder="not a login!"), "lock.holder"),
        (lambda d: d.update(name="seshu-te"), "name"),
        (lambda d: d.update(hops=[{"contributor": "x"}]), "hops[0].revision"),
        (lambda d: d["spec"].update(hub_repo="../evil"), "spec.hub_repo"),
    ],
)
def test_bad_fields_are_named(mutate, field):
    data = yaml.safe_load(dump_adapter(make_adapter(holder="alice")))
    mutate(data)
    with pytest.raises(RegistryError) as err:
        parse_adapter(yaml.safe_dump(data), PATH)
    msg = str(err.value)
    assert msg.startswith(PATH + ": ") and field in msg and "\n" not in msg


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(
        RegistryError, match=r"registry/adapters/seshu-hi.yaml: invalid YAML at line \d+, column \d+: "
    ):
        parse_adapter("name: seshu-hi\nspec: [unclosed\n", PATH)
    with pytest.raises(RegistryError, match="expected a mapping at the top level"):
        parse_adapter("- a list\n", PATH)


def test_requested_lock_only_where_allowed():
    text = dump_adapter(make_adapter()).replace("holder: null", "holder: alice")
    with pytest.raises(RegistryError, match="lock.since: .*stamped by the server"):
        parse_adapter(text, PATH)
    assert parse_adapter(text, PATH, allow_request=True).lock.state == "requested"


def test_untrusted_files_refuse_aliases_and_huge_input():
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(RegistryError, match="anchors and aliases"):
        parse_adapter(bomb, PATH, untrusted=True)
    with pytest.raises(RegistryError, match="70,000 bytes exceeds the cap"):
        parse_adapter(b"#" * 70_000, PATH, untrusted=True)


@pytest.mark.parametrize(
    "name", ["", "Seshu", "-x", ".x", "../x", "a/b", "/abs", "x y", "ü", "a" * 65, "x\n", "x.yaml/../y"]
)
def test_bad_names(name):
    with pytest.raises(RegistryError, match=r"invalid adapter name .*: (use lower-case|\d+ characters)"):
        check_name(name)


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "registry/adapters/../x.yaml",
        "registry/adapters/../../etc/passwd.yaml",
        "/registry/adapters/x.yaml",
        "/etc/passwd",
        "registry/adapters/a/b.yaml",
        "registry/adapters/X.yaml",
        "registry/adapters/.hidden.yaml",
        "registry/policy.yaml",
        "registry/adapters/x.yml",
        "./registry/adapters/x.yaml",
        "registry\\adapters\\x.yaml",
    ],
)
def test_path_tricks(path):
    with pytest.raises(RegistryError, match="not an adapter file"):
        name_from_path(path)


def test_good_names_and_paths():
    for name in ("seshu-hi", "a", "0.1_x-y", "a" * 64):
        assert name_from_path(adapter_path(name)) == name


def test_lock_forms():
    assert Lock().state == "free"
    assert Lock(holder="a").state == "requested"
    with pytest.raises(ValueError):
        Lock(since="2026-11-28T09:00:00Z", until="2026-11-28T10:00:00Z")
    with pytest.raises(ValueError):
        Lock(holder="a", since="2026-11-28T10:00:00Z", until="2026-11-28T09:00:00Z")


def test_policy_errors_name_field():
    assert parse_policy("ttl_minutes: 60\n").ttl_minutes == 60
    with pytest.raises(RegistryError, match=r"registry/policy.yaml: ttl_minutes: expected"):
        parse_policy("ttl_minutes: 0\n")
    with pytest.raises(RegistryError, match=r"registry/policy.yaml: cap: unknown key"):
        parse_policy("cap: 3\n")


def test_policy_identities():
    policy = parse_policy("identities: {alice: [alice-hf, Alice.Lab], bob: [bob]}\nidentity_fallback: none\n")
    assert dict(policy.identities) == {"alice": ("alice-hf", "Alice.Lab"), "bob": ("bob",)}
    assert policy.is_hub_identity("ALICE", "alice.lab") and not policy.is_hub_identity("alice", "alice")
    assert parse_policy("maintainers: []\n").identities == {}
    assert parse_policy("maintainers: []\n").identity_fallback == "none", "no fallback unless asked"


@pytest.mark.parametrize(
    "text, error",
    [
        ("identities: [alice]\n", "identities: expected a mapping of a list of a string, got ['alice']"),
        ("identities: {alice: alice}\n", "identities.alice: expected a list of a string, got 'alice'"),
        ("identities: {alice: []}\n", "identities.alice: expected a non-empty list of hub user names"),
        ("identities: {alice: [a b]}\n", "identities.alice[0]: expected a hub user name"),
        ("identities: {alice: ['']}\n", "identities.alice[0]: expected a hub user name"),
        ("identities: {alice: [1]}\n", "identities.alice[0]: expected a string, got 1"),
        ("identities: {'al ice': [x]}\n", "identities.al ice: expected keys that are GitHub logins"),
        ("identities: {alice: [x], Alice: [y]}\n", "identities.Alice: expected each login once"),
        (
            "identities: {alice: [shared], bob: [SHARED]}\n",
            "identities.bob[0]: expected a hub user mapped to one login only ('SHARED' is also mapped to 'alice')",
        ),
        ("identity_fallback: yes\n", "identity_fallback: expected one of 'none', 'same-name', got True"),
        ("identity_fallback: login\n", "identity_fallback: expected one of 'none', 'same-name'"),
    ],
)
def test_policy_identity_errors_name_file_and_field(text, error):
    with pytest.raises(RegistryError) as err:
        parse_policy(text)
    assert str(err.value).startswith(f"registry/policy.yaml: {error}"), str(err.value)
    assert "\n" not in str(err.value)


def test_policy_schema_agrees_on_identities():
    schema = json.loads((CATALOGUE / "schema" / "policy.schema.json").read_text())
    jsonschema.validate({"identities": {"alice": ["alice-hf"]}, "identity_fallback": "same-name"}, schema)
    for bad in ({"identities": {"alice": []}}, {"identities": {"a b": ["x"]}}, {"identity_fallback": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
