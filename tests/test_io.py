"""Atomic writes: readers see the old content or the new, never a part or nothing."""

import os

import pytest

from fedem import io


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    p = tmp_path / "a" / "f.json"
    io.atomic_write_json(p, {"x": 1})
    io.atomic_write_json(p, {"x": 2})
    assert p.read_text().strip().endswith("}") and '"x": 2' in p.read_text()
    assert sorted(os.listdir(p.parent)) == ["f.json"]


def test_atomic_dir_on_failure_leaves_the_target_untouched(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("old")
    with pytest.raises(RuntimeError), io.atomic_dir(tmp_path / "d", overwrite=True) as tmp:
        (tmp / "keep").write_text("new")
        raise RuntimeError("crash while building")
    assert (tmp_path / "d" / "keep").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_atomic_dir_overwrite_swaps_in_one_step(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("old")
    calls = []
    real_replace = os.replace
    # With RENAME_EXCHANGE the target is never renamed away: no os.replace of the live folder.
    monkeypatch.setattr(io.os, "replace", lambda a, b: (calls.append((a, b)), real_replace(a, b))[1])
    with io.atomic_dir(tmp_path / "d", overwrite=True) as tmp:
        (tmp / "f").write_text("new")
    assert (tmp_path / "d" / "f").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["d"]
    if io._exchange(tmp_path / "d", tmp_path / "d"):  # exchange supported here
        assert calls == []


def test_atomic_dir_refuses_to_overwrite_by_default(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileExistsError), io.atomic_dir(tmp_path / "d"):
        pass
