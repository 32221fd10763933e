"""Quantiles in bounded memory, for figures over any number of samples."""

from __future__ import annotations

import math


class LogHistogram:
    """Positive values in log-spaced bins (``ratio`` wide), so p50/p99 cost a fixed memory.

    A quantile is the upper edge of its bin, clamped to the largest value seen: accurate to
    ``ratio`` (1% by default) whatever the count. Values below ``lo`` share the first bin.
    """

    def __init__(self, lo: float = 1e-4, hi: float = 1e7, ratio: float = 1.01):
        self.lo, self.ratio = lo, ratio
        self._log_ratio = math.log(ratio)
        self.bins = [0] * (int(math.log(hi / lo) / self._log_ratio) + 2)
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        i = 0 if value <= self.lo else int(math.log(value / self.lo) / self._log_ratio) + 1
        self.bins[min(i, len(self.bins) - 1)] += 1
        self.count += 1
        self.total += value
        self.max = max(self.max, value)

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return min(self.lo * self.ratio**i, self.max)
        return self.max  # pragma: no cover - the bins hold every value

    def summary(self, digits: int = 3) -> dict[str, float | int]:
        mean = self.total / self.count if self.count else 0.0
        return {
            "count": self.count,
            "p50": round(self.quantile(0.5), digits),
            "p99": round(self.quantile(0.99), digits),
            "max": round(self.max, digits),
            "mean": round(mean, digits),
        }
