"""`format_report`: a report as the leaderboard and summary a terminal shows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hpo.report.build import SCHEDULE_PREFIX
from hpo.states import counts_line

__all__ = ["format_report"]


def format_report(report: dict[str, Any]) -> str:
    """The report as text: a header, the leaderboard table, the out-of-memory line, the best."""
    metric = report["metric"]
    better = "higher" if report["direction"] == "max" else "lower"
    out = [f"study {report['study']} (space {report['space']}): {metric}, {better} is better"]
    if report["settings"]:
        out.append(
            "  " + ", ".join(f"{k} {_setting(k, v)}" for k, v in report["settings"].items())
        )
    out.append(counts_line(report))
    out.append("")
    if report["leaderboard"]:
        out += _table(report["leaderboard"], metric)
    else:
        out.append("no complete trial yet")
    out.append("")
    oom = f"out of memory: {report['num_pruned_oom']} trials"
    if report["oom_stages"]:
        oom += " (" + ", ".join(f"{s} {n}" for s, n in report["oom_stages"].items()) + ")"
    out.append(oom)
    best = report["best"]
    if best is None:
        out.append("best: none (no trial completed)")
    else:
        out.append(
            f"best: {metric} {best['metric']:.4f} (trial {best['trial_id']})"
            f" with {json.dumps(best['config'], sort_keys=True)}"
        )
    return "\n".join(out)


def _table(rows: Sequence[dict[str, Any]], metric: str) -> list[str]:
    header = ("#", "trial", metric, "batch", "train", "eval", "factor", "eval x", "lr", "schedule")
    lines = []
    for row in rows:
        schedule = {
            key.removeprefix(SCHEDULE_PREFIX): value
            for key, value in row.items()
            if key.startswith(SCHEDULE_PREFIX) and key != "schedule_type"
        }
        details = ", ".join(f"{key}={value}" for key, value in schedule.items())
        kind = str(row.get("schedule_type", "-"))
        lines.append(
            (
                str(row["rank"]),
                str(row["trial_id"]),
                f"{row['metric']:.4f}",
                _cell(row.get("batch_size")),
                _cell(row.get("applied_train_batch_size")),
                _cell(row.get("eval_batch_size")),
                _cell(row.get("safety_factor"), "{:.2f}"),
                _cell(row.get("eval_multiplier"), "{:g}"),
                _cell(row.get("learning_rate"), "{:.2e}"),
                f"{kind}({details})" if details else kind,
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    return out


def _cell(value: Any, spec: str = "{}") -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return spec.format(value)
    return str(value)


def _setting(key: str, value: object) -> str:
    """A study setting as the header shows it: the memory budget as a size (its tag is bytes,
    which the report reads as a number)."""
    if key == "memory_budget" and isinstance(value, int):
        from trainables.batching.sizes import format_size

        return format_size(value)
    return str(value)
