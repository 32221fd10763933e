"""The model card (``README.md``) of a checkpoint: Hugging Face metadata, then fedem's record.

The YAML front matter is what the Hub indexes, built with ``huggingface_hub.ModelCardData`` so
its shape is the Hub's own: ``base_model`` (the parent checkpoint; a list for a merge of
several), ``base_model_relation`` (``finetune`` for CPT, ``merge`` for the nightly; set
explicitly because the Hub guesses wrong for some layouts), ``library_name: transformers``,
``language``, ``tags`` and a ``model-index`` with the held-out bits/byte of each language.
``base_model`` names repos only: the Hub has no field for a revision, so the parent's revision
id is in the body and in ``fedem.json``.

The body has optional sections the nightly fills: merged adapters (name, revision, sha256),
the method and its parameters, data fingerprints, and the credit table (each accepted
adapter's leave-one-out Δ joined to its contributors). The card shows only what it is given:
callers pass accepted adapters only, and never held-out text (there is no parameter for it).
Every value that reaches a table is escaped, so a name cannot break out of its cell.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fedem.data.spec import EMBEDDED_LANGS
from fedem.errors import FedemError
from fedem.names import MAX_PERSON, check_adapter_name, check_free_text, is_revision_id, is_sha256
from fedem.provenance import RELATIONS

HELDOUT_DATASET = "fedem-heldout"


@dataclasses.dataclass(frozen=True)
class MergedAdapter:
    """One adapter revision folded into a merge checkpoint."""

    name: str
    revision: str
    sha256: str
    weight: float | None = None


@dataclasses.dataclass(frozen=True)
class Credit:
    """One accepted adapter's leave-one-out Δ bits/byte per language and its hops' contributors.

    Δ = bpb(merge of all accepted) - bpb(the same merge without this adapter), as
    ``fedem.gate.credit`` scores it: negative means the merged model is better with it.
    """

    adapter: str
    delta_bpb: Mapping[str, float]
    contributors: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Method:
    """The merge method and its parameters, as configured."""

    name: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _cell(value: object) -> str:
    """A value safe inside a Markdown table cell: one line, no pipes, no HTML."""
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _bpb(value: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FedemError(f"model card: {where}: expected a finite number, got {str(value)[:40]!r}")
    return float(value)


def card_metadata(
    *,
    model_name: str,
    relation: str | None,
    base_model: str | Sequence[str] | None,
    bpb: Mapping[str, float],
    languages: Sequence[str] | None = None,
    tags: Sequence[str] = (),
) -> str:
    """The YAML front matter (without the ``---`` fences)."""
    from huggingface_hub import EvalResult, ModelCardData

    if relation is not None and relation not in RELATIONS:
        raise FedemError(f"model card: relation {relation!r}, expected one of {', '.join(RELATIONS)} or none")
    if (relation is None) != (not base_model):
        raise FedemError("model card: base_model and base_model_relation go together (a root has neither)")
    langs = list(languages) if languages is not None else [k for k in bpb if k in EMBEDDED_LANGS]
    results = [
        EvalResult(
            task_type="text-generation",
            task_name="held-out language modelling",
            dataset_type=HELDOUT_DATASET,
            dataset_name=f"fedem held-out ({lang})",
            dataset_config=lang,
            metric_type="bits_per_byte",
            metric_name=f"bits/byte ({lang})",
            metric_value=round(_bpb(value, f"bits/byte of {lang}"), 6),
        )
        for lang, value in bpb.items()
    ]
    data = ModelCardData(
        base_model=(list(base_model) if not isinstance(base_model, str) else base_model)
        if base_model
        else None,
        library_name="transformers",
        language=langs or None,
        tags=["fedem", "seshu", "mamba", "byte-level", *tags],
        model_name=model_name,
        eval_results=results or None,
        pipeline_tag="text-generation",
        **({"base_model_relation": relation} if relation else {}),
    )
    return data.to_yaml()


def model_card(
    *,
    model_name: str,
    relation: str | None,
    base_model: str | Sequence[str] | None = None,
    parent_revision: str | None = None,
    bpb: Mapping[str, float],
    bpb_parent: Mapping[str, float] | None = None,
    languages: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    summary: str = "",
    merged: Sequence[MergedAdapter] = (),
    method: Method | None = None,
    data_fingerprints: Mapping[str, str] | None = None,
    credit: Sequence[Credit] = (),
) -> str:
    """The whole ``README.md`` of a checkpoint.

    ``bpb`` is this checkpoint's held-out bits/byte per language, ``bpb_parent`` the parent's on
    the same blocks (shown as Δ). ``merged``, ``method`` and ``credit`` are for merges;
    ``data_fingerprints`` names each data set by its fingerprint (never its content).
    """
    meta = card_metadata(
        model_name=model_name,
        relation=relation,
        base_model=base_model,
        bpb=bpb,
        languages=languages,
        tags=tags,
    )
    if parent_revision is not None and not is_revision_id(parent_revision):
        raise FedemError(f"model card: parent revision {parent_revision[:80]!r} is not a revision id")
    lines = ["---", meta.rstrip("\n"), "---", f"# {_cell(model_name)}", ""]
    lines.append(
        "Seshu, fedem's byte-level Mamba language model. "
        + (_cell(summary) if summary else "A checkpoint published by fedem.")
    )
    lines.append("")
    if parent_revision is not None:
        parents = [base_model] if isinstance(base_model, str) else list(base_model or ())
        kind = "continued pretraining of" if relation == "finetune" else "a merge into"
        lines += [f"This checkpoint is {kind} `{_cell(parents[0])}` at revision `{parent_revision}`.", ""]
    else:
        lines += ["This is a root checkpoint: pretrained from scratch.", ""]
    lines += ["## Held-out bits/byte", ""]
    rows = []
    for lang, value in bpb.items():
        before = (bpb_parent or {}).get(lang)
        delta = "" if before is None else f"{_bpb(value, lang) - _bpb(before, lang):+.4f}"
        rows.append((lang, f"{_bpb(value, lang):.4f}", "" if before is None else f"{before:.4f}", delta))
    lines += [*_table(("language", "bits/byte", "parent", "Δ"), rows), ""]
    if merged:
        rows = []
        for a in merged:
            check_adapter_name(a.name, FedemError, "merged adapter name")
            if not is_revision_id(a.revision) or not is_sha256(a.sha256):
                raise FedemError(f"model card: merged adapter {a.name}: revision and sha256 must be hex ids")
            rows.append((a.name, a.revision, a.sha256, "" if a.weight is None else f"{a.weight:g}"))
        lines += [
            "## Merged adapters",
            "",
            *_table(("adapter", "revision", "weights sha256", "weight"), rows),
            "",
        ]
    if method is not None:
        params = [(k, json.dumps(v, sort_keys=True)) for k, v in sorted(method.params.items())]
        lines += ["## Method", "", f"`{_cell(method.name)}`", ""]
        lines += [*_table(("parameter", "value"), params), ""] if params else []
    if data_fingerprints:
        rows = [(name, fp) for name, fp in sorted(data_fingerprints.items())]
        lines += ["## Data", "", *_table(("data", "fingerprint (sha256)"), rows), ""]
    if credit:
        rows = []
        for c in credit:
            check_adapter_name(c.adapter, FedemError, "credited adapter name")
            people = [
                check_free_text(p, "contributor", FedemError, max_len=MAX_PERSON) for p in c.contributors
            ]
            deltas = " · ".join(
                f"{lang} {_bpb(d, f'{c.adapter} {lang}'):+.4f}" for lang, d in c.delta_bpb.items()
            )
            rows.append((c.adapter, deltas, ", ".join(people)))
        lines += [
            "## Credit",
            "",
            "Each accepted adapter's leave-one-out Δ bits/byte per language (the merge minus the same "
            "merge without it; negative: it helped), with the contributors of its hops.",
            "",
            *_table(("adapter", "leave-one-out Δ", "contributors"), rows),
            "",
        ]
    lines += [
        "## Use",
        "",
        "A plain `transformers` folder (`AutoModelForCausalLM.from_pretrained(repo, revision=...)`; "
        "no remote code). Name checkpoints by revision id: tags are for people. "
        "Provenance (parent, data cursor, versions, weights sha256) is in `fedem.json`.",
        "",
    ]
    return "\n".join(lines)
