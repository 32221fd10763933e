"""Checkpoint tags on both backends: the date's name on the revision's own id, never moved."""

from __future__ import annotations

import pytest

from fedem.errors import HubError
from fedem.publish.tags import checkpoint_tag, checkpoint_tags, is_checkpoint_tag, tag_checkpoint

from .conftest import T0


def _publish(hub, tmp_path, n: int):
    folder = tmp_path / f"v{n}"
    folder.mkdir()
    (folder / "config.json").write_text(f'{{"v": {n}}}')
    hub.create_repo("seshu")
    head = hub.head("seshu")
    return hub.publish(
        "seshu", folder, message=f"v{n}", parent=head.id if head else None, author="maintainer"
    )


def _tag_target(hub, tag: str) -> str:
    return hub.resolve("seshu", tag).id


def test_tags_follow_the_clocks_date_and_count_up_within_a_day(hub, tmp_path, clock):
    r1 = _publish(hub, tmp_path, 1)
    assert tag_checkpoint(hub, "seshu", r1.id, clock=clock) == "seshu-20261201"
    r2 = _publish(hub, tmp_path, 2)
    assert tag_checkpoint(hub, "seshu", r2.id, clock=clock) == "seshu-20261201-2"
    clock.advance(days=1)
    r3 = _publish(hub, tmp_path, 3)
    assert tag_checkpoint(hub, "seshu", r3.id, clock=clock) == "seshu-20261202"
    for tag, rev in (("seshu-20261201", r1), ("seshu-20261201-2", r2), ("seshu-20261202", r3)):
        assert _tag_target(hub, tag) == rev.id
    if hasattr(hub, "fake"):  # on hf:// the git tag points at the commit SHA itself
        tags = hub.fake.repos["fedem-test/seshu"].tags
        assert tags == {"seshu-20261201": r1.id, "seshu-20261201-2": r2.id, "seshu-20261202": r3.id}
        assert all(len(sha) == 40 for sha in tags.values())


def test_tagging_again_returns_the_tag_it_has(hub, tmp_path, clock):
    r1 = _publish(hub, tmp_path, 1)
    first = tag_checkpoint(hub, "seshu", r1.id, clock=clock)
    clock.advance(days=3)  # a rerun days later (after a crash between publish and tag) adds nothing
    assert tag_checkpoint(hub, "seshu", r1.id, clock=clock) == first
    assert checkpoint_tags("seshu", hub.resolve("seshu", r1.id)) == (first,)


def test_a_tag_on_another_revision_is_refused_and_never_moved(hub, tmp_path, clock):
    r1 = _publish(hub, tmp_path, 1)
    hub.tag("seshu", r1.id, "seshu-20261201")  # another publisher's checkpoint of the same day
    r2 = _publish(hub, tmp_path, 2)
    with pytest.raises(HubError) as err:
        hub.tag("seshu", r2.id, "seshu-20261201")
    assert r1.id in str(err.value) and "immutable" in str(err.value) and "\n" not in str(err.value)
    assert tag_checkpoint(hub, "seshu", r2.id, clock=clock) == "seshu-20261201-2"
    assert _tag_target(hub, "seshu-20261201") == r1.id


@pytest.mark.parametrize("exist_ok", [False, True], ids=["hub-409", "hub-says-200"])
def test_hf_refuses_a_tag_that_a_racer_took_even_when_the_hub_reports_success(hub, tmp_path, clock, exist_ok):
    """On hf:// another client may take the name between our look and our create. The Hub then
    answers 409, or (as `create_tag(exist_ok=True)` makes it look) success with the tag left on
    the other commit: the read-back refuses both, and tag_checkpoint moves on to the next name."""
    if not hasattr(hub, "fake"):
        pytest.skip("hf:// only")
    r1 = _publish(hub, tmp_path, 1)
    r2 = _publish(hub, tmp_path, 2)
    hub.fake.tag_exist_ok = exist_ok
    real = hub.api.create_tag
    raced = []

    def racing_create_tag(repo_id, *, tag, revision, **kw):
        if not raced:  # the racer gets there first, once
            hub.fake.repos[repo_id].tags[tag] = r1.id
            raced.append(tag)
        return real(repo_id, tag=tag, revision=revision, **kw)

    hub.api.create_tag = racing_create_tag
    with pytest.raises(HubError, match=f"already names revision {r1.id}"):
        hub.tag("seshu", r2.id, "accepted")
    raced.clear()
    assert tag_checkpoint(hub, "seshu", r2.id, clock=clock) == "seshu-20261201-2"
    assert hub.fake.repos["fedem-test/seshu"].tags["seshu-20261201"] == r1.id, "never moved"


def test_tag_names():
    assert checkpoint_tag("fedem/seshu", T0.date(), 1) == "seshu-20261201"
    assert checkpoint_tag("seshu", T0.date(), 12) == "seshu-20261201-12"
    assert is_checkpoint_tag("org/seshu", "seshu-20261201-2") and not is_checkpoint_tag("seshu", "seshu-te")
    with pytest.raises(HubError, match="at most 99"):
        checkpoint_tag("seshu", T0.date(), 100)
