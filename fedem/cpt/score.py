"""Held-out bits/byte per language, and the rule that decides whether a CPT run is published.

:func:`bits_per_byte_by_language` is the one place CPT scores a model. It uses the training
loop's packed-block figure (:func:`fedem.evaluate.perplexity.bits_per_byte`) over each
language's held-out blocks; when ``fedem.evaluate`` grows its own per-language scoring
(per-document, with confidence intervals), this function is what to re-point.

"Improved overall" means the mean over languages of held-out bits/byte went down (each
language counts once, so a big source cannot hide a small one getting worse), by more than
``eval.min_improvement``; and no language may get worse by more than ``eval.delta``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from fedem.cpt.config import CptEval, language_of
from fedem.data.packing import pack, split_heldout
from fedem.data.sources import load_documents
from fedem.data.spec import DataSpec
from fedem.errors import DataError
from fedem.evaluate.perplexity import bits_per_byte
from fedem.table import format_table


def heldout_by_language(spec: CptEval, data: DataSpec) -> dict[str, torch.Tensor]:
    """Each language's held-out blocks, (m, l) int64, at most ``spec.max_blocks`` of them.

    Held out at the job's own ``data.heldout_fraction`` and packed at its ``block_size``, so no
    document CPT trains on (or the checkpoint trained on: the fraction nests) is scored."""
    out = {}
    for src in spec.sources:
        _, held = split_heldout(load_documents(src), data.heldout_fraction)
        blocks = pack(held, data.block_size)[: spec.max_blocks]
        if len(blocks) == 0:
            raise DataError(
                f"eval.sources {src.name}: no held-out block of {data.block_size} bytes at heldout_fraction "
                f"{data.heldout_fraction}; add documents or score another source"
            )
        out[language_of(src)] = torch.from_numpy(blocks.astype("int64"))
    return out


def bits_per_byte_by_language(
    model, blocks: Mapping[str, torch.Tensor], batch_size: int = 16
) -> dict[str, float]:
    """Held-out bits/byte of ``model`` on each language's blocks (the function to re-point)."""
    return {lang: bits_per_byte(model, b, batch_size) for lang, b in blocks.items()}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Parent vs. trained bits/byte per language, and whether that earns a publish."""

    before: dict[str, float]
    after: dict[str, float]
    delta: float
    min_improvement: float

    @property
    def overall_before(self) -> float:
        return sum(self.before.values()) / len(self.before)

    @property
    def overall_after(self) -> float:
        return sum(self.after.values()) / len(self.after)

    @property
    def regressed(self) -> list[tuple[str, float]]:
        """Languages worse by more than ``delta``, worst first."""
        bad = [(lang, self.after[lang] - self.before[lang]) for lang in self.before]
        return sorted(((lang, d) for lang, d in bad if d > self.delta), key=lambda x: -x[1])

    @property
    def improved(self) -> bool:
        return self.overall_after < self.overall_before - self.min_improvement

    @property
    def ok(self) -> bool:
        return self.improved and not self.regressed

    def reason(self) -> str:
        """One line: why this run is (not) published."""
        mean = f"mean held-out bits/byte {self.overall_before:.4f} -> {self.overall_after:.4f}"
        if self.regressed:
            langs = ", ".join(f"{lang} {d:+.4f}" for lang, d in self.regressed)
            return f"not published: {langs} bits/byte, worse than the allowed delta {self.delta} ({mean})"
        if not self.improved:
            return f"not published: the {mean} did not improve by more than {self.min_improvement}"
        return f"publishable: {mean}, no language worse by more than {self.delta}"

    def table(self) -> str:
        rows = []
        for lang in self.before:
            d = self.after[lang] - self.before[lang]
            flag = "REGRESSED" if d > self.delta else ""
            rows.append((lang, f"{self.before[lang]:.4f}", f"{self.after[lang]:.4f}", f"{d:+.4f}", flag))
        d = self.overall_after - self.overall_before
        rows.append(("mean", f"{self.overall_before:.4f}", f"{self.overall_after:.4f}", f"{d:+.4f}", ""))
        return format_table(("LANGUAGE", "PARENT", "TRAINED", "DELTA", ""), rows)

    def to_dict(self) -> dict:
        return {
            "before": dict(self.before),
            "after": dict(self.after),
            "mean_before": self.overall_before,
            "mean_after": self.overall_after,
            "delta": self.delta,
            "min_improvement": self.min_improvement,
            "published": self.ok,
        }
