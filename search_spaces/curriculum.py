"""`curriculum`: a GAT trained on graphs ordered from easy to hard by a VGAE; F1 decides."""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["SPACE"]

SPACE = SearchSpace(name="curriculum", mode="curriculum")
