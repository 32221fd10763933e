"""Hub round trip: push (publish) then pull (download) of one adapter folder, per backend.

Backends: ``file://`` in a temporary directory, and ``hf://`` through the real ``HfApi`` over
loopback HTTP to :mod:`fedem.testing.fakehub` (so the figure is client + HTTP overhead, not the
internet). Each figure is the median of ``repeats`` publishes on a growing chain.

``ADAPTER_DIR`` may be an adapter package or a finetune run folder holding ``adapter/`` (the demo's).
When it is a real fedem package (it has ``fedem.json``), the bench also times
:func:`fedem.adapter.validate_adapter`, which the relay runs on every pull and push.

Run alone: ``python -m benchmarks.hub_bench [ADAPTER_DIR]``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from fedem.hub.base import Hub
from fedem.hub.filehub import FileHub

Row = tuple[str, float, str]


def make_standin_adapter(folder: Path, *, megabytes: float = 1.0, seed: int = 0) -> Path:
    """A LoRA-shaped folder: ~``megabytes`` of random fp32 tensors plus an adapter_config.json."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_layers, rank, width = 4, 16, int(megabytes * 2**20 / (4 * 2 * 4 * 16))
    tensors = {}
    for i in range(n_layers):
        prefix = f"base_model.model.backbone.layers.{i}.mixer.in_proj"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, width), dtype=np.float32)
        tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((width, rank), dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 32, "target_modules": ["in_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def _variant(src: Path, dst: Path, i: int) -> Path:
    """A copy of ``src`` whose config differs, so every publish is a genuinely new revision."""
    dst.mkdir(parents=True)
    for p in src.rglob("*"):
        if p.is_file():
            out = dst / p.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(p.read_bytes())
    (dst / "bench.json").write_text(json.dumps({"round": i}))
    return dst


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _round_trips(name: str, hub: Hub, adapter: Path, work: Path, repeats: int) -> list[Row]:
    parent, pushes, pulls = None, [], []
    for i in range(repeats):
        folder = _variant(adapter, work / f"{name}-src-{i}", i)
        t0 = time.perf_counter()
        rev = hub.publish("bench", folder, message=f"bench {i}", parent=parent, author="bench")
        t1 = time.perf_counter()
        hub.download("bench", rev.id, work / f"{name}-dst-{i}")
        t2 = time.perf_counter()
        pushes.append(t1 - t0)
        pulls.append(t2 - t1)
        parent = rev.id
    push, pull = statistics.median(pushes), statistics.median(pulls)
    return [
        (f"hub.{name}.push", push * 1e3, "ms"),
        (f"hub.{name}.pull", pull * 1e3, "ms"),
        (f"hub.{name}.roundtrip", (push + pull) * 1e3, "ms"),
    ]


def resolve_adapter(path: Path) -> Path:
    """An adapter folder, or the ``adapter/`` of a finetune run folder."""
    path = Path(path)
    return path / "adapter" if (path / "adapter" / "adapter_config.json").is_file() else path


def _validate_rows(adapter: Path, repeats: int) -> list[Row]:
    from fedem.adapter import validate_adapter

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        validate_adapter(adapter)
        times.append(time.perf_counter() - t0)
    return [("adapter.validate", statistics.median(times) * 1e3, "ms")]


def run(adapter_dir: Path | None = None, *, repeats: int = 5) -> list[Row]:
    """Rows (name, value, unit): adapter size, validation time (real packages), then push/pull/round-trip
    times per backend."""
    from fedem.hub.hfhub import HfHub
    from fedem.testing.fakehub import FakeHubServer, hf_client_env

    with tempfile.TemporaryDirectory(prefix="fedem-hub-bench-") as tmp:
        work = Path(tmp)
        adapter = resolve_adapter(adapter_dir) if adapter_dir else make_standin_adapter(work / "adapter")
        size = _folder_bytes(adapter)
        rows: list[Row] = [("hub.adapter_bytes", float(size), "B")]
        if (adapter / "fedem.json").is_file():
            rows += _validate_rows(adapter, repeats)
        file_hub = FileHub(work / "filehub")
        file_hub.create_repo("bench")
        rows += _round_trips("file", file_hub, adapter, work, repeats)
        with FakeHubServer() as server, hf_client_env(server.url, work / "hf_home"):
            hf_hub = HfHub("fedem-test", endpoint=server.url, cache_dir=work / "hf_cache")
            hf_hub.create_repo("bench")
            server.hub.requests.clear()
            rows += _round_trips("hf_fake", hf_hub, adapter, work, repeats)
            per_trip = len(server.hub.requests) / repeats
            rows.append(("hub.hf_fake.requests_per_roundtrip", per_trip, "requests"))
        return rows


if __name__ == "__main__":
    for row_name, value, unit in run(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(f"{row_name:40s} {value:12.2f} {unit}")
