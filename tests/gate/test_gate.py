"""The gate end to end on trained adapters: each defence by its reason, blindness, replay, credit."""

from __future__ import annotations

import json
import os
import pickle
from datetime import date

import pytest
import torch
from click.testing import CliRunner

from fedem.cli import main

from .conftest import copy_adapter, rewrite_weights

# Its fixtures train several tiny adapters: on two shared cores that can pass the default 300 s.
pytestmark = pytest.mark.timeout(900)

DAY = date(2026, 12, 1)
SALT = "test-salt"
POLICY = """gate:
  languages: [en, hi, te]
  docs_per_language: 24
  min_docs: 8
  resamples: 1000
"""
CONTRIBUTORS = ("alice", "bob", "carol", "dave", "erin", "frank", "mallory", "oscar")


class _Boom:
    """Unpickling this creates a folder: proof that nobody unpickled the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def candidates(hops, tmp_path_factory):
    """Eight submissions in arrival order, with the reason each must get (None: accepted)."""
    root = tmp_path_factory.mktemp("candidates")
    good = hops["good"]
    zero = rewrite_weights(
        copy_adapter(good, root / "zero", adapter="zero", contributor="dave"),
        lambda t: {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in t.items()},
    )
    copy = copy_adapter(good, root / "copy", adapter="copycat", contributor="mallory")
    scaled = rewrite_weights(
        copy_adapter(good, root / "scaled", adapter="scaled", contributor="oscar"),
        lambda t: {k: 1.01 * v if "lora_B" in k else v for k, v in t.items()},
    )

    def poison(t):
        k = sorted(t)[0]
        t[k] = t[k].clone()
        t[k][0, 0] = float("nan")
        return t

    nan = rewrite_weights(copy_adapter(good, root / "nan", adapter="nan", contributor="erin"), poison)
    pickled = rewrite_weights(
        copy_adapter(hops["noreplay"], root / "pickle", adapter="pickled", contributor="frank"),
        lambda t: {k: 0.5 * v for k, v in t.items()},
    )
    marker = root / "unpickled"
    (pickled / "adapter_model.bin").write_bytes(pickle.dumps(_Boom(str(marker))))
    return marker, [
        (good, None),
        (hops["random"], "harmful"),
        (zero, "no_op"),
        (copy, "duplicate"),
        (scaled, "near_duplicate"),
        (nan, "non_finite"),
        (pickled, "invalid"),
        (hops["noreplay"], "regression"),
    ]


@pytest.fixture(scope="module")
def gate_env(heldout_file, tmp_path_factory):
    policy = tmp_path_factory.mktemp("policy") / "nightly.yaml"
    policy.write_text(POLICY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEDEM_HELDOUT", str(heldout_file))
        mp.setenv("FEDEM_GATE_SALT", SALT)
        yield policy


@pytest.fixture(scope="module")
def night(gate_base, candidates, gate_env, tmp_path_factory):
    """``fedem gate`` over all eight candidates: (report, everything it printed, report bytes)."""
    _, subs = candidates
    out = tmp_path_factory.mktemp("night") / "report.json"
    args = [
        "gate",
        str(gate_base),
        "--policy",
        str(gate_env),
        "--date",
        DAY.isoformat(),
        "--output",
        str(out),
    ]
    for folder, _ in subs:
        args += ["--candidate", f"{folder}:hi"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), res.output, out.read_bytes()


def test_each_defence_rejects_with_its_own_reason(night, candidates):
    report, output, _ = night
    marker, subs = candidates
    got = [(c["decision"], c.get("reason")) for c in report["candidates"]]
    assert got == [("accept" if r is None else "reject", r) for _, r in subs]
    assert "1/8 accepted" in output
    assert not marker.exists()  # the pickle was refused, never loaded


def test_accepted_carry_figures_and_rejected_none(night):
    report, _, _ = night
    for c in report["candidates"]:
        if c["decision"] == "accept":
            hi = c["languages"]["hi"]
            assert hi["hi"] < -0.002 and hi["documents"] == 24 and hi["resamples"] == 1000
            assert all(c["languages"][k]["hi"] <= 0.01 for k in ("en", "te"))
        else:
            assert "languages" not in c and c["reason"] and c["detail"]
    assert report["max_length"] == 2048 and report["date"] == "2026-12-01"
    assert set(report["sample"]) == {"en", "hi", "te"}


def test_replay_keeps_the_other_languages(night, hops):
    """The same Hindi hop, with the default replay and without: only the first passes."""
    report, _, _ = night
    with_replay, without = report["candidates"][0], report["candidates"][7]
    assert with_replay["decision"] == "accept"
    assert without["reason"] == "regression"
    for name, share in (("good", 0.5), ("noreplay", 0.0)):
        sources = json.loads((hops[name] / "fedem.json").read_text())["data"]["sources"]
        replayed = sum(s["probability"] for s in sources if s["name"].startswith("replay:"))
        assert replayed == pytest.approx(share)


def test_nothing_names_a_contributor_or_quotes_the_heldout_set(night, heldout_file):
    _, output, report_bytes = night
    artifacts = [report_bytes, output.encode()]
    for blob in artifacts:
        text = blob.decode()
        for name in CONTRIBUTORS:
            assert name not in text
        assert str(heldout_file) not in text and "seshu-hi" not in text
    windows = {b[i : i + 32] for b in artifacts for i in range(max(1, len(b) - 31))}
    for line in heldout_file.read_text().splitlines():
        doc = json.loads(line)["text"].encode()
        assert doc not in report_bytes
        assert not any(doc[i : i + 32] in windows for i in range(max(1, len(doc) - 31)))


def test_a_forged_self_report_changes_nothing(night, gate_base, hops, gate_env, tmp_path):
    from fedem.gate.policy import load_policy
    from fedem.gate.run import run_gate
    from fedem.gate.screen import Submission

    forged = copy_adapter(
        hops["good"], tmp_path / "forged", **{"metrics.bpb_after": 0.001, "metrics.bpb_before": 7.9}
    )
    report = run_gate(
        gate_base, [Submission(forged, ("hi",))], load_policy(gate_env), day=DAY, log=lambda *_: None
    )
    assert report["candidates"][0] == night[0]["candidates"][0]


def test_attribute_joins_names_after_the_decisions(night, candidates):
    from fedem.errors import FedemError
    from fedem.gate.run import attribute
    from fedem.io import sha256_file

    report, _, _ = night
    _, subs = candidates
    who = [{"id": sha256_file(f / "adapter_model.safetensors"), "contributor": f.name} for f, _ in subs]
    joined = attribute(report, who)
    assert [j["contributor"] for j in joined] == [f.name for f, _ in subs]
    assert joined[3]["reason"] == "duplicate" and joined[3]["id"] == joined[0]["id"]
    with pytest.raises(FedemError, match="does not match"):
        attribute(report, [who[1], who[0], *who[2:]])


def test_leave_one_out_credit_with_an_injected_merge(night, gate_base, hops, heldout_file):
    from fedem.evaluate.heldout import read_heldout
    from fedem.evaluate.loading import load_adapter, load_base
    from fedem.gate.credit import leave_one_out
    from fedem.gate.policy import GatePolicy
    from fedem.gate.run import draw_night

    base = load_base(gate_base)
    deltas = {p: load_adapter(p, base)[1] for p in (hops["good"], hops["noreplay"])}

    def build_merged(adapters):  # a stand-in for fedem.merge: plain sum of the deltas, in fp32
        model = load_base(gate_base).model
        with torch.no_grad():
            for a in adapters:
                d = deltas[a]
                for path, (fa, fb) in d.factors.items():
                    w = model.get_submodule(path).weight
                    w.copy_(w.float() + d.scale * (fb @ fa))
        return model

    policy = GatePolicy(languages=("en", "hi", "te"), docs_per_language=24, min_docs=8, resamples=1000)
    tonight = draw_night(policy, DAY, read_heldout(heldout_file), SALT)
    good_id = night[0]["candidates"][0]["id"]
    alone = leave_one_out(build_merged, {good_id: hops["good"]}, tonight, policy)
    # Merged with nothing else, its credit is its gate delta exactly (same night, same resamples).
    for lang, c in alone[good_id].items():
        assert c.as_dict() == pytest.approx(night[0]["candidates"][0]["languages"][lang], abs=1e-9)
    both = leave_one_out(build_merged, {good_id: hops["good"], "other": hops["noreplay"]}, tonight, policy)
    assert set(both) == {good_id, "other"}
    assert both["other"]["en"].delta > 0  # the no-replay hop costs the merge English
