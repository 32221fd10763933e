"""The model card: Hugging Face metadata the Hub's own parser reads back, and fedem's sections."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from fedem.errors import FedemError
from fedem.publish.card import Credit, MergedAdapter, Method, model_card

PARENT = "a" * 40
BPB = {"te": 1.2345, "hi": 2.5, "en": 3.0}


def _merge_card(**kw) -> str:
    args = dict(
        model_name="fedem/seshu",
        relation="merge",
        base_model="fedem/seshu",
        parent_revision=PARENT,
        bpb=BPB,
        bpb_parent={"te": 1.3, "hi": 2.5, "en": 3.1},
        merged=(MergedAdapter("seshu-te", "b" * 40, "c" * 64, 1.0),),
        method=Method("ties", {"density": 0.5, "note": "a|b"}),
        data_fingerprints={"gate held-out": "d" * 64},
        credit=(Credit("seshu-te", {"te": -0.0421, "hi": 0.0003}, ("alice", "bob")),),
    )
    return model_card(**{**args, **kw})


def test_the_hub_reads_the_metadata_back():
    card = ModelCard(_merge_card())
    data = card.data
    assert data.base_model == "fedem/seshu" and data.base_model_relation == "merge"
    assert data.library_name == "transformers" and data.language == ["te", "hi", "en"]
    assert {"fedem", "seshu"} <= set(data.tags)
    got = {r.dataset_config: (r.metric_type, r.metric_value) for r in data.eval_results}
    assert got == {lang: ("bits_per_byte", v) for lang, v in BPB.items()}


def test_sections_the_nightly_fills():
    text = _merge_card()
    assert f"a merge into `fedem/seshu` at revision `{PARENT}`" in text
    assert "| seshu-te | " + "b" * 40 + " | " + "c" * 64 + " | 1 |" in text
    assert "## Method" in text and "`ties`" in text and '"a\\|b"' in text, "a pipe cannot break a cell"
    assert "| seshu-te | te -0.0421 · hi +0.0003 | alice, bob |" in text
    assert "| te | 1.2345 | 1.3000 | -0.0655 |" in text
    assert "d" * 64 in text


def test_a_cpt_card_is_a_finetune_of_its_parent_and_a_root_has_no_base():
    cpt = ModelCard(
        model_card(
            model_name="seshu", relation="finetune", base_model="seshu", parent_revision=PARENT, bpb=BPB
        )
    )
    assert (cpt.data.base_model, cpt.data.base_model_relation) == ("seshu", "finetune")
    assert "## Merged adapters" not in cpt.text and "## Credit" not in cpt.text
    root = ModelCard(model_card(model_name="seshu", relation=None, bpb={"all": 5.0}, languages=["te"]))
    assert root.data.base_model is None and "base_model_relation" not in root.content
    assert root.data.language == ["te"]


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"relation": "adapter"}, "relation 'adapter'"),
        ({"base_model": None}, "go together"),
        ({"bpb": {"te": float("nan")}}, "expected a finite number"),
        ({"credit": (Credit("seshu-te", {"te": -0.1}, ("eve\nrejected",)),)}, "control characters"),
        ({"merged": (MergedAdapter("../x", "b" * 40, "c" * 64),)}, "merged adapter name"),
        ({"parent_revision": "main"}, "is not a revision id"),
    ],
)
def test_bad_values_are_refused_in_one_line(kw, needle):
    with pytest.raises(FedemError) as err:
        _merge_card(**kw)
    assert needle in str(err.value) and "\n" not in str(err.value)
