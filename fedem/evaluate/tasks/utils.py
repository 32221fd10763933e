"""Loader for fedem's lm-eval tasks. It imports only ``datasets`` (never fedem), so
``lm-eval run --include_path <this folder>`` works wherever lm-eval is installed.

Each task scores one language's rows of a JSONL file of ``{"text", "lang"}`` objects: by default
``heldout.jsonl`` beside this file (the embedded corpus' held-out split, shipped with fedem), or
the file given as ``data_files`` in lm-eval's ``--metadata '{"data_files": "PATH"}'``.
"""

import json
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def load_heldout(lang, data_files=None, **_metadata):
    path = Path(data_files) if data_files else HERE / "heldout.jsonl"
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("lang") == lang:
                    rows.append({"text": row["text"]})
    if not rows:
        raise ValueError(f"{path.name}: no documents for language {lang!r}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
