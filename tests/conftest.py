"""Fixtures shared across the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "can-train-and-test"


@pytest.fixture
def shared_data() -> Path:
    """The real can-train-and-test sample beside the project; skips when it is absent."""
    if not (SHARED_DATA / "hcrl_sa").is_dir():
        pytest.skip(f"real CAN captures not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own graph cache, so no test sees another's entries."""
    monkeypatch.setenv("BATCH_HPO_CACHE", str(tmp_path_factory.mktemp("graph-cache")))
