"""A realistic synthetic ``metrics.json`` for the report tests: 3 languages, a relay and an
independent policy beside a centralized reference, 3 nights, rejections, a dropout whose lock
expired, a released lock and one still held when the run ended.

Everything is derived from fixed numbers (no randomness), so a failing test always sees the
same dict. Bits/byte fall a little with every merged hop, as in a run that works.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from fedem.clock import UTC, format_time

LANGUAGES = ["en", "hi", "te"]
START = datetime(2026, 12, 1, tzinfo=UTC)
FIRST_BPB = {"en": 2.10, "hi": 1.42, "te": 1.31}
NIGHTS = 3
# Per night, the hops of each adapter: (contributor, claim hour within the day, improvement in
# bits/byte on the hop's own language). te relays twice a night, so it has hop -> hop lineage.
HOPS = {
    "en": [("c01", 2, 0.030), ("c02", 9, 0.020)],
    "hi": [("c03", 3, 0.025)],
    "te": [("c04", 1, 0.020), ("c05", 6, 0.015)],
}
# Gate outcomes that are not "accept": (policy, night, adapter) -> (verdict, reason).
VERDICTS = {
    ("relay", 2, "seshu-en"): ("reject", "harmful"),
    ("relay", 3, "seshu-hi"): ("reject", "invalid"),
    ("relay", 1, "seshu-te"): ("wait", None),
    ("independent", 2, "seshu-en"): ("reject", "harmful"),
    ("independent", 2, "seshu-hi"): ("reject", "no-gain"),
    ("independent", 2, "seshu-te"): ("reject", "no-gain"),
}


def rev(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def at(day: int, hours: float = 0.0) -> str:
    return format_time(START + timedelta(days=day, hours=hours))


def _trained_policy(name: str, mode: str, description: str) -> dict[str, Any]:
    """A relay or independent run: hops by day, a gate and (maybe) a merge each night."""
    head_bpb = dict(FIRST_BPB)
    head = rev(name, "root")
    rounds = [
        dict(round=0, time=at(0), checkpoint=head, tag="seshu-20261201", relation="root", bpb=dict(head_bpb))
    ]
    checkpoints = [
        dict(
            revision=head, tag="seshu-20261201", parent=None, relation="root", time=at(0), round=0, merged=[]
        )
    ]
    adapters, locks, gate, events = [], [], [], []
    credit: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}  # adapter -> its latest pushed revision
    merged_since: set[str] = set()  # adapters merged into the current head (they reset)
    for night in range(1, NIGHTS + 1):
        day = night - 1
        pushed_today: dict[str, dict[str, Any]] = {}
        hoppers: dict[str, list[str]] = {}  # adapter -> the day's contributors, who share its credit
        for lang, hops in HOPS.items():
            name_a = f"seshu-{lang}"
            for i, (who, hour, gain) in enumerate(hops):
                claimed, ended = at(day, hour), at(day, hour + 2)
                events.append(
                    dict(time=claimed, kind="claim", adapter=name_a, contributor=who, detail="lock taken")
                )
                prev = last.get(name_a)
                follow = None
                if prev is not None and prev["base"] != head:
                    follow = "reset" if name_a in merged_since else "rebased"
                r = rev(name, name_a, night, i)
                # Independent hops always start fresh; relay hops continue the adapter.
                parent = prev["revision"] if (mode == "relay" and prev) else None
                own = head_bpb[lang] - gain * (1.5 if parent else 1.0)
                a = dict(
                    adapter=name_a, revision=r, parent=parent, contributor=who, language=lang,
                    round=night, time=ended, base=head, follow=follow,
                    bpb={"en": round(head_bpb["en"] - 0.002, 4), lang: round(own, 4)},
                )  # fmt: skip
                adapters.append(a)
                locks.append(
                    dict(adapter=name_a, holder=who, claimed=claimed, ended=ended, end="pushed", revision=r)
                )
                events.append(dict(time=ended, kind="push", adapter=name_a, contributor=who, detail=r))
                last[name_a] = pushed_today[name_a] = a
                hoppers.setdefault(name_a, []).append(who)
                c = credit.setdefault(who, dict(contributor=who, bpb=0.0, hops=0, merged_hops=0))
                c["hops"] += 1
        # A dropout: c06 claims seshu-hi on day 2, vanishes; the reconciler expires it 3 h on.
        if night == 2:
            locks.append(
                dict(
                    adapter="seshu-hi",
                    holder="c06",
                    claimed=at(1, 12),
                    ended=at(1, 15),
                    end="expired",
                    revision=None,
                )
            )
            events.append(
                dict(time=at(1, 13), kind="dropout", adapter="seshu-hi", contributor="c06", detail="stopped")
            )
            events.append(
                dict(time=at(1, 15), kind="expire", adapter="seshu-hi", contributor="c06", detail="ttl 3h")
            )
            locks.append(
                dict(
                    adapter="seshu-te",
                    holder="c02",
                    claimed=at(1, 16),
                    ended=at(1, 17),
                    end="released",
                    revision=None,
                )
            )
        events.append(
            dict(time=at(night), kind="nightly", adapter=None, contributor=None, detail=f"night {night}")
        )
        merged = []
        gain_total = {lang: 0.0 for lang in LANGUAGES}
        for name_a, a in sorted(pushed_today.items()):
            lang = a["language"]
            delta = round(a["bpb"][lang] - head_bpb[lang], 4)
            verdict, reason = VERDICTS.get((name, night, name_a), ("accept", None))
            if reason == "harmful":
                delta = abs(delta)
            gate.append(dict(
                night=night, time=at(night, 0.5), checkpoint=head, adapter=name_a, revision=a["revision"],
                verdict=verdict, reason=reason, delta={} if reason == "invalid" else {"en": -0.002, lang: delta},
            ))  # fmt: skip
            if verdict == "accept":
                merged.append(dict(adapter=name_a, revision=a["revision"]))
                gain_total[lang] += -delta * 0.8  # a merge keeps most, not all, of a hop's gain
                for who in hoppers[name_a]:
                    c = credit[who]
                    c["bpb"] = round(c["bpb"] - delta * 0.8 / len(hoppers[name_a]), 4)
                    c["merged_hops"] += 1
            elif reason == "harmful":  # a harmful hop costs its author, so credit can go negative
                c = credit[a["contributor"]]
                c["bpb"] = round(c["bpb"] - delta, 4)
        if merged:
            parent, head = head, rev(name, "ckpt", night)
            head_bpb = {k: round(v - gain_total[k] - 0.001, 4) for k, v in head_bpb.items()}
            tag = f"seshu-202612{night + 1:02d}"
            checkpoints.append(
                dict(
                    revision=head,
                    tag=tag,
                    parent=parent,
                    relation="merge",
                    time=at(night, 1),
                    round=night,
                    merged=merged,
                )
            )
            events.append(dict(time=at(night, 1), kind="publish", adapter=None, contributor=None, detail=tag))
            rounds.append(
                dict(
                    round=night,
                    time=at(night, 1),
                    checkpoint=head,
                    tag=tag,
                    relation="merge",
                    bpb=dict(head_bpb),
                )
            )
            merged_since = {m["adapter"] for m in merged}
        else:
            rounds.append(
                dict(
                    round=night,
                    time=at(night, 1),
                    checkpoint=head,
                    tag=None,
                    relation="none",
                    bpb=dict(head_bpb),
                )
            )
    # One lock still held when the run ends.
    locks.append(
        dict(adapter="seshu-en", holder="c03", claimed=at(NIGHTS, 2), ended=None, end="held", revision=None)
    )
    trained = sum(len(h) for h in HOPS.values()) * NIGHTS * 40_000
    return dict(
        name=name, mode=mode, description=description, tokens_trained=trained + 40_000, tokens_pushed=trained,
        rounds=rounds, adapters=adapters, checkpoints=checkpoints, locks=locks, gate=gate,
        credit=sorted(credit.values(), key=lambda c: c["contributor"]), events=sorted(events, key=lambda e: e["time"]),
        seconds={"train": 21.5, "eval": 6.25, "merge": 1.5, "total": 31.0},
    )  # fmt: skip


def _centralized() -> dict[str, Any]:
    rounds = [
        dict(
            round=0,
            time=at(0),
            checkpoint=rev("centralized", "root"),
            tag=None,
            relation="root",
            bpb=dict(FIRST_BPB),
        )
    ]
    for night in range(1, NIGHTS + 1):
        bpb = {k: round(v * (1 - 0.035 * night), 4) for k, v in FIRST_BPB.items()}
        rounds.append(dict(round=night, time=at(night), checkpoint=None, tag=None, relation="none", bpb=bpb))
    return dict(
        name="centralized", mode="centralized", description="one trainer on all the data", tokens_trained=600_000,
        tokens_pushed=0, rounds=rounds, adapters=[], checkpoints=[], locks=[], gate=[], credit=[], events=[],
        seconds={"train": 18.0, "total": 20.0},
    )  # fmt: skip


def build_metrics() -> dict[str, Any]:
    """A fresh metrics dict (callers may mutate it)."""
    policies = [
        _trained_policy("relay", "relay", "relay + nightly merge (linear)"),
        _trained_policy("independent", "independent", "independent hops + nightly merge (linear)"),
        _centralized(),
    ]
    ref = policies[-1]["rounds"][-1]["bpb"]
    comparison = [
        dict(policy=p["name"], language=lang, bpb=p["rounds"][-1]["bpb"][lang], reference=ref[lang],
             ratio=round(p["rounds"][-1]["bpb"][lang] / ref[lang], 4))
        for p in policies[:-1] for lang in LANGUAGES
    ]  # fmt: skip
    return dict(
        schema_version=1, created=at(NIGHTS, 4), config={"nights": NIGHTS, "languages": LANGUAGES, "seed": 7},
        versions={"fedem": "0.1.0", "torch": "2.13.0"}, languages=list(LANGUAGES), reference="centralized",
        policies=policies, comparison=comparison,
    )  # fmt: skip
