"""`trainables.errors`: the integer check, and the checks' messages renamed for values read
from files."""

from __future__ import annotations

import pytest

from trainables.errors import UserError, naming_keys, require_int


def test_naming_keys_replaces_whole_names_only() -> None:
    keys = {
        "--seed": "seed",
        "--data-seed": "source.seed",
        "search space 'x': field epochs": "space.epochs",
    }
    assert naming_keys("--data-seed must be >= 0; --seed too", keys) == (
        "source.seed must be >= 0; seed too"
    )
    assert naming_keys("search space 'x': field epochs must be >= 1", keys) == (
        "space.epochs must be >= 1"
    )
    # Not a part of a longer option, nor an option the keys do not know.
    assert naming_keys("--seeds and --seed-x and --window", keys) == (
        "--seeds and --seed-x and --window"
    )
    assert naming_keys("--seed must be >= 0", {}) == "--seed must be >= 0"


def test_require_int_takes_integers_from_the_minimum() -> None:
    assert require_int("--epochs", 1, minimum=1) == 1
    assert require_int("--seed", 0, minimum=0) == 0


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", None])
def test_require_int_refuses_what_is_no_integer_from_the_minimum(value: object) -> None:
    with pytest.raises(UserError) as raised:
        require_int("--epochs", value, minimum=1)
    assert str(raised.value) == f"--epochs must be an integer >= 1, got {value!r}"
