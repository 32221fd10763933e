"""Merging K=4 rank-16 ``in_proj`` adapters into a mamba-130m-shaped bf16 base: fedem vs PEFT, mergekit, the floor.

``python -m benchmarks.merge_bench`` builds the base from config (Mamba-1, the ``130m`` preset,
bf16, ~181 MB) and four synthetic adapter packages, then runs each contender in its own fresh
process, so that one's memory and page cache cannot flatter another:

- ``floor``: read the base file once and write the same bytes (fsync'd): the physical minimum;
- ``fedem``: :func:`fedem.merge.merge_to_dir`, ``linear``, weights 1 (validation included);
- ``peft``: load the base, load the 4 adapters, ``merge_and_unload`` them, ``save_pretrained``;
- ``mergekit``: ``base+lora`` per adapter (a dense copy each, on disk), then ``task_arithmetic``
  in fp32 (fedem's accumulation precision), written in bf16.

Each contender's inputs are evicted from the page cache first (``posix_fadvise(DONTNEED)`` on
the bench's own files), so bytes read are what the storage layer delivered (``read_bytes`` in
``/proc/self/io``, which counts mmap faults too) and ``write_bytes`` what it was handed. Peak RSS
is ``VmHWM`` after a reset (``/proc/self/clear_refs``) at the moment the contender is ready,
above that moment's RSS: the libraries are imported by then (torch, transformers, peft or
mergekit), so the figure is the work's own memory. The RSS right after ``import torch`` is
printed beside it.

``python -m benchmarks.merge_bench --child KIND BASE OUT ADAPTER...`` runs one contender and
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

K, RANK, ALPHA, PRESET, ARCH = 4, 16, 32, "130m", "mamba"


# -- measurement inside a contender's process ------------------------------------------------------
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def _cpu() -> float:
    """CPU seconds of this process, all threads, user + system."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ready() -> tuple[float, bool]:
    """RSS now, with the peak reset to it (False when the kernel refuses the reset)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    return _status_mb("VmRSS"), reset


def _floor(base: Path, out: Path, adapters: list[Path]) -> None:
    out.mkdir()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    with open(base / "model.safetensors", "rb") as src, open(out / "model.safetensors", "wb") as dst:
        while n := src.readinto(buf):
            dst.write(view[:n])
        dst.flush()
        os.fsync(dst.fileno())


def _fedem(base: Path, out: Path, adapters: list[Path]) -> None:
    from fedem.merge import MergeSpec, merge_to_dir

    merge_to_dir(base, adapters, MergeSpec("linear"), out)


def _peft(base: Path, out: Path, adapters: list[Path]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    names = [f"a{k}" for k in range(len(adapters))]
    model = PeftModel.from_pretrained(model, adapters[0], adapter_name=names[0])
    for name, a in zip(names[1:], adapters[1:], strict=True):
        model.load_adapter(a, adapter_name=name)
    model.merge_and_unload(adapter_names=names).save_pretrained(out, safe_serialization=True)


def _mergekit(base: Path, out: Path, adapters: list[Path]) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    cfg = MergeConfiguration.model_validate(
        {
            "merge_method": "task_arithmetic",
            "base_model": str(base),
            "models": [{"model": f"{base}+{a}", "parameters": {"weight": 1.0}} for a in adapters],
            "dtype": "float32",
            "out_dtype": "bfloat16",
        }
    )
    cache = out.parent / f"{out.name}-lora-cache"  # the dense copies: their bytes are counted
    run_merge(cfg, str(out), MergeOptions(lora_merge_cache=str(cache), copy_tokenizer=False, quiet=True))


def _warm(kind: str) -> None:
    """Import what the contender needs, so its import cost stays out of its figures."""
    if kind == "floor":
        return
    import peft  # noqa: F401
    import transformers.models.mamba.modeling_mamba  # noqa: F401

    if kind == "fedem":
        import fedem.merge.stream  # noqa: F401
    if kind == "mergekit":
        import mergekit.merge  # noqa: F401


_RUN = {"floor": _floor, "fedem": _fedem, "peft": _peft, "mergekit": _mergekit}


def child(kind: str, base: Path, out: Path, adapters: list[Path]) -> dict:
    import torch  # noqa: F401  (every contender pays for torch; the baseline RSS is after it)

    rss_torch = _status_mb("VmRSS")
    _warm(kind)
    rss_ready, reset = _ready()
    io0, t0, c0 = _io(), time.perf_counter(), _cpu()
    _RUN[kind](base, out, adapters)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    io1 = _io()
    return {
        "kind": kind,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_torch_mb": rss_torch,
        "rss_ready_mb": rss_ready,
        "peak_over_ready_mb": _status_mb("VmHWM") - rss_ready,
        "peak_reset": reset,
        "read_bytes": io1["read_bytes"] - io0["read_bytes"],
        "write_bytes": io1["write_bytes"] - io0["write_bytes"],
        "rchar": io1["rchar"] - io0["rchar"],
        "wchar": io1["wchar"] - io0["wchar"],
    }


# -- the parent: inputs, one process per contender, the table ------------------------------------------
def build_inputs(root: Path) -> tuple[Path, list[Path]]:
    """The base (from config, bf16) and K adapter packages, written and flushed to disk."""
    import torch

    from fedem.adapter import BaseInfo
    from fedem.io import sha256_file
    from fedem.model import build_model, save_model
    from fedem.testing.adapters import write_lora_package

    model = build_model(PRESET, ARCH, seed=0).to(torch.bfloat16)
    save_model(model, root / "base")
    info = BaseInfo.from_model(model)
    del model
    sha = sha256_file(root / "base" / "model.safetensors")
    adapters = [
        write_lora_package(
            root / f"adapter{k}", info, base_sha256=sha, name=f"a{k}", r=RANK, alpha=ALPHA, seed=k
        )
        for k in range(K)
    ]
    return root / "base", adapters


def _evict(*folders: Path) -> None:
    """Drop the bench's own input files from the page cache (flushed first: dirty pages stay)."""
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def run_child(kind: str, base: Path, adapters: list[Path], work: Path) -> dict:
    out = work / f"out-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work / f"out-{kind}-lora-cache", ignore_errors=True)
    _evict(base, *adapters)
    env = {
        **os.environ,
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.merge_bench",
        "--child",
        kind,
        str(base),
        str(out),
        *map(str, adapters),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(repeats: int = 5) -> dict:
    """Every contender's figures (the median run for the cheap ones), plus the model's size."""
    with tempfile.TemporaryDirectory(
        prefix="fedem-merge-bench-", dir=os.environ.get("FEDEM_BENCH_DIR")
    ) as tmp:
        work = Path(tmp)
        base, adapters = build_inputs(work)
        out: dict = {"model_bytes": (base / "model.safetensors").stat().st_size}
        out["adapter_bytes"] = sum((a / "adapter_model.safetensors").stat().st_size for a in adapters)
        # The floor and fedem alternate, so that both see the same moments of a shared machine.
        runs: dict[str, list[dict]] = {"floor": [], "fedem": [], "peft": [], "mergekit": []}
        for _ in range(repeats):
            for kind in ("floor", "fedem"):
                runs[kind].append(run_child(kind, base, adapters, work))
        for kind in ("peft", "mergekit"):
            runs[kind].append(run_child(kind, base, adapters, work))
        for kind, rs in runs.items():
            out[kind] = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
            out[kind]["wall_runs"] = [r["wall_s"] for r in rs]
            out[kind]["cpu_runs"] = [r["cpu_s"] for r in rs]
        return out


def report(res: dict) -> None:
    from benchmarks.bench import _row

    mb = res["model_bytes"] / 1e6
    f, fl, pe, mk = res["fedem"], res["floor"], res["peft"], res["mergekit"]
    print(
        f"== merge: {PRESET}-shaped Mamba-1 bf16 ({mb:,.0f} MB), K={K} rank-{RANK} in_proj adapters "
        f"({res['adapter_bytes'] / 1e6:,.1f} MB), linear; each contender in its own process, inputs evicted =="
    )
    _row("PEFT merge_and_unload+save", pe["wall_s"], "s", "fedem merge", f["wall_s"], "goal >= 4 (speed-up)")
    _row(
        "mergekit base+lora, task_arith",
        mk["wall_s"],
        "s",
        "fedem merge",
        f["wall_s"],
        "goal >= 6 (speed-up)",
    )
    _row("fedem merge", f["wall_s"], "s", "floor: read + write base", fl["wall_s"], "goal <= 2")
    # CPU seconds (all threads): the work itself, whatever else the machine is running.
    _row("PEFT CPU", pe["cpu_s"], "s", "fedem CPU", f["cpu_s"], "(speed-up in work)")
    _row("mergekit CPU", mk["cpu_s"], "s", "fedem CPU", f["cpu_s"], "(speed-up in work)")
    _row("fedem CPU", f["cpu_s"], "s", "floor CPU", fl["cpu_s"])
    floor_io = fl["read_bytes"] + fl["write_bytes"]
    for name, r in (("fedem", f), ("PEFT", pe), ("mergekit", mk)):
        _row(f"{name} bytes read", r["read_bytes"] / 1e6, "MB", "floor bytes read", fl["read_bytes"] / 1e6)
        _row(
            f"{name} bytes written",
            r["write_bytes"] / 1e6,
            "MB",
            "floor bytes written",
            fl["write_bytes"] / 1e6,
        )
    _row(
        "fedem bytes read+written",
        (f["read_bytes"] + f["write_bytes"]) / 1e6,
        "MB",
        "floor bytes read+written",
        floor_io / 1e6,
        "goal <= 1.2",
    )
    for name, r, goal in (
        ("fedem", f, "goal <= 0.5"),
        ("PEFT", pe, ""),
        ("mergekit", mk, ""),
        ("floor", fl, ""),
    ):
        _row(f"{name} peak RSS over ready", r["peak_over_ready_mb"], "MB", "model size", mb, goal)
    print(
        "  RSS after import torch / when ready (MB): "
        + ", ".join(
            f"{k} {res[k]['rss_torch_mb']:.0f}/{res[k]['rss_ready_mb']:.0f}"
            for k in ("fedem", "peft", "mergekit", "floor")
        )
        + (
            ""
            if all(res[k]["peak_reset"] for k in ("fedem", "peft", "mergekit", "floor"))
            else "  (peak reset refused: peaks include imports)"
        )
    )
    print(
        "  wall runs (s), floor and fedem alternating: "
        + ", ".join(f"{k} " + "/".join(f"{w:.2f}" for w in res[k]["wall_runs"]) for k in ("floor", "fedem"))
        + "; fedem/floor per pair: "
        + "/".join(
            f"{a / b:.2f}" for a, b in zip(res["fedem"]["wall_runs"], res["floor"]["wall_runs"], strict=True)
        )
        + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", choices=sorted(_RUN))
    p.add_argument("--repeats", type=int, default=5, help="runs of the floor and fedem (the median is shown)")
    p.add_argument("--json", action="store_true", help="also print the raw figures as one JSON line")
    p.add_argument("paths", nargs="*")
    args = p.parse_args(argv)
    if args.child:
        base, out, *adapters = map(Path, args.paths)
        print(json.dumps(child(args.child, base, out, adapters)))
        return
    res = measure(args.repeats)
    report(res)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
