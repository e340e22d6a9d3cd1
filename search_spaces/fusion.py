"""`fusion`: a DQN agent fusing a GAT's and a VGAE's scores per graph; F1 decides."""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["SPACE"]

SPACE = SearchSpace(name="fusion", mode="fusion")
