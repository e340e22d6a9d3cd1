from __future__ import annotations

import pytest

from trainables.data.source import GraphSource


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> GraphSource:
    """Synthetic traffic giving 180 training graphs (130 normal, 50 attack), cached once."""
    return GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("curriculum"))
