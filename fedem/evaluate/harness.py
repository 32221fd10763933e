"""fedem's bits/byte as lm-eval tasks, shipped inside the package, and a runner for them.

``fedem/evaluate/tasks/`` holds one ``loglikelihood_rolling`` task per language
(``fedem_heldout_<lang>``) and a group ``fedem_heldout`` over all twelve. They read
``heldout.jsonl`` beside them (the embedded corpus' held-out split at fraction 0.05), or any
``{"text", "lang"}`` JSONL given as ``--metadata '{"data_files": "PATH"}'``. Nothing in that
folder imports fedem, so a saved or published Seshu is scored with lm-eval alone::

    lm-eval run --model hf --model_args pretrained=DIR,dtype=float32,max_length=2048 \\
        --include_path "$(python -c 'import fedem.evaluate.harness as m; print(m.TASKS_DIR)')" \\
        --tasks fedem_heldout

With lm-eval's defaults (the tokenizer appends EOS, the prefix is EOS, ``max_length`` 2048)
this is exactly :func:`fedem.evaluate.documents.score_documents` (tested to 1e-3).
``add_bos_token=False`` would drop the end-of-document prediction and score a little lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fedem.data.spec import EMBEDDED_LANGS

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
GROUP = "fedem_heldout"
SHIPPED_FRACTION = 0.05

_TEMPLATE = """\
# Shared by every fedem_heldout_<lang> task (lm-eval registers only *.yaml files as tasks).
custom_dataset: !function utils.load_heldout
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""


def task_name(lang: str) -> str:
    return f"{GROUP}_{lang}"


def ship_tasks(folder: str | Path = TASKS_DIR) -> Path:
    """(Re)write the task YAMLs and ``heldout.jsonl`` into ``folder`` (``utils.py`` is source)."""
    from fedem.evaluate.heldout import embedded_heldout, write_heldout
    from fedem.io import atomic_write_text

    folder = Path(folder)
    atomic_write_text(folder / "_template_yaml", _TEMPLATE)
    for lang in EMBEDDED_LANGS:
        atomic_write_text(
            folder / f"{task_name(lang)}.yaml",
            f"include: _template_yaml\ntask: {task_name(lang)}\ndataset_kwargs:\n  lang: {lang}\n",
        )
    tasks = "".join(f"  - {task_name(lang)}\n" for lang in EMBEDDED_LANGS)
    atomic_write_text(folder / f"{GROUP}.yaml", f"group: {GROUP}\ntask:\n{tasks}")
    write_heldout(folder / "heldout.jsonl", embedded_heldout(SHIPPED_FRACTION))
    return folder


def run_lm_eval(
    model,
    languages: Sequence[str] = EMBEDDED_LANGS,
    *,
    max_length: int,
    data_file: str | Path | None = None,
    batch_size: int = 1,
) -> dict[str, float]:
    """lm-eval's ``bits_per_byte`` per language for an in-memory model (e.g. base + adapter).

    Only fedem's own tasks are indexed (``include_defaults=False``: start-up drops from ~13 s to
    ~0 s), and no samples are logged: they would hold the documents' text.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from fedem.model.tokenizer import byte_tokenizer

    device = next(model.parameters()).device
    lm = HFLM(
        pretrained=model,
        tokenizer=byte_tokenizer(),
        max_length=max_length,
        batch_size=batch_size,
        device=str(device),
    )
    metadata = {"data_files": str(Path(data_file).resolve())} if data_file else None
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)
    res = lm_eval.simple_evaluate(
        model=lm, tasks=[task_name(lang) for lang in languages], task_manager=manager, log_samples=False
    )
    return {lang: float(res["results"][task_name(lang)]["bits_per_byte,none"]) for lang in languages}
