"""Relay fixtures: a trained tiny adapter package, helpers to tamper with copies, both hub backends."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedem.hub.filehub import FileHub
from fedem.io import sha256_file
from fedem.testing.fakehub import FakeHubServer, hf_client_env

ORG = "fedem-test"


def relay_config(base: Path, output: Path, *, steps: int = 4, **kw):
    """A FinetuneConfig for a few tiny steps on the tests' three embedded languages."""
    from fedem.data import DataSpec, SourceSpec
    from fedem.train import FinetuneConfig, TrainSpec

    sources = tuple(SourceSpec(embedded=lang) for lang in ("en", "hi", "te"))
    return FinetuneConfig(
        base=str(base),
        data=DataSpec(sources=sources, block_size=64, heldout_max_blocks=8),
        train=TrainSpec(steps=steps, batch_size=4, warmup_steps=1, log_every=2, save_every=100, lr=3e-3),
        output=str(output),
        **kw,
    )


@pytest.fixture(scope="session")
def adapter_pkg(tiny_base, tmp_path_factory) -> Path:
    """A valid fresh adapter package named ``demo`` (contributor ``alice``), trained on ``tiny_base``."""
    from fedem.train import finetune

    out = tmp_path_factory.mktemp("adapter") / "run"
    cfg = relay_config(tiny_base, out, name="demo", contributor="alice")
    finetune(cfg, progress=False, log=lambda *_: None)
    return out / "adapter"


@pytest.fixture
def file_hub(tmp_path) -> FileHub:
    """A fresh, initialised file:// hub."""
    hub = FileHub(tmp_path / "hub")
    hub.init()
    return hub


@pytest.fixture
def relay_env(monkeypatch, tmp_path):
    """Contributor identity comes from each test; the pull cache lives in tmp_path."""
    monkeypatch.delenv("FEDEM_AUTHOR", raising=False)
    monkeypatch.delenv("FEDEM_CONTRIBUTOR", raising=False)
    monkeypatch.setenv("FEDEM_CACHE", str(tmp_path / "cache"))


def copy_adapter(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(folder: Path, name: str, fn) -> Path:
    """Apply ``fn`` to the JSON object in ``folder/name`` (in place) and write it back."""
    data = json.loads((folder / name).read_text())
    fn(data)
    (folder / name).write_text(json.dumps(data))
    return folder


def rewrite_weights(folder: Path, fn, *, reseal: bool = True) -> Path:
    """Replace the tensors by ``fn(tensors)``; with ``reseal`` fedem.json's weights_sha256 follows."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    tensors = fn(load_file(path))
    save_file(tensors, str(path), metadata={"format": "pt"})
    if reseal:
        edit_json(folder, "fedem.json", lambda m: m.__setitem__("weights_sha256", sha256_file(path)))
    return folder


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeHubServer]:
    with FakeHubServer() as server:
        yield server


@pytest.fixture
def make_hf_hub(fake_server: FakeHubServer, tmp_path: Path):
    """HfHub factory on the fake server (fresh state); ``token`` picks the author (hf_<user>)."""
    from fedem.hub.hfhub import HfHub

    fake_server.hub.reset()
    with hf_client_env(fake_server.url, tmp_path / "hf_home"):

        def make(token: str = "hf_alice") -> HfHub:
            return HfHub(
                ORG,
                endpoint=fake_server.url,
                token=token,
                cache_dir=tmp_path / "hf_cache",
                sleep=lambda _s: None,
            )

        yield make


@pytest.fixture(params=["file", "hf"])
def hubs(request, tmp_path):
    """Each backend in turn, as a factory ``hubs(user)`` of clients of one shared hub."""
    if request.param == "file":
        root = tmp_path / "hub"
        FileHub(root).init()
        return lambda user="alice": FileHub(root)
    make = request.getfixturevalue("make_hf_hub")
    return lambda user="alice": make(f"hf_{user}")
