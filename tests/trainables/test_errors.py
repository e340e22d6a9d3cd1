"""`trainables.errors`: the checks' messages renamed for values read from files."""

from __future__ import annotations

from trainables.errors import naming_keys


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
