"""Plain-text tables for terminals and logs: one formatter for every listing fedem prints.

``lineage``, ``hub ls`` and ``registry status`` (and the gate and nightly summaries) all print
through :func:`format_table`, so columns align the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]], *, pad_last: bool = False) -> str:
    """Columns separated by two spaces, each as wide as its widest cell.

    The last column is left unpadded unless ``pad_last`` (it often holds free text such as a
    message). Cells are ``str()``-ed; trailing spaces are stripped. No trailing newline.
    """
    cells = [tuple(str(c) for c in header), *(tuple(str(c) for c in row) for row in rows)]
    n = len(cells[0])
    padded = n if pad_last else n - 1
    widths = [max(len(row[i]) for row in cells) for i in range(padded)]
    lines = []
    for row in cells:
        if len(row) != n:
            raise ValueError(f"table row has {len(row)} cells, the header {n}")
        parts = [c.ljust(w) for c, w in zip(row[:padded], widths, strict=True)] + list(row[padded:])
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
