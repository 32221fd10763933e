"""One rule per name: the hub, the relay and the registry give the same verdict on every name.

The rule lives in :mod:`fedem.names`; each door raises its own error type. A name that ``fedem
push`` accepts must be one the registry accepts too, or a contributor could publish an adapter
nobody can ever claim.
"""

from __future__ import annotations

import pytest

from fedem import names
from fedem.errors import AdapterRejected, FedemError, HubError, RegistryError

NAMES = [
    # valid
    "seshu-te",
    "a",
    "0",
    "seshu.te_v2",
    "x" * 64,
    "a.b",
    # hostile or wrong
    "",
    "x" * 65,
    "Seshu",
    "-x",
    ".x",
    "_x",
    "a..b",
    "..",
    "../x",
    "a/b",
    "/abs",
    "x y",
    "x\n",
    "x\x00",
    "ü",
    "seshu te",
    "x.yaml/../y",
    "a\\b",
    "null",
    123,
    None,
]


def _verdict(fn, name, error) -> bool:
    try:
        fn(name)
    except error as err:
        assert "\n" not in str(err)
        return False
    return True


def _hub_verdict(tmp_path, name) -> bool:
    from fedem.hub.filehub import FileHub

    hub = FileHub(tmp_path / "hub")
    hub.init()
    return _verdict(lambda n: hub.create_repo(n), name, HubError)


def _relay_verdict(tmp_path, name) -> bool:
    from fedem.relay import push_adapter

    # The name is checked first, before the folder is looked at: a missing folder means "accepted".
    try:
        push_adapter(str(tmp_path / "hub2"), name, tmp_path / "missing")
    except AdapterRejected as err:
        return "adapter folder not found" in str(err)
    return True


def _registry_verdict(name) -> bool:
    from fedem.registry.model import adapter_path, check_name, name_from_path

    ok = _verdict(check_name, name, RegistryError)
    if ok:  # and the file the registry keeps for it reads back as the same name
        assert name_from_path(adapter_path(name)) == name
    return ok


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_every_door_gives_the_same_verdict(tmp_path, name):
    expected = names.is_adapter_name(name)
    assert _verdict(names.check_adapter_name, name, FedemError) is expected
    # A hub repo may sit behind one owner (hf://ORG, or a registry spec's org/name): the hub
    # accepts "owner/name" exactly when the name part is an adapter name; every other name gets
    # the adapter verdict.
    owner, sep, tail = name.rpartition("/") if isinstance(name, str) else ("", "", name)
    hub_expected = names.is_adapter_name(tail) and names.repo_name_problem(name) is None if sep else expected
    assert _hub_verdict(tmp_path, name) is hub_expected
    assert _relay_verdict(tmp_path, name) is expected
    assert _registry_verdict(name) is expected
    from fedem.adapter.policy import validate_adapter_name

    assert _verdict(validate_adapter_name, name, AdapterRejected) is expected


def test_the_rule_itself():
    accepted = [n for n in NAMES if names.is_adapter_name(n)]
    assert accepted == ["seshu-te", "a", "0", "seshu.te_v2", "x" * 64, "a.b", "null"]


@pytest.mark.parametrize(
    "value,ok",
    [
        ("a" * 40, True),
        ("0" * 64, True),
        ("A" * 40, False),
        ("a" * 41, False),
        ("g" * 40, False),
        ("../x", False),
    ],
)
def test_revision_ids_have_one_shape(value, ok):
    from datetime import datetime, timezone

    from fedem.hub.base import Revision
    from fedem.relay import _checked

    assert names.is_revision_id(value) is ok
    rev = Revision("r", value, None, "a", datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert _verdict(_checked, rev, HubError) is ok


def test_repo_names_are_adapter_names_behind_an_optional_owner():
    assert names.repo_name_problem("Fedem-Org/seshu-te") is None
    assert names.repo_name_problem("seshu-te") is None
    assert names.repo_name_problem("org/Seshu") is not None  # the repo part is an adapter name
    assert names.repo_name_problem("a/b/c") is not None
    assert names.repo_name_problem("../x") is not None
