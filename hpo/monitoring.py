"""Live study metrics for the Ray dashboard, and how the driver starts or joins Ray.

`StudyMetrics` is a Ray Tune callback in the driver that exports, through `ray.util.metrics`
(Prometheus, on each node's metrics endpoint and in the dashboard's Metrics view):

- `hpo_trials_running` (gauge), per study;
- `hpo_trials_finished` (counter), per study and state (`complete`, `pruned-oom`,
  `stopped-early`, `failed`);
- `hpo_oom_total` (counter), per study and stage (`tuner`, `train`, `validation`, `test`);
- `hpo_train_batch_size` and `hpo_graphs_per_second` (gauges), per study and trial.

Ray adds the `ray_` prefix on export (`ray_hpo_trials_running`, ...). Ray's agent drops a gauge
value that was not set again within two export intervals (`RAY_metrics_report_interval_ms`,
10 s by default), so the callback sets its gauges again every `REFRESH_S` seconds of the tuning
loop: a trial whose epochs take minutes stays on the dashboard's graphs between results, and a
finished trial's series ends.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from typing import Any

from ray.tune import Callback

from hpo.searcher import OOM_STAGE_KEY, end_state, is_oom_result
from trainables.cli import tool_command
from trainables.errors import UserError

__all__ = ["REFRESH_S", "StudyMetrics", "exposure_warning", "init_ray"]

REFRESH_S = 1.0

logger = logging.getLogger("hpo.run")


class StudyMetrics(Callback):
    """Exports the study's progress as Ray metrics (see the module docstring)."""

    def __init__(self, study: str) -> None:
        self.study = study
        self._metrics: dict[str, Any] | None = None
        self._running: set[str] = set()
        # The gauges' current values for running trials: trial id -> gauge name -> value.
        self._live: dict[str, dict[str, float]] = {}
        self._refreshed = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Ray saves callbacks with the experiment; metric handles are made again on restore.
        return {
            "study": self.study,
            "_metrics": None,
            "_running": set(),
            "_live": {},
            "_refreshed": 0.0,
        }

    @property
    def metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            from ray.util.metrics import Counter, Gauge

            tags = {"study": self.study}
            self._metrics = {
                "running": Gauge(
                    "hpo_trials_running", "Trials of the study running now", ("study",)
                ).set_default_tags(tags),
                "finished": Counter(
                    "hpo_trials_finished", "Trials finished, by state", ("study", "state")
                ).set_default_tags(tags),
                "oom": Counter(
                    "hpo_oom_total", "Trials ended out of memory, by stage", ("study", "stage")
                ).set_default_tags(tags),
                "batch_size": Gauge(
                    "hpo_train_batch_size", "Train batch size in use", ("study", "trial")
                ).set_default_tags(tags),
                "throughput": Gauge(
                    "hpo_graphs_per_second", "Training graphs per second", ("study", "trial")
                ).set_default_tags(tags),
            }
        return self._metrics

    def setup(self, *args: Any, **info: Any) -> None:
        self.metrics["running"].set(0)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._running.add(trial.trial_id)
        self.metrics["running"].set(len(self._running))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if is_oom_result(result):
            return
        live = self._live.setdefault(trial.trial_id, {})
        if "train_batch_size" in result:
            live["batch_size"] = float(result["train_batch_size"])
        if result.get("graphs_per_second"):
            live["throughput"] = float(result["graphs_per_second"])
        self._set_gauges(trial.trial_id, live)

    def _set_gauges(self, trial_id: str, live: dict[str, float]) -> None:
        for name, value in live.items():
            self.metrics[name].set(value, tags={"trial": trial_id})

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        self.metrics["running"].set(len(self._running))
        for trial_id, live in self._live.items():
            self._set_gauges(trial_id, live)

    def _finished(self, trial: Any, state: str) -> None:
        self._running.discard(trial.trial_id)
        self._live.pop(trial.trial_id, None)
        self.metrics["running"].set(len(self._running))
        self.metrics["finished"].inc(tags={"state": state})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        state = end_state(last, error=False)
        if state == "pruned-oom":
            self.metrics["oom"].inc(tags={"stage": str(last.get(OOM_STAGE_KEY))})
        self._finished(trial, state)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial, "failed")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(dashboard_host: str | None) -> str | None:
    """The warning a dashboard served beyond this machine deserves, or None."""
    if dashboard_host is None or _is_loopback(dashboard_host):
        return None
    return (
        f"--dashboard-host {dashboard_host} exposes the Ray dashboard, and with it the cluster,"
        " beyond this machine; keep token authentication on and prefer an ssh tunnel to"
        " 127.0.0.1"
    )


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail at once where nothing listens at a `host:port` (or `ray://host:port`) cluster
    address; Ray itself retries a wrong one for minutes. `auto` is left to Ray.

    Raises:
        UserError: The address is malformed or nothing accepts a connection there.
    """
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({err.strerror or err}); start"
            " one with `ray start --head` or check the address"
        ) from None


def init_ray(address: str | None, *, dashboard_host: str | None) -> None:
    """Start a local Ray instance, or join the cluster at `address`, and say how to watch it.

    A local instance gets the dashboard on `dashboard_host` (None: no dashboard). Ray's token
    authentication stays on: Ray enables it for a new local instance (the token in
    `~/.ray/auth_token`, or `RAY_AUTH_TOKEN`) unless `RAY_AUTH_MODE` says otherwise.
    """
    import ray

    from hpo.callbacks import NoRayTokenNotice

    NoRayTokenNotice.install()
    warning = exposure_warning(dashboard_host)
    if warning:
        logger.warning(warning)
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        logger.warning("RAY_AUTH_MODE=disabled: anyone who reaches the dashboard runs code here")
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    if address is None:
        kwargs["include_dashboard"] = dashboard_host is not None
        if dashboard_host is not None:
            kwargs["dashboard_host"] = dashboard_host
    if address is not None:
        check_reachable(address)
    # "local": a new instance even where `ray start` left a cluster behind (plain `None` would
    # join whatever /tmp/ray/ray_current_cluster names).
    try:
        context = ray.init(address=address or "local", **kwargs)
    except ConnectionError as err:  # e.g. --address auto with no cluster on this machine
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"--address {address}: {first}") from None
    url = context.dashboard_url
    if url:
        logger.info(
            "Ray dashboard: http://%s (sign in with the token from `%s get-auth-token`; API"
            " clients send `Authorization: Bearer <token>`)",
            url,
            tool_command("ray"),
        )
    here = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == here and node.get("MetricsExportPort"):
            logger.info(
                "study metrics (Prometheus, ray_hpo_*): http://%s:%d/metrics",
                node["NodeManagerAddress"],
                node["MetricsExportPort"],
            )
