"""The night's plan, from the registry's hops and the hub's merge records (pure functions)."""

from __future__ import annotations

from datetime import datetime

from fedem.clock import UTC
from fedem.hub.base import Revision
from fedem.nightly.plan import format_plan, marks, plan_night
from fedem.publish.history import History
from fedem.registry.model import Adapter, Hop, Spec

T = datetime(2026, 12, 1, tzinfo=UTC)
C0, C1 = "c0" * 32, "c1" * 32


def rev(i: int) -> str:
    return f"{i:064x}"


def adapter(name: str, *hops: Hop, lang: str = "te") -> Adapter:
    return Adapter(name, Spec("seshu", ("in_proj",), 8, (lang,)), hops=hops)


def hop(who: str, i: int, minute: int, **kw) -> Hop:
    return Hop(who, rev(i), f"2026-12-01T00:{minute:02d}:00Z", "2026-12-01T00:00:00Z", **kw)


def history(head: str = C0, merged: dict[str, str] | None = None, adapters: dict[str, str] | None = None):
    chain = (Revision("seshu", head, None, "m", T),)
    return History(chain, merged or {}, adapters or {})


def test_candidates_are_the_newest_unmerged_hop_in_arrival_order():
    reg = {
        "seshu-te": adapter(
            "seshu-te", hop("alice", 1, 5, merged_into=C0), hop("bob", 2, 30), hop("carol", 3, 40)
        ),
        "seshu-hi": adapter("seshu-hi", hop("dave", 4, 10), lang="hi"),
        "seshu-ta": adapter("seshu-ta", hop("erin", 5, 1, merged_into=C0)),
    }
    plan = plan_night(reg, history())
    assert [(c.name, c.revision, c.hops, c.contributors) for c in plan.candidates] == [
        ("seshu-hi", rev(4), (rev(4),), ("dave",)),
        ("seshu-te", rev(3), (rev(2), rev(3)), ("bob", "carol")),
    ]
    assert plan.candidates[0].languages == ("hi",)
    assert not plan.repairs and not plan.waiting


def test_a_hop_the_hub_records_as_merged_is_repaired_never_merged_again():
    reg = {"seshu-te": adapter("seshu-te", hop("alice", 1, 5), hop("bob", 2, 6))}
    plan = plan_night(reg, history(C1, merged={rev(1): C1, rev(2): C1}, adapters={rev(2): C1}))
    assert plan.candidates == () and plan.repairs == {"seshu-te": {rev(1): C1, rev(2): C1}}
    assert "repair: seshu-te hop" in format_plan(plan) and "nothing new" in format_plan(plan)
    fixed = marks(reg, plan.repairs)
    assert [h.merged_into for h in fixed["seshu-te"].hops] == [C1, C1]
    assert marks(fixed, plan.repairs) == {}, "marks already set are not written again"


def test_a_revision_rejected_on_this_checkpoint_waits_for_its_next_hop():
    rejected = adapter("seshu-hi", hop("carol", 7, 5, rejected_on=C0), lang="hi")
    plan = plan_night({"seshu-hi": rejected}, history(C0))
    assert plan.candidates == () and "rejected on this checkpoint" in plan.waiting["seshu-hi"]
    # on a newer checkpoint it is a candidate again (the nightly then finds it on the old base)
    assert [c.name for c in plan_night({"seshu-hi": rejected}, history(C1)).candidates] == ["seshu-hi"]
    # and a newer hop is gated even on the same checkpoint
    newer = adapter("seshu-hi", hop("carol", 7, 5, rejected_on=C0), hop("erin", 8, 9), lang="hi")
    assert plan_night({"seshu-hi": newer}, history(C0)).candidates[0].revision == rev(8)


def test_marks_never_overwrite_a_merge_and_record_rejections():
    reg = {"a": adapter("a", hop("x", 1, 1, merged_into=C0), hop("y", 2, 2))}
    out = marks(reg, {"a": {rev(1): C1}}, {"a": {rev(2): C0}})
    assert [(h.merged_into, h.rejected_on) for h in out["a"].hops] == [(C0, None), (None, C0)]
    assert marks(reg, {"ghost": {rev(1): C1}}) == {}, "an adapter gone from the registry is skipped"


def test_a_candidate_that_fails_validation_is_rejected_and_leaves_nothing(tmp_path):
    from fedem.hub.filehub import FileHub
    from fedem.nightly import NightlyConfig
    from fedem.nightly.candidates import pull_candidates
    from fedem.nightly.plan import PlannedAdapter

    hub = FileHub(tmp_path / "hub")
    hub.init()
    hub.create_repo("seshu-te")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fedem.json").write_text("{}")
    r = hub.publish("seshu-te", bad, message="m", parent=None, author="x")
    c = PlannedAdapter("seshu-te", "seshu-te", r.id, (r.id,), ("x",), ("te",), "2026-12-01T00:00:00Z")
    subs, waiting, invalid = pull_candidates(hub, [c], "0" * 64, tmp_path / "work", NightlyConfig())
    assert subs == [] and waiting == {} and list(invalid) == ["seshu-te"]
    reason, detail = invalid["seshu-te"]
    assert reason == "invalid" and detail and "\n" not in detail
    assert not (tmp_path / "work" / "adapters" / "seshu-te").exists(), "a rejected adapter never lands"


def test_a_copy_of_merged_weights_is_a_duplicate_under_any_name_or_base(tmp_path):
    # A re-labelled copy of an adapter the chain merged would count twice: refused by weights
    # hash before the base check (a copy claiming to be trained on the new head is caught too).
    import json
    import shutil

    from fedem.adapter import BaseInfo
    from fedem.hub.filehub import FileHub
    from fedem.model import build_model
    from fedem.nightly import NightlyConfig
    from fedem.nightly.candidates import pull_candidates
    from fedem.nightly.plan import PlannedAdapter
    from fedem.publish.history import MergedEntry
    from fedem.testing.adapters import write_lora_package

    info = BaseInfo.from_model(build_model("tiny", "mamba2", seed=0))
    merged = write_lora_package(tmp_path / "te", info, base_sha256="a" * 64, name="seshu-te", seed=1)
    copy = tmp_path / "ta"
    shutil.copytree(merged, copy)
    meta = json.loads((copy / "fedem.json").read_text())
    meta.update(adapter="seshu-ta", contributor="mallory")
    meta["base"]["sha256"] = "b" * 64  # "trained on the new head"
    (copy / "fedem.json").write_text(json.dumps(meta))
    other = write_lora_package(tmp_path / "hi", info, base_sha256="b" * 64, name="seshu-hi", seed=2)
    hub = FileHub(tmp_path / "hub")
    hub.init()
    planned = []
    for name, folder in (("seshu-ta", copy), ("seshu-hi", other)):
        hub.create_repo(name)
        r = hub.publish(name, folder, message="m", parent=None, author="x")
        planned.append(PlannedAdapter(name, name, r.id, (r.id,), ("x",), ("te",), "2026-12-01T00:00:00Z"))
    sha = json.loads((merged / "fedem.json").read_text())["weights_sha256"]
    entry = MergedEntry("seshu-te", rev(7), sha, (rev(7),))
    hist = History((Revision("seshu", C1, C0, "m", T),), {rev(7): C1}, {rev(7): C1}, {sha: (entry, C1)})
    subs, waiting, rejected = pull_candidates(
        hub, planned, "b" * 64, tmp_path / "work", NightlyConfig(), hist
    )
    assert rejected == {
        "seshu-ta": ("duplicate", f"the same weights as seshu-te@{rev(7)[:12]}, merged into seshu@{C1[:12]}")
    }
    assert [s.folder.name for s in subs] == ["seshu-hi"] and waiting == {}
    assert not (tmp_path / "work" / "adapters" / "seshu-ta").exists(), "a duplicate never lands"
