"""The registry of search spaces, looked up by name (`--space NAME`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from search_spaces import autoencoder, curriculum, fusion, kd, normal
from search_spaces.base import SearchSpace
from trainables.errors import UserError

__all__ = ["SPACES", "SPACE_NAMES", "get_space"]

SPACES: Mapping[str, SearchSpace] = MappingProxyType(
    {
        space.name: space
        for space in (curriculum.SPACE, normal.SPACE, autoencoder.SPACE, kd.SPACE, fusion.SPACE)
    }
)
"""Every registered space by its name, read-only."""
SPACE_NAMES: tuple[str, ...] = tuple(SPACES)


def get_space(name: str, *, option: str = "--space") -> SearchSpace:
    """The registered space called `name`.

    Args:
        name: A name of `SPACE_NAMES`, e.g. `curriculum`.
        option: Where the name came from, for the error message; default `--space`.

    Returns:
        The space (validated; derive variants with `with_overrides` or `smoke`).

    Raises:
        UserError: No space has that name; the message lists the known ones.
    """
    try:
        return SPACES[name]
    except KeyError:
        raise UserError(
            f"{option}: unknown search space {name!r}; choose one of {', '.join(SPACE_NAMES)}"
        ) from None
