"""A study on a two-node Ray cluster on this machine (`--address`), one node killed mid-study."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from hpo.study import StudyConfig, run_study
from search_spaces import get_space
from trainables.data.source import GraphSource

NUM_SAMPLES = 5


@pytest.fixture
def two_nodes() -> Iterator[tuple[Cluster, Any]]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


def _finished_runs(study_dir: Path) -> int:
    return len(list((study_dir / "runs").glob("*/metrics.json")))


def _trial_nodes() -> set[str]:
    """Nodes with a live trial actor, from the GCS of the cluster this process is connected to."""
    from ray._private.state import actors

    return {
        info["Address"]["NodeID"]
        for info in actors().values()
        if info["ActorClassName"].endswith("ImplicitFunc") and info["State"] == "ALIVE"
    }


def test_study_spans_two_nodes_and_survives_losing_one(
    two_nodes: tuple[Cluster, Any], smoke_source: GraphSource, tmp_path: Path
) -> None:
    cluster, worker = two_nodes
    config = StudyConfig(
        space=get_space("normal").smoke().with_overrides(size="student", epochs=1),
        study_dir=tmp_path / "study",
        source=smoke_source,
        num_samples=NUM_SAMPLES,
        max_concurrent=2,
        max_failures=2,
        address=cluster.address,
        factor_store_path=tmp_path / "factors.json",
    )
    outcome: dict[str, Any] = {}

    def study() -> None:
        try:
            outcome["summary"] = run_study(config)
        except BaseException as err:  # surfaced by the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=study)
    thread.start()
    killed = False
    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline and not killed:
        time.sleep(0.5)
        # Once trials have finished on the cluster and one runs on the worker node, kill it.
        ready = ray.is_initialized() and _finished_runs(config.study_dir) >= 2
        if ready and worker.node_id in _trial_nodes():
            cluster.remove_node(worker)
            killed = True
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert killed, "the worker node never ran a trial while the study was on"
    summary = outcome["summary"]
    assert summary["num_trials"] == NUM_SAMPLES
    assert summary["num_complete"] == NUM_SAMPLES and summary["num_failed"] == 0
    # Trials finished on both nodes; the one the dead node was running went to the head.
    nodes = {row["node_id"] for row in summary["trials"]}
    assert cluster.head_node is not None
    assert nodes == {cluster.head_node.node_id, worker.node_id}
