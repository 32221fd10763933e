"""Read documents from a source: the embedded corpus, local files, or a hub dataset.

Local files and hub datasets go through ``datasets`` (text, json, parquet builders), so any
format it reads works, and hub ids work offline from its cache. The embedded corpus is read
straight from the package: it is tiny and needs no arrow cache.
"""

from __future__ import annotations

from pathlib import Path

from fedem.data.spec import SourceSpec, embedded_dir
from fedem.errors import DataError

_BUILDERS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}


def split_paragraphs(text: str) -> list[str]:
    """Documents separated by one or more blank lines, stripped, empty ones dropped."""
    docs, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line.rstrip())
        elif cur:
            docs.append("\n".join(cur))
            cur = []
    if cur:
        docs.append("\n".join(cur))
    return docs


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in _BUILDERS and p.is_file())
        if not files:
            raise DataError(f"{path}: no {'/'.join(sorted(_BUILDERS))} files in this folder")
        return files
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix not in _BUILDERS:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r} (expected {', '.join(sorted(_BUILDERS))})"
        )
    return [path]


def _load_local(spec: SourceSpec) -> list[str]:
    import datasets

    files = _files(Path(spec.path))
    builders = {_BUILDERS[f.suffix] for f in files}
    if len(builders) > 1:
        raise DataError(
            f"{spec.path}: mixes file types ({', '.join(sorted(builders))}); use one source per type"
        )
    (builder,) = builders
    if builder == "text":
        # Blank-line separated documents; datasets' text builder would split on every line.
        return [d for f in files for d in split_paragraphs(f.read_text(encoding="utf-8", errors="replace"))]
    try:
        ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as err:  # datasets raises many types for malformed input
        raise DataError(
            f"{spec.path}: cannot read as {builder} ({err.__class__.__name__}: {_first_line(err)})"
        ) from None
    return _column(ds, spec, str(spec.path))


def _load_hub(spec: SourceSpec) -> list[str]:
    import datasets

    try:
        ds = datasets.load_dataset(spec.dataset, spec.subset, split=spec.split)
    except Exception as err:
        raise DataError(
            f"dataset {spec.dataset!r} (subset {spec.subset!r}, split {spec.split!r}): cannot load "
            f"({err.__class__.__name__}: {_first_line(err)})"
        ) from None
    return _column(ds, spec, spec.dataset)


def _column(ds, spec: SourceSpec, label: str) -> list[str]:
    if spec.text_field not in ds.column_names:
        raise DataError(
            f"{label}: no field {spec.text_field!r} (fields: {', '.join(ds.column_names)}); set text_field"
        )
    # ds[col] is a lazy Column in datasets 5, not a list.
    return [t for t in ds[spec.text_field] if isinstance(t, str) and t.strip()]


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def load_documents(spec: SourceSpec) -> list[str]:
    """All documents of one source, in file order, capped at ``max_documents``."""
    if spec.embedded:
        docs = split_paragraphs((embedded_dir() / f"{spec.embedded}.txt").read_text(encoding="utf-8"))
    elif spec.path:
        docs = _load_local(spec)
    else:
        docs = _load_hub(spec)
    if spec.max_documents is not None:
        docs = docs[: spec.max_documents]
    if not docs:
        raise DataError(f"source {spec.name}: no documents")
    return docs
