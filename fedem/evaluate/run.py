"""``fedem evaluate`` and ``fedem perplexity``: score a saved model, with or without adapters.

:func:`evaluate_model` scores every held-out document of every language for the base, then for
base + each adapter (applied in memory, one at a time, on the one loaded base), and compares
each adapter with the base on the same documents (paired bootstrap). The report records
``max_length``, the bootstrap's resamples, confidence and seed, and a fingerprint of the data.

:func:`score_model_dir` is the plain packed-block figure ``fedem perplexity`` prints.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from fedem.errors import ConfigError, DataError
from fedem.evaluate.delta import applied
from fedem.evaluate.documents import DEFAULT_MAX_LENGTH, DocScores, score_documents
from fedem.evaluate.heldout import (
    DEFAULT_FRACTION,
    Heldout,
    check_languages,
    embedded_heldout,
    read_heldout,
    write_heldout,
)
from fedem.evaluate.loading import base_heldout_fraction, load_adapter, load_base, load_for_inference
from fedem.evaluate.stats import paired_bootstrap, resample_indices
from fedem.io import atomic_write_json


def score_model_dir(
    model_dir, data_path=None, *, adapter=None, block_size: int = 256, max_blocks: int = 256
) -> dict:
    """Packed-block bits/byte of a saved model (plus optional adapter) on a file, or the embedded
    held-out split. Blocks carry context across documents and restart it every ``block_size``."""
    import torch

    from fedem.data import DataSpec, SourceSpec, build_dataset, pack
    from fedem.data.sources import load_documents
    from fedem.evaluate.perplexity import nll_sum

    model = load_for_inference(model_dir, adapter)
    if data_path:
        blocks = torch.from_numpy(
            pack(load_documents(SourceSpec(path=str(data_path))), block_size).astype("int64")
        )
        label = str(data_path)
        if len(blocks) == 0:
            raise DataError(f"{data_path}: shorter than one block of {block_size} bytes; lower --block-size")
    else:
        blocks = build_dataset(DataSpec(block_size=block_size, heldout_max_blocks=max_blocks)).heldout
        label = "embedded corpus, held-out split"
    blocks = blocks[:max_blocks]
    total, count = nll_sum(model, blocks)
    return {"bits_per_byte": total / (count * math.log(2)), "positions": count, "data": label}


def _check_args(max_length: int, confidence: float, resamples: int) -> None:
    if not 1 <= max_length <= 1 << 20:
        raise ConfigError(f"--max-length: expected an integer between 1 and 1048576, got {max_length}")
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise ConfigError(f"--confidence: expected a number strictly between 0 and 1, got {confidence}")
    if not 100 <= resamples <= 1_000_000:
        raise ConfigError(f"--resamples: expected an integer between 100 and 1000000, got {resamples}")


def _lang_seed(seed: int, lang: str) -> list[int]:
    return [seed, zlib.crc32(lang.encode())]


def evaluate_model(
    model_dir: str | Path,
    adapters: Sequence[str | Path] = (),
    *,
    data: str | Path | None = None,
    languages: Sequence[str] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    use_lm_eval: bool = False,
    output: str | Path | None = None,
) -> dict:
    """Per-language bits/byte of a model and of model + each adapter; ``output``: write the JSON."""
    _check_args(max_length, confidence, resamples)
    if languages is not None:
        check_languages(languages, "--lang")
    # A given file is read before the (slower) model load: a bad one fails at once.
    heldout: Heldout | None = read_heldout(data, label=Path(data).name) if data is not None else None
    base = load_base(model_dir)
    if heldout is None:
        heldout = embedded_heldout(base_heldout_fraction(base, DEFAULT_FRACTION))
    langs = tuple(languages) if languages else heldout.languages
    heldout.require(langs)
    # Every adapter is validated before anything is scored: bad input fails fast, writes nothing.
    loaded = [(Path(a).name, *load_adapter(a, base)) for a in adapters]
    report = {
        "kind": "fedem-evaluation",
        "model": base.folder.name,
        "base_sha256": base.sha256,
        "data": heldout.label,
        "heldout_sha256": heldout.sha256,
        "scorer": "lm-eval" if use_lm_eval else "fedem",
        "max_length": max_length,
        "languages": {},
        "adapters": [],
    }
    if use_lm_eval:
        _lm_eval_scores(report, base, heldout, langs, loaded, max_length)
    else:
        report["bootstrap"] = {"resamples": resamples, "confidence": confidence, "seed": seed}
        _fast_scores(report, base, heldout, langs, loaded, max_length, confidence, resamples, seed)
    if output is not None:
        atomic_write_json(output, report)
    return report


def _fast_scores(report, base, heldout, langs, loaded, max_length, confidence, resamples, seed) -> None:
    ref: dict[str, DocScores] = {}
    idx = {}
    for lang in langs:
        ref[lang] = score_documents(base.model, heldout.docs[lang], max_length=max_length)
        idx[lang] = resample_indices(len(heldout.docs[lang]), resamples, _lang_seed(seed, lang))
        report["languages"][lang] = {
            "documents": len(heldout.docs[lang]),
            "bytes": int(ref[lang].bytes.sum()),
            "bits_per_byte": ref[lang].bits_per_byte,
        }
    for name, rep, delta in loaded:
        row = {"adapter": name, "weights_sha256": rep.weights_sha256, "languages": {}}
        with applied(base.model, delta):
            for lang in langs:
                cand = score_documents(base.model, heldout.docs[lang], max_length=max_length)
                row["languages"][lang] = paired_bootstrap(ref[lang], cand, idx[lang], confidence).as_dict()
        report["adapters"].append(row)


def _lm_eval_scores(report, base, heldout, langs, loaded, max_length) -> None:
    from fedem.evaluate.harness import run_lm_eval

    with tempfile.TemporaryDirectory() as tmp:
        data_file = write_heldout(Path(tmp) / "heldout.jsonl", heldout)
        scores = run_lm_eval(base.model, langs, max_length=max_length, data_file=data_file)
        for lang in langs:
            report["languages"][lang] = {
                "documents": len(heldout.docs[lang]),
                "bits_per_byte": scores[lang],
            }
        for name, rep, delta in loaded:
            with applied(base.model, delta):
                got = run_lm_eval(base.model, langs, max_length=max_length, data_file=data_file)
            row = {
                "adapter": name,
                "weights_sha256": rep.weights_sha256,
                "languages": {
                    lang: {"candidate_bpb": got[lang], "delta": got[lang] - scores[lang]} for lang in langs
                },
            }
            report["adapters"].append(row)


def format_report(report: dict) -> str:
    """The per-language table ``fedem evaluate`` prints."""
    head = ["LANG", "DOCS", "BASE BPB"]
    for a in report["adapters"]:
        head += [f"{a['adapter'][:20]} BPB", "DELTA" + (" [CI]" if report["scorer"] == "fedem" else "")]
    rows = [head]
    for lang, base in report["languages"].items():
        row = [lang, str(base["documents"]), f"{base['bits_per_byte']:.4f}"]
        for a in report["adapters"]:
            c = a["languages"][lang]
            ci = f" [{c['lo']:+.4f}, {c['hi']:+.4f}]" if "lo" in c else ""
            row += [f"{c['candidate_bpb']:.4f}", f"{c['delta']:+.4f}{ci}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    foot = f"scorer {report['scorer']} · max_length {report['max_length']} · data: {report['data']}"
    if "bootstrap" in report:
        b = report["bootstrap"]
        foot += f" · paired bootstrap {b['resamples']} resamples, {b['confidence']:.0%} CI, seed {b['seed']}"
    return "\n".join([*lines, foot])
