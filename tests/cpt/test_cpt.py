"""`fedem cpt` end to end on a file:// hub: helpful data publishes, a harmful run does not (and
says which language), consecutive runs train on disjoint blocks, nothing new trains nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from fedem import config as cfgio
from fedem.cli import main
from fedem.cpt import run_cpt
from fedem.data import load_documents, pack, split_heldout
from fedem.data.dataset import PackedData
from fedem.publish import pull_checkpoint

from .conftest import LANGS, ROOT_DOCS, cpt_config, data


def quiet(*_a, **_k):
    pass


@pytest.fixture
def gathered(monkeypatch):
    """Every (source name, block index, block bytes) the training loop gathers, per run."""
    runs: list[list[tuple[str, int, bytes]]] = []
    real = PackedData.gather

    def spy(self, draws):
        runs[-1].extend((self.spec.sources[s].name, int(i), bytes(self.train[s][i])) for s, i in draws)
        return real(self, draws)

    monkeypatch.setattr(PackedData, "gather", spy)
    return runs


def _root_blocks(lang: str) -> set[bytes]:
    """The training blocks the root pretrained on: those of the language's first ROOT_DOCS documents."""
    from fedem.data import SourceSpec

    docs = load_documents(SourceSpec(embedded=lang, max_documents=ROOT_DOCS))
    return {bytes(b) for b in pack(split_heldout(docs, 0.05)[0], 64)}


def _duplicated(lang: str) -> set[bytes]:
    """Block texts that occur more than once in the whole source (the corpus repeats a few)."""
    from fedem.data import SourceSpec

    blocks = [bytes(b) for b in pack(split_heldout(load_documents(SourceSpec(embedded=lang)), 0.05)[0], 64)]
    return {b for b in blocks if blocks.count(b) > 1}


def test_two_runs_publish_and_train_on_disjoint_new_blocks(root_hub, tmp_path, clock, gathered):
    root = root_hub.head("seshu")
    published = []
    for i in (1, 2):
        gathered.append([])
        clock.advance(hours=1)
        out = run_cpt(
            cpt_config(tmp_path / f"cpt{i}", steps=4), root_hub, progress=False, log=quiet, clock=clock
        )
        assert out.published is not None, out.reason
        published.append(out.published)
    first, second = published
    assert (first.tag, second.tag) == ("seshu-20261201-2", "seshu-20261201-3")
    assert [r.id for r in root_hub.revisions("seshu")] == [second.revision.id, first.revision.id, root.id]

    # Blocks: each run's draws are new (beyond what the chain consumed), and no block twice.
    runs = [{(s, i) for s, i, _ in run} for run in gathered]
    assert all(len(r) == len(run) == 16 for r, run in zip(runs, gathered, strict=True))
    assert not runs[0] & runs[1], "the second run continues after the first"
    for lang in LANGS:
        seen, dup = _root_blocks(lang), _duplicated(lang)
        for run in gathered:
            texts = {b for s, _, b in run if s == f"embedded:{lang}"} - dup
            assert not texts & seen, f"{lang}: a block trained on before was trained again"
            seen |= texts

    # What the hub holds: a checked checkpoint recording its parent, relation and cursor.
    ckpt = pull_checkpoint(root_hub, "seshu", first.tag)
    rec = ckpt.record
    assert (rec.parent.revision, rec.relation) == (root.id, "finetune")
    consumed = {name: c.blocks for name, c in rec.cursor.sources.items()}
    root_rec = pull_checkpoint(root_hub, "seshu", root.id).record
    taken = {s: sum(1 for x, _ in runs[0] if x == s) for s in consumed}
    for src in root_rec.data["sources"]:
        assert consumed[src["name"]] == src["train_blocks"] + taken[src["name"]]
    assert rec.metrics["heldout_by_language"]["published"] is True
    card = (ckpt.folder / "README.md").read_text()
    assert "base_model: seshu\n" in card and "base_model_relation: finetune" in card and root.id in card
    assert pull_checkpoint(root_hub, "seshu", second.tag).record.parent.revision == first.revision.id


def test_a_run_that_makes_a_language_worse_publishes_nothing(root_hub, tmp_path, clock):
    """Only Telugu, at a high learning rate: en and hi get worse, so nothing is published."""
    head = root_hub.head("seshu")
    cfg = cpt_config(tmp_path / "cpt", langs=("te",), steps=8, lr=0.03)
    path = tmp_path / "cpt.yaml"
    path.write_text(yaml.safe_dump(cfgio.to_dict(cfg)))
    res = CliRunner().invoke(main, ["cpt", "--config", str(path), "--hub", root_hub.url, "--no-progress"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("not published:"))
    named = line.removeprefix("not published: ").split(" bits/byte")[0]  # "hi +1.7566, en +1.6919"
    assert {part.split()[0] for part in named.split(", ")} == {"en", "hi"}, line
    assert root_hub.revisions("seshu") == [head], "nothing was published"
    rec = json.loads((tmp_path / "cpt" / "model" / "fedem.json").read_text())
    verdict = rec["metrics"]["heldout_by_language"]
    assert verdict["published"] is False and verdict["after"]["te"] < verdict["before"]["te"]
    assert verdict["after"]["hi"] - verdict["before"]["hi"] > verdict["delta"]


def test_nothing_new_trains_and_publishes_nothing(root_hub, tmp_path):
    head = root_hub.head("seshu")
    cfg = cpt_config(tmp_path / "cpt", data=data(max_documents=ROOT_DOCS))  # exactly the root's data
    out = run_cpt(cfg, root_hub, progress=False, log=quiet)
    assert out.published is None and out.reason.startswith("no new data")
    assert out.plan.steps == 0 and out.plan.remaining < 4
    assert not (tmp_path / "cpt").exists() and root_hub.revisions("seshu") == [head]


def test_dry_run_prints_the_plan_and_writes_nothing(root_hub, tmp_path):
    head = root_hub.head("seshu")
    lines: list[str] = []
    out = run_cpt(cpt_config(tmp_path / "cpt", steps=3), root_hub, dry_run=True, log=lines.append)
    text = "\n".join(lines)
    assert "SOURCE" in text and "embedded:te" in text and "training 3 steps on 12 new blocks" in text
    assert out.reason.startswith("dry run: would train 3 steps") and "nothing written" in out.reason
    assert not (tmp_path / "cpt").exists() and not (tmp_path / "cache").exists()
    assert root_hub.revisions("seshu") == [head]
    assert np.sum([s.take for s in out.plan.sources]) == 12


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ["data.block_size=128"],
            "data.block_size: 128, but the checkpoint's data cursor counts 64-byte blocks",
        ),
        (["eval.delta=-1"], "eval.delta: expected a number of bits/byte from 0 to 8"),
        (["repo=../x"], "repo: expected a hub repo name"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(root_hub, tmp_path, sets, message):
    head = root_hub.head("seshu")
    path = tmp_path / "cpt.yaml"
    path.write_text(yaml.safe_dump(cfgio.to_dict(cpt_config(tmp_path / "cpt"))))
    args = ["cpt", "--config", str(path), "--hub", root_hub.url]
    res = CliRunner().invoke(main, args + [a for s in sets for a in ("--set", s)])
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "cpt").exists() and root_hub.revisions("seshu") == [head]
