"""Per-document scoring: lm-eval's rolling windows exactly, batching that changes nothing, NaN kept."""

import numpy as np
import pytest
import torch

from fedem.evaluate.documents import rolling_windows, score_documents
from fedem.model import build_model
from fedem.model.tokenizer import EOS_ID, encode

DOCS = ["नमस्ते दुनिया, यह एक परीक्षण है।", "Hello world, this is a test.", "తెలుగు", "a"]


@pytest.mark.parametrize("max_length", [1, 5, 16, 2048])
def test_windows_are_lm_evals(max_length):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    for i, doc in enumerate(DOCS):
        tokens = [*encode(doc), EOS_ID]  # what lm-eval's hf model gets from the byte tokenizer
        theirs = [
            make_disjoint_window(w)
            for w in get_rolling_token_windows(
                tokens, prefix_token=EOS_ID, max_seq_len=max_length, context_len=1
            )
        ]
        ours = rolling_windows(i, doc, max_length)
        assert len(ours) == len(theirs)
        for w, (ctx, cont) in zip(ours, theirs, strict=True):
            # lm-eval feeds (ctx + cont)[-(L+1):][:-1] and scores the last len(cont) logits.
            assert w.inputs == (ctx + cont)[-(max_length + 1) :][:-1]
            assert w.targets[-w.scored :] == cont and w.scored == len(cont)
        assert sum(w.scored for w in ours) == len(tokens)


@pytest.fixture(scope="module")
def model():
    return build_model("tiny", seed=3).eval()


def _one_by_one(model, docs, max_length):
    nats = []
    for i, d in enumerate(docs):
        total = 0.0
        for w in rolling_windows(i, d, max_length):
            x = torch.tensor([w.inputs])
            with torch.no_grad():
                logp = model(input_ids=x).logits.log_softmax(-1)[0]  # (l, V)
            total -= logp[torch.arange(len(w.inputs)), torch.tensor(w.targets)][-w.scored :].sum().item()
        nats.append(total)
    return np.array(nats) / np.log(2)


@pytest.mark.parametrize("max_length", [8, 2048])
def test_batched_scores_equal_one_window_at_a_time(model, max_length):
    got = score_documents(model, DOCS, max_length=max_length, tokens_per_batch=64)
    assert got.max_length == max_length
    np.testing.assert_allclose(got.bits, _one_by_one(model, DOCS, max_length), rtol=1e-5)
    assert list(got.bytes) == [len(d.encode()) for d in DOCS]


def test_non_finite_outputs_are_not_hidden(model):
    import copy

    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.lm_head.weight[5, 0] = float("nan")  # tied to the embedding: byte 2 turns into NaN
    assert not score_documents(bad, DOCS).finite
    assert score_documents(model, DOCS).finite
