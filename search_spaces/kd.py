"""`kd`: a student GAT distilled from a teacher GAT; F1 decides."""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["SPACE"]

SPACE = SearchSpace(name="kd", mode="kd", size="student")
