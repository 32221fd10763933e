"""The figures of the ``fedem simulate`` report, one function per figure.

Each takes a validated ``metrics.json`` dict (see ``metrics_schema.json``) and a PNG path, and
returns the path, or None when the run has no data for that figure. Figures are drawn on
``matplotlib.figure.Figure`` objects with the Agg canvas, never through pyplot: pyplot keeps a
global figure registry and backend, and a report written from inside a notebook or a long
simulation must neither leak figures nor switch the caller's backend.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fedem.clock import parse_time
from fedem.io import atomic_write_bytes

Metrics = dict[str, Any]
DPI = 100
WIDTH = 8.0
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
LOCK_COLORS = {"pushed": "#2ca02c", "expired": "#d62728", "released": "#ff7f0e", "held": "#1f77b4"}
VERDICT_COLORS = {"accept": "#2ca02c", "wait": "#9aa5b1"}
REJECT_COLORS = ["#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#7f0000"]
CAPTIONS = {
    "bpb_per_round": "Held-out bits/byte per language and round",
    "lineage": "Lineage of adapter revisions and checkpoints",
    "locks": "Locks per adapter over time",
    "gate": "Gate decisions per night",
    "credit": "Credit per contributor",
    "compare": "Final bits/byte per policy beside the reference",
}


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(WIDTH, min(max(height, 3.0), 14.0)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    # Rendered in memory and renamed into place, so a reader never sees half a PNG.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(path, buf.getvalue())


def _colors(metrics: Metrics) -> dict[str, str]:
    """One stable color per policy; the reference is always black."""
    names = [p["name"] for p in metrics["policies"] if p["name"] != metrics["reference"]]
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    if metrics["reference"]:
        colors[metrics["reference"]] = "black"
    return colors


def _days(metrics: Metrics) -> Callable[[str], float]:
    """Simulated days since the earliest round 0: one x axis for every policy's timeline."""
    t0 = min(parse_time(p["rounds"][0]["time"]) for p in metrics["policies"])
    return lambda t: (parse_time(t) - t0).total_seconds() / 86400


def _trained(metrics: Metrics, key: str) -> list[dict[str, Any]]:
    return [p for p in metrics["policies"] if p[key]]


def bpb_per_round(metrics: Metrics, path: Path) -> Path | None:
    """Per language: each policy's published head (steps), its adapters (points, drawn between
    the round of the base they trained on and the night they were judged) and the reference."""
    langs, ref, colors = metrics["languages"], metrics["reference"], _colors(metrics)
    ncols = min(len(langs), 3)
    nrows = math.ceil(len(langs) / ncols)
    fig = _figure(3.0 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, lang in zip(axes.flat, langs, strict=False):
        for p in metrics["policies"]:
            pts = [(r["round"], r["bpb"][lang]) for r in p["rounds"] if lang in r["bpb"]]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            if p["name"] == ref:
                ax.plot(xs, ys, "--", color="black", lw=1.2)
            else:
                ax.step(xs, ys, where="post", color=colors[p["name"]], lw=1.8)
            # An adapter trained on several languages ("hi+te") shows on each of them.
            hops = [a for a in p["adapters"] if lang in a["language"].split("+") and lang in a["bpb"]]
            per_round = Counter(a["round"] for a in hops)
            seen: Counter[int] = Counter()
            for a in hops:
                seen[a["round"]] += 1
                # Spread a round's hops across the segment of the base they trained on.
                x = a["round"] - 1 + seen[a["round"]] / (per_round[a["round"]] + 1)
                ax.scatter([x], [a["bpb"][lang]], s=18, color=colors[p["name"]], alpha=0.55, lw=0)
        ax.set_title(lang)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(langs) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("held-out bits/byte")
    handles = [
        Line2D([], [], color=colors[p["name"]], ls="--" if p["name"] == ref else "-", label=p["name"])
        for p in metrics["policies"]
    ]
    handles.append(Line2D([], [], color="gray", marker="o", ls="", alpha=0.55, label="adapters"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    return _save(fig, path)


def _arrow(
    ax, at: dict[str, tuple[float, int]], src: str | None, dst: str, color: str, ls: str = "-"
) -> None:
    """An arrow from ``src`` to ``dst`` when both are drawn (a parent may predate the run)."""
    if src in at and dst in at:
        ax.annotate(
            "", xy=at[dst], xytext=at[src],
            arrowprops=dict(arrowstyle="->", color=color, lw=0.8, ls=ls, shrinkA=4, shrinkB=4),
        )  # fmt: skip


def lineage(metrics: Metrics, path: Path) -> Path | None:
    """Per policy: checkpoints on the top lane, one lane per adapter, arrows parent -> child and
    hop -> the checkpoint it was merged into. Filled: merged; red cross: rejected."""
    policies = [p for p in metrics["policies"] if p["adapters"] or len(p["checkpoints"]) > 1]
    if not policies:
        return None
    day = _days(metrics)
    lanes = [sorted({a["adapter"] for a in p["adapters"]}) for p in policies]
    fig = _figure(sum(0.45 * (len(x) + 1) + 0.9 for x in lanes))
    axes = fig.subplots(len(policies), 1, squeeze=False, sharex=True)[:, 0]
    for ax, p, names in zip(axes, policies, lanes, strict=True):
        row = {n: i + 1 for i, n in enumerate(names)}
        at = {c["revision"]: (day(c["time"]), 0) for c in p["checkpoints"]}
        at.update({a["revision"]: (day(a["time"]), row[a["adapter"]]) for a in p["adapters"]})
        merged = {m["revision"] for c in p["checkpoints"] for m in c["merged"]}
        rejected = {g["revision"] for g in p["gate"] if g["verdict"] == "reject"}

        for c in p["checkpoints"]:
            _arrow(ax, at, c["parent"], c["revision"], "black")
            for m in c["merged"]:
                _arrow(ax, at, m["revision"], c["revision"], "#2ca02c")
        for a in p["adapters"]:
            # A fresh start hangs off the checkpoint it trained on (dotted), a relay off its parent.
            if a["parent"]:
                _arrow(ax, at, a["parent"], a["revision"], "#555555")
            else:
                _arrow(ax, at, a["base"], a["revision"], "#bbbbbb", ":")
        xs = [at[c["revision"]][0] for c in p["checkpoints"]]
        ax.scatter(xs, [0] * len(xs), marker="s", s=46, color="black", zorder=3)
        for c in p["checkpoints"]:
            if c["tag"]:
                ax.annotate(
                    c["tag"], at[c["revision"]], (0, 7), textcoords="offset points", fontsize=6, ha="center"
                )
        for a in p["adapters"]:
            x, y = at[a["revision"]]
            color = PALETTE[(y - 1) % len(PALETTE)]
            face = color if a["revision"] in merged else "white"
            ax.scatter([x], [y], s=30, facecolor=face, edgecolor=color, zorder=3)
            if a["revision"] in rejected:
                ax.scatter([x], [y], s=40, marker="x", color="#d62728", zorder=4)
        ax.set_yticks(range(len(names) + 1), ["checkpoints", *names], fontsize=8)
        ax.set_ylim(len(names) + 0.6, -0.8)
        ax.margins(x=0.04)
        ax.set_title(p["name"], fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("simulated day")
    handles = [
        Line2D([], [], marker="s", color="black", ls="", label="checkpoint"),
        Line2D([], [], marker="o", color="gray", ls="", label="merged hop"),
        Line2D([], [], marker="o", mfc="white", color="gray", ls="", label="hop not merged"),
        Line2D([], [], marker="x", color="#d62728", ls="", label="rejected"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return _save(fig, path)


def locks(metrics: Metrics, path: Path) -> Path | None:
    """Gantt of locks per adapter, colored by how each ended; diamonds where a hop was merged."""
    policies = _trained(metrics, "locks")
    if not policies:
        return None
    day, end_of_run = _days(metrics), metrics["created"]
    lanes = [sorted({lk["adapter"] for lk in p["locks"]}) for p in policies]
    fig = _figure(sum(0.4 * len(x) + 0.9 for x in lanes) + 0.4)
    axes = fig.subplots(len(policies), 1, squeeze=False, sharex=True)[:, 0]
    for ax, p, names in zip(axes, policies, lanes, strict=True):
        row = {n: i for i, n in enumerate(names)}
        for lk in p["locks"]:
            start = day(lk["claimed"])
            stop = day(lk["ended"] or end_of_run)  # a lock still held runs to the end of the run
            ax.barh(row[lk["adapter"]], max(stop - start, 0.01), left=start, height=0.6,
                    color=LOCK_COLORS[lk["end"]], alpha=0.85)  # fmt: skip
        for c in p["checkpoints"]:
            for m in c["merged"]:
                if m["adapter"] in row:
                    ax.scatter(
                        [day(c["time"])], [row[m["adapter"]]], marker="D", s=22, color="black", zorder=3
                    )
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(len(names) - 0.4, -0.6)
        ax.set_title(p["name"], fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("simulated day")
    handles = [Patch(color=c, label=k) for k, c in LOCK_COLORS.items()]
    handles.append(Line2D([], [], marker="D", color="black", ls="", label="merged"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return _save(fig, path)


def _verdict(g: dict[str, Any]) -> str:
    return f"reject: {g['reason']}" if g["verdict"] == "reject" else g["verdict"]


def gate(metrics: Metrics, path: Path) -> Path | None:
    """Per policy and night, the count of candidates accepted, waiting and rejected by reason."""
    policies = _trained(metrics, "gate")
    if not policies:
        return None
    kinds = sorted(
        {_verdict(g) for p in policies for g in p["gate"]}, key=lambda k: (k != "accept", k != "wait", k)
    )
    rejects = [k for k in kinds if k.startswith("reject")]
    color = {**VERDICT_COLORS, **{k: REJECT_COLORS[i % len(REJECT_COLORS)] for i, k in enumerate(rejects)}}
    fig = _figure(4.0)
    axes = fig.subplots(1, len(policies), squeeze=False, sharey=True)[0]
    for ax, p in zip(axes, policies, strict=True):
        nights = sorted({g["night"] for g in p["gate"]})
        counts = Counter((g["night"], _verdict(g)) for g in p["gate"])
        bottom = [0] * len(nights)
        for k in kinds:
            h = [counts[(n, k)] for n in nights]
            ax.bar(nights, h, bottom=bottom, color=color[k], width=0.7)
            bottom = [b + x for b, x in zip(bottom, h, strict=True)]
        ax.set_title(p["name"], fontsize=9)
        ax.set_xlabel("night")
        ax.set_xticks(nights)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("candidates")
    handles = [Patch(color=color[k], label=k) for k in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    return _save(fig, path)


def credit(metrics: Metrics, path: Path) -> Path | None:
    """Credit per contributor in bits/byte of improvement, one bar per policy that gave it."""
    policies, colors = _trained(metrics, "credit"), _colors(metrics)
    if not policies:
        return None
    total: Counter[str] = Counter()
    for p in policies:
        for c in p["credit"]:
            total[c["contributor"]] += c["bpb"]
    people = sorted(total, key=lambda who: (total[who], who))  # best at the top of the chart
    fig = _figure(0.22 * len(people) * max(len(policies), 2) + 1.2)
    ax = fig.subplots()
    h = 0.8 / len(policies)
    for i, p in enumerate(policies):
        got = {c["contributor"]: c["bpb"] for c in p["credit"]}
        ys = [j - 0.4 + h * (i + 0.5) for j, who in enumerate(people) if who in got]
        ax.barh(
            ys, [got[who] for who in people if who in got], height=h, color=colors[p["name"]], label=p["name"]
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(people)), people, fontsize=8)
    ax.set_xlabel("credit: bits/byte of improvement (positive = helped)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def compare(metrics: Metrics, path: Path) -> Path | None:
    """Final bits/byte per language, grouped by policy, the reference as a dashed line across
    each group and the ratio to it above each bar."""
    rows = metrics.get("comparison") or []
    if not rows:
        return None
    colors = _colors(metrics)
    names = list(dict.fromkeys(r["policy"] for r in rows))
    langs = [lang for lang in metrics["languages"] if any(r["language"] == lang for r in rows)]
    langs += sorted({r["language"] for r in rows} - set(langs))
    cell = {(r["policy"], r["language"]): r for r in rows}
    fig = _figure(4.0)
    ax = fig.subplots()
    w = 0.8 / len(names)
    for i, name in enumerate(names):
        for j, lang in enumerate(langs):
            r = cell.get((name, lang))
            if r is None:
                continue
            x = j - 0.4 + w * (i + 0.5)
            ax.bar([x], [r["bpb"]], width=w, color=colors.get(name, "gray"), label=name if j == 0 else None)
            ax.annotate(
                f"{r['ratio']:.3f}",
                (x, r["bpb"]),
                (0, 2),
                textcoords="offset points",
                fontsize=7,
                ha="center",
            )
    for j, lang in enumerate(langs):
        refs = [cell[(n, lang)]["reference"] for n in names if (n, lang) in cell]
        ax.hlines(refs[:1], j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1.2, zorder=3)
    ax.plot([], [], "--", color="black", label=f"reference ({metrics['reference'] or 'given'})")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylabel("final held-out bits/byte (ratio to reference above)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper")
    return _save(fig, path)


FIGURES: dict[str, Callable[[Metrics, Path], Path | None]] = {
    "bpb_per_round": bpb_per_round,
    "lineage": lineage,
    "locks": locks,
    "gate": gate,
    "credit": credit,
    "compare": compare,
}


def render_all(metrics: Metrics, folder: Path) -> dict[str, Path]:
    """Every figure that applies, as ``folder/plots/<name>.png``, in report order."""
    out = {}
    for name, draw in FIGURES.items():
        path = Path(folder) / "plots" / f"{name}.png"
        got = draw(metrics, path)
        if got is None:
            path.unlink(missing_ok=True)  # a figure from an earlier report must not outlive its data
        else:
            out[name] = got
    return out
