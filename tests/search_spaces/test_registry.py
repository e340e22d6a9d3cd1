from __future__ import annotations

import pytest

from search_spaces import SPACE_NAMES, SPACES, get_space
from trainables.errors import UserError
from trainables.training import MODES


def test_registry_has_one_space_per_mode() -> None:
    assert sorted(SPACE_NAMES) == sorted(MODES)
    assert all(get_space(name) is SPACES[name] for name in SPACE_NAMES)


def test_get_space_rejects_unknown_name_listing_the_known_ones() -> None:
    with pytest.raises(
        UserError,
        match=r"--space: unknown search space 'curiculum'; choose one of curriculum, normal, "
        r"autoencoder, kd, fusion",
    ):
        get_space("curiculum")


def test_get_space_names_the_option_it_came_from() -> None:
    with pytest.raises(UserError, match=r"^space: unknown search space ''"):
        get_space("", option="space")


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        SPACES["mine"] = SPACES["normal"]  # type: ignore[index]
