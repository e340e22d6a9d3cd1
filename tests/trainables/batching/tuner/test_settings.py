from __future__ import annotations

import pytest

from trainables.batching.tuner import TunerSettings
from trainables.errors import UserError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "linear"}, "--tuner-mode must be power or binsearch"),
        ({"init_val": 0}, "tuner init_val must be >= 1"),
    ],
)
def test_tuner_settings_validate(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        TunerSettings(**kwargs)  # type: ignore[arg-type]
    assert TunerSettings().margin == 0.0  # never Lightning's hidden 5% second factor
