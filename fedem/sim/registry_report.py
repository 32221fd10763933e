"""The registry simulation's figures: ``metrics.json`` and the summary table."""

from __future__ import annotations

from typing import Any

from fedem.config import to_dict
from fedem.sim.registry_check import InvariantReport
from fedem.sim.registry_config import RegistrySimConfig
from fedem.table import format_table


def build_metrics(
    cfg: RegistrySimConfig, fig, inv: InvariantReport, timing: dict[str, Any]
) -> dict[str, Any]:
    o = fig.outcomes
    jobs = fig.job_wall.count
    rejected = {k: o[k] for k in ("held", "cap", "cooldown", "other")}
    run_s = timing["run_s"]
    return {
        "config": to_dict(cfg),
        "claims": {
            "jobs": jobs,
            "accepted": o["accepted"],
            "rejected": sum(rejected.values()),
            "rejected_by_rule": rejected,
            "gave_up": o["gave_up"],  # the CAS lost `retries` times in a row: the job failed
            "errors": o["error"],
        },
        "latency_s": fig.latency.summary(1),  # simulated: claim PR opened -> lock stamped
        "queue_wait_s": fig.queue.summary(1),  # simulated: waiting for a free runner
        "check_claim_wall_s": fig.job_wall.summary(4),  # measured: one run_check_claim
        "cas": {
            "retries": fig.job_retries,
            "retry_rate": round(fig.job_retries / jobs, 4) if jobs else 0.0,  # retries per claim job
            "jobs_retried": fig.jobs_retried,
            "max_retries_one_job": fig.max_job_retries,
            "reconcile_retries": fig.reconcile_retries,
        },
        "reconcile": {
            "runs": fig.reconcile_runs,
            "failed": o["reconcile_failed"],
            "wall_s": fig.reconcile_wall.summary(4),
            "hops": fig.events["hop"],
            "expired": fig.events["expired"],
        },
        "hub": {"publishes": fig.publishes},
        "concurrency": {
            "batches": fig.batches,
            "max_parallel_jobs": fig.max_batch,
            "mean_parallel_jobs": round(jobs / fig.batches, 2) if fig.batches else 0.0,
        },
        "invariants": inv.as_dict(),
        "wall": {
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in timing.items()},
            "claims_per_wall_s": round(jobs / run_s, 2) if run_s else 0.0,
            "sim_hours_per_wall_hour": round(cfg.hours * 3600 / run_s, 2) if run_s else 0.0,
        },
        "errors": list(fig.errors),
    }


def summary_table(m: dict[str, Any]) -> str:
    c, cas, r, inv, w = m["claims"], m["cas"], m["reconcile"], m["invariants"], m["wall"]
    cfg = m["config"]
    rules = ", ".join(f"{k} {v:,}" for k, v in c["rejected_by_rule"].items() if v)
    rows = [
        ("load", f"{cfg['adapters']:,} adapters, {cfg['contributors']:,} contributors, "
                 f"{cfg['claims_per_hour']:,.0f} claims/h for {cfg['hours']:g} h, {cfg['concurrency']} runners"),
        ("claim jobs", f"{c['jobs']:,}: {c['accepted']:,} accepted, {c['rejected']:,} rejected ({rules or 'none'}), "
                       f"{c['gave_up']} gave up, {c['errors']} errors"),
        ("claim-to-lock latency (sim)", _q(m["latency_s"], "s")),
        ("check-claim wall time", _q(m["check_claim_wall_s"], "s")),
        ("CAS retries", f"{cas['retries']:,} ({cas['retry_rate']:.3f} per job; {cas['jobs_retried']:,} jobs retried, "
                        f"max {cas['max_retries_one_job']} in one)"),
        ("reconcile runs", f"{r['runs']:,} ({r['failed']} failed): {r['hops']:,} hops, {r['expired']:,} expiries, "
                           f"{cas['reconcile_retries']} retries"),
        ("reconcile wall time", f"p50 {r['wall_s']['p50']:.3f} s, max {r['wall_s']['max']:.3f} s"),
        ("parallel jobs", f"mean {m['concurrency']['mean_parallel_jobs']}, max {m['concurrency']['max_parallel_jobs']}"),
        ("double locks", inv["double_locks"]),
        ("lost locks", inv["lost_locks"]),
        ("over cap / bad ends", f"{inv['over_cap']} / {inv['bad_ends']}"),
        ("history checked", f"{inv['commits']:,} commits, {inv['holds_seen']:,} locks = "
                            f"{inv['claims_accepted']:,} accepted claims; {inv['held_at_end']:,} held at the end"),
        ("wall time", f"{w['run_s']:,.0f} s run + {w['setup_s']:,.0f} s setup + {w['check_s']:,.0f} s check; "
                      f"{w['claims_per_wall_s']} claims/s"),
    ]  # fmt: skip
    return format_table(("figure", "value"), rows)


def _q(s: dict[str, Any], unit: str) -> str:
    return f"p50 {s['p50']} {unit}, p99 {s['p99']} {unit}, max {s['max']} {unit}"
