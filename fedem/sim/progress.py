"""A step progress bar for the federation simulator: tqdm on stderr, or one line per step.

``enabled=None`` shows the bar on a terminal and prints nothing elsewhere; ``True`` forces the
bar; ``False`` prints each step as a plain line (for logs and CI, where a bar is noise).
"""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: int, *, enabled: bool | None = None, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.done = 0

    def __enter__(self) -> Progress:
        if self.enabled is True or (self.enabled is None and self.stream.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, unit="step", desc="simulate", dynamic_ncols=True, file=self.stream
            )
        return self

    def step(self, what: str) -> None:
        """One unit of work is done (a hop, a night, a round of the reference)."""
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(what[:60], refresh=False)
            self.bar.update(min(1, self.total - self.bar.n))
        elif self.enabled is False:
            print(f"[{min(self.done, self.total)}/{self.total}] {what}", file=self.stream, flush=True)

    def __exit__(self, exc_type, *exc) -> None:
        if self.bar is not None:
            if exc_type is None:  # a failed run does not pretend it finished
                self.bar.update(self.total - self.bar.n)
            self.bar.close()
