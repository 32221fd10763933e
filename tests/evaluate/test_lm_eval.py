"""fedem's shipped lm-eval tasks: lm-eval alone scores a saved Seshu exactly as fedem's fast path."""

import filecmp

import pytest

from fedem.evaluate.harness import TASKS_DIR, ship_tasks, task_name


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_shipped_tasks_are_what_ship_tasks_writes(tmp_path):
    ship_tasks(tmp_path)
    shipped = sorted(p.name for p in TASKS_DIR.iterdir() if p.is_file() and p.name != "utils.py")
    assert shipped == sorted(p.name for p in tmp_path.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, TASKS_DIR, shipped, shallow=False)
    assert not mismatch and not errors
    assert "import fedem" not in (TASKS_DIR / "utils.py").read_text()


def test_lm_eval_scores_a_saved_model_through_the_shipped_task_like_the_fast_path(tiny_base):
    """What `lm-eval run --model hf --model_args pretrained=DIR --include_path TASKS_DIR` does,
    in process: the saved folder is loaded by lm-eval itself, with its default tokenization."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from fedem.evaluate.documents import score_documents
    from fedem.evaluate.heldout import read_heldout
    from fedem.model import load_model

    langs, max_length = ("hi", "en"), 64  # short windows: documents span several, state restarts
    lm = HFLM(
        pretrained=str(tiny_base / "model"),
        device="cpu",
        batch_size=8,
        max_length=max_length,
        dtype="float32",
    )
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task_name(lang) for lang in langs],
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        log_samples=False,
    )
    model = load_model(tiny_base / "model")
    heldout = read_heldout(TASKS_DIR / "heldout.jsonl")
    for lang in langs:
        theirs = res["results"][task_name(lang)]["bits_per_byte,none"]
        ours = score_documents(model, heldout.docs[lang], max_length=max_length).bits_per_byte
        assert 0 < ours < 12 and theirs == pytest.approx(ours, abs=1e-3)


def test_evaluate_lm_eval_flag_agrees_with_the_fast_path(tiny_base, eval_adapter):
    from fedem.evaluate.run import evaluate_model

    kw = dict(languages=["te"], max_length=128, resamples=100)
    fast = evaluate_model(tiny_base, [eval_adapter], **kw)
    slow = evaluate_model(tiny_base, [eval_adapter], use_lm_eval=True, **kw)
    assert slow["scorer"] == "lm-eval" and slow["max_length"] == 128
    assert slow["languages"]["te"]["bits_per_byte"] == pytest.approx(
        fast["languages"]["te"]["bits_per_byte"], abs=1e-3
    )
    a, b = slow["adapters"][0]["languages"]["te"], fast["adapters"][0]["languages"]["te"]
    assert a["candidate_bpb"] == pytest.approx(b["candidate_bpb"], abs=1e-3)
    assert a["candidate_bpb"] != pytest.approx(slow["languages"]["te"]["bits_per_byte"], abs=1e-6)
