"""validate_adapter: a good package passes; each kind of bad package is refused with its own reason."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import torch

from fedem.adapter import DEFAULT_POLICY, AdapterPolicy, BaseInfo, validate_adapter, validate_adapter_name
from fedem.adapter.package import PROVENANCE_FIELDS
from fedem.data import SourceSpec
from fedem.errors import AdapterRejected
from fedem.io import sha256_file

from .conftest import copy_adapter, edit_json, one_line, rewrite_weights


@pytest.fixture(scope="module")
def base_info(tiny_base) -> BaseInfo:
    return BaseInfo.from_dir(tiny_base)


@pytest.fixture
def bad(adapter_pkg, tmp_path) -> Path:
    """A private copy of the good adapter, to break."""
    return copy_adapter(adapter_pkg, tmp_path / "demo")


def rejected(folder, base=None, policy=DEFAULT_POLICY, **kw) -> str:
    with pytest.raises(AdapterRejected) as err:
        validate_adapter(folder, base, policy, **kw)
    return one_line(err)


def test_good_adapter_passes(adapter_pkg, base_info, tiny_base):
    report = validate_adapter(adapter_pkg, base_info, name="demo")
    assert (report.name, report.arch, report.rank, report.targets) == ("demo", "mamba2", 8, ("in_proj",))
    assert report.base_checked and report.parent_revision is None and report.contributor == "alice"
    assert report.tensors == 4 and report.parameters > 0
    assert report.bpb_after < report.bpb_before  # it trained
    # a model folder path and a loaded model describe the same base
    assert validate_adapter(adapter_pkg, tiny_base) == report
    from fedem.model import load_model

    assert validate_adapter(adapter_pkg, BaseInfo.from_model(load_model(tiny_base / "model"))).rank == 8
    assert not validate_adapter(adapter_pkg).base_checked


def test_package_has_the_provenance_issue_3_asks_for(adapter_pkg):
    meta = json.loads((adapter_pkg / "fedem.json").read_text())
    for field in PROVENANCE_FIELDS:
        node = meta
        for part in field.split("."):
            node = node[part]
        assert node is not None, field
    assert meta["revision"] is None and meta["parent"] is None  # the hub assigns ids
    # a data fingerprint, never the data: no line of the training corpus appears in the record
    from fedem.data.sources import load_documents

    text = (adapter_pkg / "fedem.json").read_text()
    assert len(meta["data"]["fingerprint"]) == 64
    assert not any(
        doc[:40] in text for doc in load_documents(SourceSpec(embedded="en"))[:50] if len(doc) >= 40
    )
    card = (adapter_pkg / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card


def test_pickle_file_rejected(bad):
    (bad / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle of the int 1
    assert "adapter_model.bin: pickle files run code" in rejected(bad)


@pytest.mark.parametrize("extra", ["notes.txt", "weights.ckpt", "run.py"])
def test_other_file_types_rejected(bad, extra):
    (bad / extra).write_bytes(b"x")
    assert extra in rejected(bad)


def test_nan_weights_rejected(bad):
    def poison(t):
        k = sorted(t)[1]
        t[k] = t[k].clone()
        t[k][0, 0] = float("nan")
        return t

    rewrite_weights(bad, poison)
    assert "non-finite values" in rejected(bad)


def test_wrong_shapes_rejected(bad, base_info):
    # A self-consistent rank-8 adapter for a narrower model. Its record names the shapes of the
    # base it claims, so even without the base (push) it is refused, with the same line.
    rewrite_weights(bad, lambda t: {k: v[:, :32].contiguous() if "lora_A" in k else v for k, v in t.items()})
    assert "tensor shapes do not fit the base it names" in rejected(bad, base_info)
    assert rejected(bad) == rejected(bad, base_info)
    # A 0.1.0 record has no shape hash: only the base can tell, and it names the tensor.
    edit_json(bad, "fedem.json", lambda m: m["base"].pop("lora_shapes_sha256"))
    assert "has shape [8, 32], this base expects [8, 64]" in rejected(bad, base_info)


def test_shapes_recorded_from_another_base_rejected(bad, base_info):
    edit_json(bad, "fedem.json", lambda m: m["base"].__setitem__("lora_shapes_sha256", "0" * 64))
    assert "tensor shapes do not fit the base it names" in rejected(bad)


def test_rank_inconsistent_with_config_rejected_without_base(bad):
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("r", 4))
    assert "inconsistent with rank r=4" in rejected(bad)


def test_different_base_rejected(adapter_pkg, tmp_path):
    from fedem.model import build_model, save_model

    other = save_model(build_model("tiny", "mamba2", seed=1), tmp_path / "other-base")
    msg = rejected(adapter_pkg, other)
    assert msg.startswith("different base: the adapter was trained on base weights sha256")


def test_different_arch_rejected(adapter_pkg):
    from fedem.model import build_model

    msg = rejected(adapter_pkg, BaseInfo.from_model(build_model("tiny", "mamba")))
    assert "different base: the adapter was trained on a mamba2 Seshu, this base is mamba" in msg


def test_different_base_repo_rejected(bad, base_info):
    import dataclasses

    edit_json(bad, "fedem.json", lambda m: m["base"].update(repo="seshu-base", revision="a" * 40))
    validate_adapter(bad, dataclasses.replace(base_info, repo="seshu-base", revision="a" * 40))
    msg = rejected(bad, dataclasses.replace(base_info, repo="seshu-base", revision="b" * 40))
    assert "records base revision" in msg


@pytest.mark.parametrize(
    ("target", "why"),
    [("out_proj", "PEFT cannot wrap Mamba's out_proj"), ("dt_proj", "dt_proj LoRA never trains")],
)
def test_unsafe_targets_rejected(bad, target, why):
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("target_modules", [target]))
    msg = rejected(bad)
    assert f"{target!r} is refused" in msg and why in msg


def test_rank_over_cap_rejected(bad):
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("r", 128))
    assert "rank r=128 exceeds the policy maximum of 64" in rejected(bad)


def test_rank_over_a_tighter_policy_rejected(adapter_pkg):
    assert "rank r=8 exceeds the policy maximum of 4" in rejected(
        adapter_pkg, policy=AdapterPolicy(max_rank=4)
    )


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a/b", "Demo", ".hidden", "a..b", "", "x" * 97])
def test_bad_names_rejected(adapter_pkg, name):
    with pytest.raises(AdapterRejected) as err:
        validate_adapter_name(name)
    assert one_line(err).startswith("invalid adapter name")
    assert rejected(adapter_pkg, name=name).startswith("invalid adapter name")


def test_name_must_match_provenance(adapter_pkg):
    assert "this is adapter 'demo', not 'other'" in rejected(adapter_pkg, name="other")


def test_size_caps(adapter_pkg, bad):
    assert "exceeds the adapter size cap of 1,000" in rejected(
        adapter_pkg, policy=AdapterPolicy(max_bytes=1000)
    )
    assert "exceeds the cap of 3" in rejected(adapter_pkg, policy=AdapterPolicy(max_files=3))
    (bad / "notes.md").write_bytes(b"x" * 9000)
    assert "notes.md: 9,000 bytes exceeds the cap of 8,192" in rejected(
        bad, policy=AdapterPolicy(max_text_bytes=8192)
    )


def test_hostile_header_length_rejected_before_reading(bad):
    weights = bad / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 1 << 60) + data[8:])
    edit_json(
        bad,
        "fedem.json",
        lambda m: m.__setitem__("weights_sha256", __import__("fedem.io").io.sha256_file(weights)),
    )
    assert "safetensors header of 1,152,921,504,606,846,976 bytes exceeds the cap" in rejected(bad)
    assert "header of" in rejected(bad, policy=AdapterPolicy(max_header_bytes=100))


def _reheader(folder: Path, fn) -> None:
    """Rewrite the safetensors JSON header by hand (keeping the data buffer), and reseal the sha."""
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    fn(header)
    raw = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    edit_json(folder, "fedem.json", lambda m: m.__setitem__("weights_sha256", sha256_file(weights)))


def test_unexpected_dtype_rejected(bad):
    def to_i32(h):
        k = sorted(k for k in h if k != "__metadata__")[0]
        h[k]["dtype"] = "I32"  # same byte size as F32, so only the dtype check can refuse it

    _reheader(bad, to_i32)
    assert "has dtype 'I32'; allowed: F32, BF16, F16" in rejected(bad)


def test_offsets_that_lie_rejected(bad):
    def overlap(h):
        keys = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
        h[keys[1]]["data_offsets"] = [0, h[keys[1]]["data_offsets"][1] - h[keys[1]]["data_offsets"][0]]

    _reheader(bad, overlap)
    assert "gap or overlap" in rejected(bad)


def test_keys_that_are_not_lora_of_allowed_targets_rejected(bad, base_info):
    def add_out_proj(t):
        t["base_model.model.backbone.layers.0.mixer.out_proj.lora_A.weight"] = torch.zeros(8, 128)
        return t

    rewrite_weights(bad, add_out_proj)
    assert "unexpected tensor 'base_model.model.backbone.layers.0.mixer.out_proj.lora_A.weight'" in rejected(
        bad
    )
    assert "unexpected tensor" in rejected(bad, base_info)


def test_non_lora_options_rejected(bad):
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("use_dora", True))
    assert "use_dora=True is not supported" in rejected(bad)


def test_tampered_weights_sha_rejected(bad):
    rewrite_weights(bad, lambda t: {k: v * 1.5 for k, v in t.items()}, reseal=False)
    assert "does not match fedem.json weights_sha256" in rejected(bad)


def test_missing_provenance_field_rejected(bad):
    edit_json(bad, "fedem.json", lambda m: m["metrics"].pop("bpb_before"))
    assert "fedem.json: missing metrics.bpb_before" in rejected(bad)


def test_symlink_and_subfolder_rejected(bad, tmp_path):
    (bad / "sub").mkdir()
    assert "sub-folders are refused" in rejected(bad)
    (bad / "sub").rmdir()
    (bad / "link.json").symlink_to(tmp_path)
    assert "symlinks are refused" in rejected(bad)


# -- hostile provenance and headers: always a one-line AdapterRejected, never another exception ----------
DEEP = 100_000  # far past Python's recursion limit, far under the 1 MiB text cap


def _deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("file", ["fedem.json", "adapter_config.json"])
def test_deeply_nested_json_rejected(bad, file):
    text = (bad / file).read_text()
    (bad / file).write_text(text[:-1].rstrip().rstrip("}") + f', "deep": {_deep()}}}')
    assert f"{file}: invalid JSON" in rejected(bad)


def test_deeply_nested_safetensors_header_rejected(bad):
    weights = bad / "adapter_model.safetensors"
    raw = ('{"a": ' + _deep() + "}").encode()
    weights.write_bytes(struct.pack("<Q", len(raw)) + raw)
    edit_json(bad, "fedem.json", lambda m: m.__setitem__("weights_sha256", sha256_file(weights)))
    assert "malformed safetensors header" in rejected(bad)


@pytest.mark.parametrize("arch", ["llama", ["mamba2"], 7])
def test_unknown_arch_rejected(bad, arch):
    edit_json(bad, "fedem.json", lambda m: m["base"].__setitem__("arch", arch))
    assert "base.arch" in rejected(bad) and "not a supported architecture" in rejected(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bpb_before", "abc"),
        ("bpb_after", "1.5"),
        ("bpb_after", {"x": 1}),
        ("bpb_after", True),
        ("bpb_before", float("nan")),
        ("bpb_after", float("inf")),
        ("steps", "many"),
        ("steps", -1),
        ("tokens", 1.5),
    ],
)
def test_bad_metrics_rejected(bad, field, value):
    edit_json(bad, "fedem.json", lambda m: m["metrics"].__setitem__(field, value))
    # NaN and Infinity are refused by the bounded JSON parser itself, before any field is read.
    assert re.search(
        rf"fedem.json: (metrics\.{field}|invalid JSON \((NaN|Infinity) is not a number)", rejected(bad)
    )


@pytest.mark.parametrize("alpha", [16.9, 0.5, 8.25])
def test_fractional_lora_alpha_rejected(bad, alpha):
    """fedem's loader keeps alpha as an int, so 16.9 would silently train as 16: refuse it."""
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("lora_alpha", alpha))
    assert f"lora_alpha must be a positive integer (got {alpha!r})" in rejected(bad)


def test_integral_lora_alpha_accepted(bad):
    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("lora_alpha", 16.0))
    assert validate_adapter(bad).alpha == 16.0


@pytest.mark.parametrize("alpha", [16.9, 0.5, float("inf")])
def test_loader_refuses_fractional_lora_alpha(bad, alpha):
    from fedem.adapter.lora import read_adapter_config
    from fedem.errors import ModelError

    edit_json(bad, "adapter_config.json", lambda c: c.__setitem__("lora_alpha", alpha))
    with pytest.raises(ModelError) as err:
        read_adapter_config(bad, "mamba2")
    # The loader applies the validator's own check (one rule, one message).
    assert re.search(
        r"adapter_config.json: (lora_alpha must be a positive integer|invalid JSON)", one_line(err)
    )
