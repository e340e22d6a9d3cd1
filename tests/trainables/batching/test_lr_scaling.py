from __future__ import annotations

import math

import pytest

from trainables.batching.lr_scaling import LrScaling, scale_learning_rate


@pytest.mark.parametrize(("rule", "expected"), [("none", 0.1), ("linear", 0.4), ("sqrt", 0.2)])
def test_scale_learning_rate_follows_the_rule(rule: LrScaling, expected: float) -> None:
    lr = scale_learning_rate(0.1, base_batch_size=64, batch_size=256, rule=rule)
    assert math.isclose(lr, expected)


def test_scale_learning_rate_shrinks_with_the_batch() -> None:
    lr = scale_learning_rate(0.1, base_batch_size=256, batch_size=64, rule="linear")
    assert math.isclose(lr, 0.025)


@pytest.mark.parametrize(
    ("base_lr", "base_batch_size", "batch_size", "rule", "match"),
    [
        (0.1, 0, 64, "linear", "batch sizes must be >= 1"),
        (0.1, 64, 0, "linear", "batch sizes must be >= 1"),
        (0.0, 64, 64, "linear", "base_lr must be > 0"),
        (0.1, 64, 64, "cubic", "rule must be one of 'none', 'linear', 'sqrt'"),
    ],
)
def test_scale_learning_rate_rejects_bad_arguments(
    base_lr: float, base_batch_size: int, batch_size: int, rule: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        scale_learning_rate(
            base_lr,
            base_batch_size=base_batch_size,
            batch_size=batch_size,
            rule=rule,  # type: ignore[arg-type]
        )
