"""Does the sampler learn to avoid out-of-memory batch sizes? OOM-aware search vs a baseline.

    python benchmarks/bench_oom_learning.py [--seeds 0 1 2] [--num-samples 40] [--out DIR]
        [--json]

For each seed, two studies of the same space under the same memory budget, on one local Ray
instance (2 CPUs, 2 trials at a time):

- `ours` (`oom_feedback=True`): a trial that runs out of memory reports it and ends; Optuna
  records it PRUNED and TPE counts it among its bad observations;
- `baseline` (`oom_feedback=False`): the trial raises, Ray marks it ERROR and Ray's plain
  `OptunaSearch` records FAIL, which TPE ignores.

The space is `normal` with a student GAT, 1 epoch, the train batch size searched over 8..1024
(log scale), no batch-size schedule and no batch-size tuner (trials train at the searched size
as it is), on small synthetic traffic (30,000 messages) with a 24 MiB CPU budget per trial: a
batch of 64 graphs fits, ~96 and more run out of memory, so a good part of the range fails.
TPE starts after 10 random trials (the same ones in both arms for a seed).

Per study, from its Optuna trials in trial-number order (the summary's rows confirm what ended
in OOM; a baseline FAIL counts as OOM only if its Ray trial died of `TrialOutOfMemoryError`):

- the OOM rate in the first and the second half of the trials;
- the seconds spent in trials that ended in OOM, as a share of all trials' seconds (Optuna's
  `datetime_complete - datetime_start` per trial);
- the best metric (`val_f1`) among completed trials numbered below 10, 20 and 40 (or below the
  study's number of trials when it has fewer).

The goals, checked on the means over seeds and per seed: our second-half OOM rate is no higher
than our first half's and at most half of the baseline's second half; our best metric at the
last checkpoint is at least the baseline's.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

ARMS = ("ours", "baseline")
CHECKPOINTS = (10, 20, 40)
MEMORY_BUDGET = 24 * 2**20
NUM_MESSAGES = 30_000
N_STARTUP_TRIALS = 10


def study_config(arm: str, seed: int, num_samples: int, out: Path) -> Any:
    """The `StudyConfig` of one arm and seed; its study directory is `<out>/<arm>-seed<seed>`."""
    from hpo.study import StudyConfig
    from search_spaces import get_space
    from search_spaces.ranges import IntRange
    from trainables.data.source import GraphSource

    space = get_space("normal").with_overrides(
        size="student",
        epochs=1,
        batch_size=IntRange(8, 1024, log=True),
        schedule_type=("none",),
    )
    return StudyConfig(
        space=space,
        study_dir=out / f"{arm}-seed{seed}",
        source=GraphSource(num_messages=NUM_MESSAGES, cache_dir=out / "graph-cache"),
        num_samples=num_samples,
        max_concurrent=2,
        memory_budget=MEMORY_BUDGET,
        tune_batch_size=False,
        max_failures=0,
        seed=seed,
        oom_feedback=arm == "ours",
        warm_start=False,
        factor_store_path=out / "safety_factors.json",
        n_startup_trials=N_STARTUP_TRIALS,
    )


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def trial_outcomes(config: Any, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each Optuna trial of the study, by number: its outcome, seconds, value and batch size.

    The outcome is `complete`, `oom` or `failed`. Ours: PRUNED with the `oom` attribute is OOM.
    Baseline: a FAIL is OOM when the summary row with the same parameters failed with
    `TrialOutOfMemoryError`; an unmatched FAIL counts as failed.
    """
    import optuna
    from optuna.trial import TrialState

    rows = {}
    for row in summary["trials"]:
        searched = {k: row["config"].get(k) for k in ("batch_size", "learning_rate")}
        rows[_params_key(searched)] = row
    study = optuna.load_study(study_name=config.name, storage=config.paths.optuna_url)
    outcomes = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        row = rows.get(
            _params_key({k: trial.params.get(k) for k in ("batch_size", "learning_rate")})
        )
        pruned_oom = trial.state == TrialState.PRUNED and bool(trial.user_attrs.get("oom"))
        failed_oom = (
            trial.state == TrialState.FAIL
            and row is not None
            and row["state"] == "failed"
            and "TrialOutOfMemoryError" in (row["error"] or "")
        )
        if trial.state == TrialState.COMPLETE:
            outcome = "complete"
        else:
            outcome = "oom" if pruned_oom or failed_oom else "failed"
        seconds = None
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        outcomes.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "outcome": outcome,
                "summary_state": None if row is None else row["state"],
                "seconds": seconds,
                "value": trial.value if outcome == "complete" else None,
                "batch_size": trial.params.get("batch_size"),
            }
        )
    return outcomes


def study_figures(outcomes: list[dict[str, Any]], direction: str) -> dict[str, Any]:
    """OOM rates by half, the OOM share of trial seconds and the best value at checkpoints."""
    n = len(outcomes)
    half = n // 2

    def oom_rate(part: list[dict[str, Any]]) -> float | None:
        return sum(o["outcome"] == "oom" for o in part) / len(part) if part else None

    total = sum(o["seconds"] or 0.0 for o in outcomes)
    oom_seconds = sum(o["seconds"] or 0.0 for o in outcomes if o["outcome"] == "oom")
    pick = max if direction == "max" else min
    best = {}
    for k in sorted({c for c in CHECKPOINTS if c < n} | {n}):
        values = [o["value"] for o in outcomes if o["outcome"] == "complete" and o["number"] < k]
        best[str(k)] = pick(values) if values else None
    return {
        "num_trials": n,
        "num_complete": sum(o["outcome"] == "complete" for o in outcomes),
        "num_oom": sum(o["outcome"] == "oom" for o in outcomes),
        "num_failed": sum(o["outcome"] == "failed" for o in outcomes),
        "oom_rate_first_half": oom_rate(outcomes[:half]),
        "oom_rate_second_half": oom_rate(outcomes[half:]),
        "trial_seconds": round(total, 2),
        "oom_seconds": round(oom_seconds, 2),
        "oom_seconds_share": oom_seconds / total if total else None,
        "best": best,
    }


def run_one(arm: str, seed: int, num_samples: int, out: Path) -> dict[str, Any]:
    """Run one study and return its figures (with its per-trial outcomes)."""
    from hpo.study import run_study

    config = study_config(arm, seed, num_samples, out)
    start = time.perf_counter()
    summary = run_study(config)
    wall = time.perf_counter() - start
    outcomes = trial_outcomes(config, summary)
    figures = study_figures(outcomes, config.space.direction)
    return {
        "arm": arm,
        "seed": seed,
        "study_dir": str(config.study_dir),
        "wall_seconds": round(wall, 1),
        "summary_counts": {
            "complete": summary["num_complete"],
            "pruned-oom": summary["num_pruned_oom"],
            "failed": summary["num_failed"],
        },
        **figures,
        "trials": outcomes,
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def goals(studies: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The three goals, on the means over seeds and for each seed."""
    by = {(s["arm"], s["seed"]): s for s in studies}
    last = str(max(int(k) for k in studies[0]["best"]))

    def check(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, bool | None]:
        first, second = ours["oom_rate_first_half"], ours["oom_rate_second_half"]
        base_second = base["oom_rate_second_half"]
        ours_best, base_best = ours["best"][last], base["best"][last]
        return {
            "second_half_not_above_first": None
            if first is None or second is None
            else second <= first + 1e-12,
            "second_half_at_most_half_baseline": None
            if second is None or base_second is None
            else second <= 0.5 * base_second + 1e-12,
            "best_at_least_baseline": None
            if base_best is None
            else ours_best is not None and ours_best >= base_best,
        }

    def means(arm: str) -> dict[str, Any]:
        runs = [by[(arm, s)] for s in seeds]
        return {
            "oom_rate_first_half": _mean([r["oom_rate_first_half"] for r in runs]),
            "oom_rate_second_half": _mean([r["oom_rate_second_half"] for r in runs]),
            "oom_seconds_share": _mean([r["oom_seconds_share"] for r in runs]),
            "best": {k: _mean([r["best"][k] for r in runs]) for k in runs[0]["best"]},
        }

    mean_by_arm = {arm: means(arm) for arm in ARMS}
    return {
        "checkpoint": int(last),
        "means": mean_by_arm,
        "on_means": check(mean_by_arm["ours"], mean_by_arm["baseline"]),
        "per_seed": {str(s): check(by[("ours", s)], by[("baseline", s)]) for s in seeds},
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown(studies: list[dict[str, Any]], verdict: dict[str, Any]) -> str:
    """The figures as a markdown table (one row per study, then the means), and the goals."""
    checkpoints = list(studies[0]["best"])
    header = [
        "arm",
        "seed",
        "OOM rate 1st half",
        "OOM rate 2nd half",
        "OOM share of trial s",
        *(f"best val_f1 @{k}" for k in checkpoints),
        "complete / OOM / failed",
        "study s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]

    def row(arm: str, seed: str, figures: dict[str, Any], counts: str, wall: str) -> None:
        cells = [
            arm,
            seed,
            _fmt(figures["oom_rate_first_half"], 2),
            _fmt(figures["oom_rate_second_half"], 2),
            _fmt(figures["oom_seconds_share"], 2),
            *(_fmt(figures["best"][k]) for k in checkpoints),
            counts,
            wall,
        ]
        lines.append("| " + " | ".join(cells) + " |")

    for s in sorted(studies, key=lambda s: (ARMS.index(s["arm"]), s["seed"])):
        counts = f"{s['num_complete']} / {s['num_oom']} / {s['num_failed']}"
        row(s["arm"], str(s["seed"]), s, counts, f"{s['wall_seconds']:.0f}")
    for arm in ARMS:
        row(f"**{arm}**", "mean", verdict["means"][arm], "", "")
    lines.append("")
    names = {
        "second_half_not_above_first": "ours: 2nd-half OOM rate <= 1st half",
        "second_half_at_most_half_baseline": "ours: 2nd-half OOM rate <= 0.5 x baseline's",
        "best_at_least_baseline": f"ours: best @{verdict['checkpoint']} >= baseline's",
    }
    seeds = list(verdict["per_seed"])
    lines.append("| goal | on the means | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    lines.append("|" + " --- |" * (2 + len(seeds)))

    def word(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    for key, name in names.items():
        per_seed = [word(verdict["per_seed"][s][key]) for s in seeds]
        cells = [name, word(verdict["on_means"][key]), *per_seed]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args()

    import ray

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = (args.out or Path(tempfile.mkdtemp(prefix="bench-oom-learning-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    studies = []
    start = time.perf_counter()
    try:
        for seed in args.seeds:
            for arm in ARMS:
                study = run_one(arm, seed, args.num_samples, out)
                print(
                    f"{arm} seed {seed}: {study['num_complete']} complete, {study['num_oom']}"
                    f" OOM, {study['num_failed']} failed in {study['wall_seconds']:.0f} s",
                    file=sys.stderr,
                )
                studies.append(study)
    finally:
        ray.shutdown()
    total = time.perf_counter() - start
    verdict = goals(studies, args.seeds)
    if args.json:
        result = {
            "settings": {
                "seeds": args.seeds,
                "num_samples": args.num_samples,
                "memory_budget_bytes": MEMORY_BUDGET,
                "num_messages": NUM_MESSAGES,
                "n_startup_trials": N_STARTUP_TRIALS,
                "out": str(out),
            },
            "total_seconds": round(total, 1),
            "studies": studies,
            "goals": verdict,
        }
        print(json.dumps(result, indent=2))
        return 0
    print(markdown(studies, verdict))
    print(f"\n{len(studies)} studies in {total:.0f} s; study directories under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
