"""`normal`: a GAT classifier trained on shuffled graphs; F1 decides."""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["SPACE"]

SPACE = SearchSpace(name="normal", mode="normal")
