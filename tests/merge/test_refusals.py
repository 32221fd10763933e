"""Refusals: each bad input is one line naming what is wrong, and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedem import config as cfgio
from fedem.adapter import BaseInfo
from fedem.cli import main
from fedem.config import Invalid
from fedem.errors import ConfigError, FedemError
from fedem.merge import MergeConfig, MergeSpec, merge_into_model, merge_to_dir
from fedem.model import build_model, load_model
from fedem.testing.adapters import write_lora_package

from .conftest import one_line


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(tmp_path: Path, base_dir, adapters, spec=None, **kw) -> str:
    """The one-line refusal of a merge into ``tmp_path/new/merged``, after checking nothing was written."""
    before = _tree(tmp_path)
    with pytest.raises(FedemError) as err:
        merge_to_dir(base_dir, adapters, spec or MergeSpec(), tmp_path / "new" / "merged", **kw)
    assert _tree(tmp_path) == before  # no output, no temporary sibling, not even the parent folder
    return one_line(err)


def _edit(folder: Path, fn) -> Path:
    meta = json.loads((folder / "fedem.json").read_text())
    fn(meta)
    (folder / "fedem.json").write_text(json.dumps(meta))
    return folder


def test_existing_output_folder(base, adapters, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FedemError) as err:
        merge_to_dir(base.dir, adapters, MergeSpec(), out)
    assert "already exists" in one_line(err) and _tree(out) == ["keep.txt"]


def test_weights_not_matching_the_adapters(base, adapters, tmp_path):
    assert "weights: 2 given for 3 adapters" in refused(
        tmp_path, base.dir, adapters, MergeSpec(weights=(1, 2))
    )


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan")])
def test_density_outside_0_1(density):
    with pytest.raises(Invalid, match=r"density: expected a number in \(0, 1\]"):
        MergeSpec("ties", density=density)
    with pytest.raises(ConfigError) as err:  # the same through a config, as the CLI reads it
        cfgio.load(
            MergeConfig,
            None,
            {"base": "b", "adapters": ["a"], "output": "o", "merge.method": "ties", "merge.density": density},
        )
    assert "merge.density" in one_line(err)


def test_spec_refuses_what_a_method_cannot_mean():
    for kw, field in [
        ({"method": "slerp"}, "method"),
        ({"method": "dare_ties"}, "density"),  # no paper default for DARE's p: say it
        ({"method": "linear", "density": 0.5}, "density"),  # linear does not sparsify
        ({"method": "ties", "rescale": "inverse"}, "rescale"),  # 1/p undoes random drops only
        ({"method": "ties", "weights": (1.0, -1.0)}, "weights"),  # TIES divides by agreeing weights
        ({"weights": (1.0, float("inf"))}, "weights"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(Invalid) as err:
            MergeSpec(**kw)
        assert err.value.field == field, kw


def test_adapters_for_different_bases(base, adapters, tmp_path):
    other = _edit(
        shutil.copytree(adapters[1], tmp_path / "x" / "other"), lambda m: m["base"].update(sha256="f" * 64)
    )
    line = refused(tmp_path, base.dir, [adapters[0], other])
    assert (
        line.startswith("adapters for different bases: a0 was trained on base sha256 5dad")
        and "a1 on ffff" in line
    )


def test_adapters_all_trained_on_another_base(base, adapters, tmp_path):
    """Caught from the bytes streamed (no extra pass): the base's own hash is not the one recorded."""
    moved = [
        _edit(shutil.copytree(a, tmp_path / "x" / a.name), lambda m: m["base"].update(sha256="e" * 64))
        for a in adapters
    ]
    line = refused(tmp_path, base.dir, moved)
    assert line.startswith("different base") and "eeeeeeeeeeee" in line


def test_targets_or_shapes_the_base_does_not_have(base, tmp_path):
    deeper = BaseInfo.from_model(build_model("small", "mamba2"))  # 4 layers: layers 2 and 3 are not in tiny
    wider = BaseInfo(base.info.arch, {k: (2 * o, i) for k, (o, i) in base.info.linear_shapes.items()})
    for name, info, tensor_line in [
        ("deep", deeper, "unexpected tensor 'base_model.model.backbone.layers.2"),
        ("wide", wider, "has shape [580, 4], this base expects [290, 4]"),
    ]:
        foreign = write_lora_package(tmp_path / "x" / name, info, base_sha256=base.sha256, name=name)
        # As fedem finetune records it (the shapes' hash), then as a 0.1.0 record without it.
        assert "records the LoRA shapes of another base" in refused(tmp_path, base.dir, [foreign])
        _edit(foreign, lambda m: m["base"].pop("lora_shapes_sha256"))
        assert tensor_line in refused(tmp_path, base.dir, [foreign])
    bad_target = base.adapter(tmp_path / "x" / "xproj", 0)
    cfg = json.loads((bad_target / "adapter_config.json").read_text())
    (bad_target / "adapter_config.json").write_text(json.dumps({**cfg, "target_modules": ["out_proj"]}))
    assert "out_proj" in refused(tmp_path, base.dir, [bad_target])


def test_rank_the_tensors_do_not_have(base, tmp_path):
    ad = base.adapter(tmp_path / "x" / "r", 0, r=4)
    cfg = json.loads((ad / "adapter_config.json").read_text())
    (ad / "adapter_config.json").write_text(json.dumps({**cfg, "r": 8}))
    line = refused(tmp_path, base.dir, [ad])
    assert "inconsistent with rank r=8" in line or "this base expects [8, 64]" in line, line


def test_sharded_index_pointing_outside_the_folder(base, adapters, tmp_path):
    shard = tmp_path / "x" / "sharded"
    shard.mkdir(parents=True)
    for name in ("config.json", "tokenizer_config.json"):
        shutil.copy(base.dir / name, shard / name)
    shutil.copy(base.dir / "model.safetensors", tmp_path / "x" / "stolen.safetensors")
    (shard / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"backbone.embeddings.weight": "../stolen.safetensors"}})
    )
    (shard / "decoy.safetensors").write_bytes(b"")  # check_model_dir wants a weights file
    assert "not a shard file name" in refused(tmp_path, shard, adapters)


def test_in_memory_merge_refusals(base, adapters):
    from peft import LoraConfig, get_peft_model

    model = load_model(base.dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FedemError) as err:
        merge_into_model(model, adapters, MergeSpec(), base_sha256="d" * 64)
    assert "different base" in one_line(err)
    with pytest.raises(FedemError) as err:
        merge_into_model(model, adapters, MergeSpec(weights=(1.0,)))
    assert "weights" in one_line(err)
    assert all(v.equal(before[k]) for k, v in model.state_dict().items())  # nothing changed
    wrapped = get_peft_model(load_model(base.dir), LoraConfig(r=2, target_modules=["in_proj"]))
    with pytest.raises(FedemError, match="not a PEFT-wrapped one"):
        merge_into_model(wrapped, adapters, MergeSpec())


def test_cli_refusal_is_one_error_line_exit_2(base, adapters, tmp_path):
    out = tmp_path / "merged"
    args = [
        "merge",
        str(base.dir),
        *map(str, adapters),
        "--method",
        "ties",
        "--density",
        "2",
        "--output",
        str(out),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error: ")
    assert "merge.density" in r.output and not out.exists()
    r = CliRunner().invoke(
        main, ["merge", str(base.dir), str(adapters[0]), "--weights", "1,x", "--output", str(out)]
    )
    assert r.exit_code == 2 and r.output.startswith("error: --weights") and not out.exists()
