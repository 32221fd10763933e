"""lm-eval's own `hf` model scores a saved Seshu offline, and agrees with fedem's bits/byte."""

import json
import math

import pytest


@pytest.fixture
def local_task(tmp_path):
    docs = ["नमस्ते दुनिया, यह एक परीक्षण है।", "Hello world, this is a test.", "తెలుగు భాష చాలా అందమైనది."]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps({"text": d}, ensure_ascii=False) for d in docs))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "fedem_local.yaml").write_text(f"""
task: fedem_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {tmp_path / "docs.jsonl"}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""")
    return tmp_path / "tasks", docs


def test_lm_eval_hf_model_scores_saved_seshu_offline(tiny_base, local_task, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    include, docs = local_task
    # add_bos_token=False: ByT5's tokenizer otherwise appends an EOS that lm-eval would score as a byte.
    lm = HFLM(
        pretrained=str(tiny_base / "model"),
        device="cpu",
        batch_size=1,
        max_length=128,
        dtype="float32",
        add_bos_token=False,
    )
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=["fedem_local"],
        task_manager=TaskManager(include_path=str(include), include_defaults=False),
        log_samples=False,
    )
    bpb = res["results"]["fedem_local"]["bits_per_byte,none"]
    assert math.isfinite(bpb) and 0 < bpb < 12

    # fedem's own scorer on the same documents (each scored from an EOS prefix) must agree.
    import torch

    from fedem.model import load_model
    from fedem.model.tokenizer import EOS_ID, encode

    model = load_model(tiny_base / "model")
    total_nll, total_bytes = 0.0, 0
    for d in docs:
        ids = torch.tensor([[EOS_ID, *encode(d)]])
        with torch.no_grad():
            logp = model(input_ids=ids).logits.log_softmax(-1)[0, :-1]
        total_nll -= logp.gather(-1, ids[0, 1:, None]).sum().item()
        total_bytes += len(d.encode())
    assert bpb == pytest.approx(total_nll / total_bytes / math.log(2), rel=1e-3)
