"""What the benchmarks that measure in fresh processes share.

A benchmark script runs itself with `--child` and options; the child prints one JSON object as
its last line of output. `largest_passing` bisects a size over such runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any


def run_child(script: str, base: list[str], **options: Any) -> dict[str, Any]:
    """Run `script --child *base --option value ...` in a fresh interpreter; its JSON result.

    `options` become `--name-with-dashes value`; a value of True is a bare flag.
    """
    argv = [sys.executable, script, "--child", *base]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def largest_passing(passes: Callable[[int], bool], high: int) -> int:
    """The largest size in [1, high] that `passes` (0 if none does), by bisection.

    `passes` is assumed to hold for every size below one it holds for; `high` is tried first.
    """
    if passes(high):
        return high
    low = 0  # largest size known to pass; `high` is known to fail
    while high - low > 1:
        mid = (low + high) // 2
        if passes(mid):
            low = mid
        else:
            high = mid
    return low
