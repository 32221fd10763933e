"""The report of ``fedem simulate``: ``metrics.json`` in, a folder a person can read out.

:func:`write_report` checks the metrics against ``metrics_schema.json`` before it writes
anything, then writes ``metrics.json``, ``plots/*.png``, ``report.md`` and a self-contained
``report.html`` (plots inlined as data URIs, inline CSS, no script, nothing fetched). Both
documents are rendered from one list of blocks, so they can never say different things.
:func:`summary_lines` is the one-screen version for the terminal.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fedem.errors import ConfigError
from fedem.io import atomic_write_json, atomic_write_text
from fedem.sim.plots import CAPTIONS, render_all
from fedem.table import format_table

SCHEMA_VERSION = 1
MAX_SUMMARY_LINES = 25
Metrics = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    md: Path
    html: Path
    metrics: Path
    plots: dict[str, Path]


@functools.lru_cache(maxsize=1)
def metrics_schema() -> dict[str, Any]:
    """The JSON Schema of ``metrics.json`` shipped in :mod:`fedem.sim`."""
    return json.loads(resources.files("fedem.sim").joinpath("metrics_schema.json").read_text("utf-8"))


def _where(err: ValidationError) -> str:
    """``policies[0].rounds[2].bpb``: the failing field, down to the missing or extra key."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path]
    inst = err.instance if isinstance(err.instance, dict) else {}
    if err.validator == "required":
        parts.append("." + next(k for k in err.validator_value if k not in inst))
    elif err.validator == "additionalProperties" and isinstance(err.schema.get("properties"), dict):
        parts.append("." + next((str(k) for k in inst if k not in err.schema["properties"]), "?"))
    return "".join(parts).lstrip(".") or "(top level)"


def validate_metrics(metrics: Any) -> None:
    """Raise :class:`ConfigError` (one line naming the field) unless ``metrics`` is valid."""
    if not isinstance(metrics, dict):
        raise ConfigError(f"metrics.json: expected an object, got {type(metrics).__name__}")
    # The version first: a file from another version differs everywhere, and that is the news.
    version = metrics.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigError(f"metrics.json: schema_version: is {version!r}, this fedem reads {SCHEMA_VERSION}")
    err = best_match(Draft202012Validator(metrics_schema()).iter_errors(metrics))
    if err is not None:
        what = "missing (required)" if err.validator == "required" else err.message
        if err.validator == "additionalProperties":
            what = "unexpected field"
        elif err.validator == "pattern":  # the regex says less than the description beside it
            form = err.schema.get("description", err.validator_value).rstrip(".")
            what = f"{err.instance!r:.60} is not of the form: {form}"
        raise ConfigError(f"metrics.json: {_where(err)}: {what[:160]}")
    # What a schema cannot say: names that must refer to each other.
    names = [p["name"] for p in metrics["policies"]]
    langs = set(metrics["languages"])
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"metrics.json: policies: the name {dup!r} is used twice")
    if metrics["reference"] is not None and metrics["reference"] not in names:
        raise ConfigError(f"metrics.json: reference: {metrics['reference']!r} is not a policy")
    for i, row in enumerate(metrics["comparison"]):
        if row["policy"] not in names or row["language"] not in langs:
            raise ConfigError(f"metrics.json: comparison[{i}]: unknown policy or language")
    for i, p in enumerate(metrics["policies"]):
        for j, r in enumerate(p["rounds"]):
            if not set(r["bpb"]) <= langs:
                raise ConfigError(f"metrics.json: policies[{i}].rounds[{j}].bpb: a language not in languages")


# A document is a list of blocks: ("h1"|"h2"|"p", text), ("table", header, rows), ("img", name).
Block = tuple


def _f(x: float) -> str:
    return f"{x:.4f}"


def _short(rev: str | None) -> str:
    return "-" if rev is None else rev[:10]


def _pct(first: float, final: float) -> str:
    return f"{(final - first) / first * 100:+.2f}%" if first else "n/a"


def _delta(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:+.4f}" for k, v in sorted(d.items())) or "-"


def _bpb_rows(m: Metrics) -> list[list[str]]:
    rows = []
    for p in m["policies"]:
        first, final = p["rounds"][0]["bpb"], p["rounds"][-1]["bpb"]
        for lang in m["languages"]:
            if lang in first and lang in final:
                rows.append([p["name"], lang, _f(first[lang]), _f(final[lang]),
                             f"{final[lang] - first[lang]:+.4f}", _pct(first[lang], final[lang])])  # fmt: skip
    return rows


def _lock_stats(p: dict[str, Any]) -> dict[str, int]:
    ends = Counter(lk["end"] for lk in p["locks"])
    stats = {"claimed": len(p["locks"]), **{k: ends[k] for k in ("pushed", "expired", "released", "held")}}
    stats["dropouts"] = sum(e["kind"] == "dropout" for e in p["events"])
    return stats


def _blocks(m: Metrics, plots: dict[str, Path]) -> list[Block]:
    pol = m["policies"]
    b: list[Block] = [("h1", "fedem simulate: report")]
    desc = "; ".join(f"{p['name']} ({p['mode']}: {p['description']})" for p in pol)
    b.append(("p", f"Run ended {m['created']} (simulated clock). Languages: {', '.join(m['languages'])}. "
                   f"Policies: {desc}. Reference: {m['reference'] or 'none'}."))  # fmt: skip
    b.append(("h2", "Held-out bits/byte"))
    b.append(("p", "Lower is better. First base: round 0's head; final: the head after the last round."))
    b.append(("table", ["policy", "language", "first base", "final", "Δ", "%"], _bpb_rows(m)))
    b.append(("img", "bpb_per_round"))
    if m["comparison"]:
        b.append(("h2", f"Comparison with the reference ({m['reference'] or 'given'})"))
        b.append(("p", "Ratio = final bits/byte ÷ the reference's: 1 matches it, above 1 is worse."))
        rows = [[r["policy"], r["language"], _f(r["bpb"]), _f(r["reference"]), f"{r['ratio']:.4f}"]
                for r in m["comparison"]]  # fmt: skip
        b.append(("table", ["policy", "language", "bpb", "reference", "ratio"], rows))
        b.append(("img", "compare"))
    b.append(("h2", "Merged"))
    rows = [[p["name"], str(c["round"]), _short(c["revision"]), c["tag"] or "-", c["relation"],
             ", ".join(f"{x['adapter']}@{_short(x['revision'])}" for x in c["merged"]) or "-"]
            for p in pol for c in p["checkpoints"] if c["relation"] != "root"]  # fmt: skip
    if rows:
        b.append(("table", ["policy", "round", "checkpoint", "tag", "relation", "merged"], rows))
    else:
        b.append(("p", "No checkpoint was published after the first base."))
    b.append(("img", "lineage"))
    b.append(("h2", "Rejected"))
    rej = [(p, g) for p in pol for g in p["gate"] if g["verdict"] == "reject"]
    if rej:
        reasons = Counter(g["reason"] for _, g in rej)
        b.append(("p", "By reason: " + ", ".join(f"{k} {n}" for k, n in reasons.most_common()) + "."))
        rows = [[p["name"], str(g["night"]), g["adapter"], _short(g["revision"]), g["reason"], _delta(g["delta"])]
                for p, g in rej]  # fmt: skip
        b.append(("table", ["policy", "night", "adapter", "revision", "reason", "Δ bpb"], rows))
    else:
        b.append(("p", "The gate rejected nothing."))
    waits = sum(g["verdict"] == "wait" for p in pol for g in p["gate"])
    b.append(("p", f"Decisions to wait (judged again a later night): {waits}."))
    b.append(("img", "gate"))
    b.append(("h2", "Credit"))
    b.append(("p", "Bits/byte of improvement credited per contributor (positive = helped)."))
    rows = [[p["name"], c["contributor"], f"{c['bpb']:+.4f}", str(c["hops"]), str(c["merged_hops"])]
            for p in pol for c in sorted(p["credit"], key=lambda c: -c["bpb"])]  # fmt: skip
    if rows:
        b.append(("table", ["policy", "contributor", "credit", "hops", "merged hops"], rows))
    b.append(("img", "credit"))
    b.append(("h2", "Locks and dropouts"))
    keys = ["claimed", "pushed", "expired", "released", "held", "dropouts"]
    rows = []
    for p in (p for p in pol if p["locks"] or p["mode"] != "centralized"):
        s = _lock_stats(p)
        kept = f"{p['tokens_pushed'] / p['tokens_trained'] * 100:.1f}%" if p["tokens_trained"] else "n/a"
        rows.append([p["name"], *(str(s[k]) for k in keys), str(p["tokens_trained"]), kept])
    b.append(("table", ["policy", *keys, "bytes trained", "pushed share"], rows))
    expired = [[p["name"], lk["adapter"], lk["holder"], lk["claimed"], lk["ended"]]
               for p in pol for lk in p["locks"] if lk["end"] == "expired"]  # fmt: skip
    if expired:
        b.append(("p", "Expired locks (the holder never pushed):"))
        b.append(("table", ["policy", "adapter", "holder", "claimed", "expired"], expired))
    b.append(("img", "locks"))
    b.append(("h2", "Run"))
    stages = sorted({k for p in pol for k in p["seconds"]}, key=lambda k: (k == "total", k))
    rows = [
        [p["name"], *(f"{p['seconds'][k]:.1f}" if k in p["seconds"] else "-" for k in stages)] for p in pol
    ]
    b.append(("table", ["policy", *(f"{k} s" for k in stages)], rows))
    if "seconds" in m:
        b.append(("p", f"Wall time of the whole run: {m['seconds']:.1f} s."))
    b.append(
        ("p", "Versions: " + (", ".join(f"{k} {v}" for k, v in sorted(m["versions"].items())) or "-") + ".")
    )
    # Drop figures the run had no data for.
    return [x for x in b if x[0] != "img" or x[1] in plots]


def _md(blocks: list[Block]) -> str:
    def cell(x: str) -> str:
        return x.replace("|", "\\|")

    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' * int(kind[1])} {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            header, rows = rest
            lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{CAPTIONS[rest[0]]}](plots/{rest[0]}.png)")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1f24; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .2rem .5rem; text-align: left; }
th { background: #f3f5f7; } tr:nth-child(even) td { background: #fafbfc; }
figure { margin: .8rem 0 1.6rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: .8rem; color: #57606a; }
"""


def _html(blocks: list[Block], plots: dict[str, Path]) -> str:
    e = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "table":
            header, rows = rest
            head = "".join(f"<th>{e(h)}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        elif kind == "img":
            name = rest[0]
            data = base64.b64encode(plots[name].read_bytes()).decode("ascii")
            body.append(
                f'<figure><img id="plot-{name}" data-plot="{name}" alt="{e(CAPTIONS[name])}" '
                f'src="data:image/png;base64,{data}"><figcaption>{e(CAPTIONS[name])}</figcaption></figure>'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>fedem simulate: report</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(metrics: Metrics, folder: Path) -> ReportFiles:
    """Validate ``metrics`` (nothing is written when it is invalid), then write the report."""
    validate_metrics(metrics)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metrics_path = atomic_write_json(folder / "metrics.json", metrics)
    plots = render_all(metrics, folder)
    blocks = _blocks(metrics, plots)
    md = atomic_write_text(folder / "report.md", _md(blocks))
    page = atomic_write_text(folder / "report.html", _html(blocks, plots))
    return ReportFiles(md=md, html=page, metrics=metrics_path, plots=plots)


def summary_lines(metrics: Metrics) -> list[str]:
    """The one-screen terminal summary (at most 25 lines); the caller prints the report path."""
    m, pol, ref = metrics, metrics["policies"], metrics["reference"]
    nights = max(r["round"] for p in pol for r in p["rounds"])
    lines = [f"{len(m['languages'])} languages, {len(pol)} policies (reference: {ref or 'none'}), "
             f"{nights} nights, ended {m['created']}", "held-out bits/byte, first base -> final:"]  # fmt: skip
    rows = []
    for lang in m["languages"]:
        row = [lang]
        for p in pol:
            a, z = p["rounds"][0]["bpb"].get(lang), p["rounds"][-1]["bpb"].get(lang)
            row.append("-" if a is None or z is None else f"{a:.3f} -> {z:.3f} {_pct(a, z)}")
        rows.append(row)
    lines += ["  " + x for x in format_table(["", *(p["name"] for p in pol)], rows).splitlines()]
    for p in pol:
        if p["mode"] == "centralized" and not p["gate"] and not p["locks"]:
            continue
        merged = Counter(x["adapter"] for c in p["checkpoints"] for x in c["merged"])
        n_ck = sum(bool(c["merged"]) for c in p["checkpoints"])
        which = ", ".join(f"{k} x{n}" for k, n in sorted(merged.items()))
        rej = Counter(g["reason"] for g in p["gate"] if g["verdict"] == "reject")
        why = " (" + ", ".join(f"{k} {n}" for k, n in rej.most_common()) + ")" if rej else ""
        lines.append(
            f"{p['name']}: merged {sum(merged.values())} adapter revisions into {n_ck} checkpoints"
            + (f" ({which})" if which else "")
            + f"; rejected {sum(rej.values())}{why}"
        )
        s = _lock_stats(p)
        lines.append(f"{p['name']}: {s['claimed']} locks: {s['pushed']} pushed, {s['expired']} expired, "
                     f"{s['released']} released, {s['held']} held; dropouts: {s['dropouts']}")  # fmt: skip
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for r in m["comparison"]:
        by_policy.setdefault(r["policy"], []).append(r)
    for name, rs in by_policy.items():
        mean = sum(r["ratio"] for r in rs) / len(rs)
        per = " ".join(f"{r['language']} {r['ratio']:.3f}" for r in rs)
        lines.append(f"vs {ref or 'reference'}: {name} bpb ratio {per} (mean {mean:.3f}; 1 = as good)")
    if len(lines) > MAX_SUMMARY_LINES:
        lines = [
            *lines[: MAX_SUMMARY_LINES - 1],
            f"... {len(lines) - MAX_SUMMARY_LINES + 1} more lines in the report",
        ]
    return lines
