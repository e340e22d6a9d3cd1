"""`StudyTracker` writes one study to MLflow; `MlflowTrialLogger` is the Ray Tune callback (on
the driver) that feeds it, so parallel trials never write to a SQLite store at once. The layout
they write is `hpo.tracking`'s."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from hpo.searcher import OOM_STAGE_KEY, TRAINED_KEY, end_state, is_oom_result
from hpo.summary import finite
from hpo.tracking.store import artifact_location, client, experiment_name, quiet_mlflow

if TYPE_CHECKING:
    from hpo.study import StudyConfig
    from search_spaces import SearchSpace

__all__ = ["MlflowTrialLogger", "StudyTracker"]

logger = logging.getLogger("hpo.run")

_EPOCH_METRICS = ("train_batch_size", "graphs_per_second", "peak_memory_bytes", "epoch_seconds")
# An epoch's result has the run's peak memory so far; a trial's last one, the whole run's.
_PEAK = "peak_memory_bytes"
_APPLIED = ("applied_train_batch_size", "eval_batch_size", "tuned_max_batch_size")


def _param(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


class StudyTracker:
    """Writes one study to MLflow: its parent run, a child run per trial, artifacts, registry.

    Args:
        uri: The tracking (and registry) URI.
        config: The study.
        resume: Continue the study's parent run (and its trials' runs) instead of a new one.
    """

    def __init__(self, uri: str, config: StudyConfig, *, resume: bool = False) -> None:
        from mlflow.entities import RunStatus

        quiet_mlflow()
        self.uri = uri
        self.config = config
        self.client = client(uri)
        space = config.space
        name = self.experiment_name = experiment_name(space.name)
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(
                name, artifact_location=artifact_location(uri, space.name)
            )
        )
        self.study_tags = {
            "hpo.study": config.name,
            "hpo.space": space.name,
            "space": space.name,
            "mode": space.mode,
            "dataset": space.dataset,
            "model_size": space.size,
            "seed": str(config.seed),
            "device_type": "cuda" if config.gpus_per_trial > 0 else "cpu",
            "memory_budget": "default"
            if config.memory_budget is None
            else str(config.memory_budget),
        }
        self._trial_runs: dict[str, str] = {}
        # Per trial, the values logged at each (metric, step): `log_result` logs each once.
        self._logged: dict[str, dict[tuple[str, int], list[float]]] = {}
        # The metrics of runs an earlier driver wrote, per trial: read back on the trial's first
        # result in this driver (`_logged_metrics`), not for every trial of the study up front.
        self._earlier_metrics: dict[str, list[str]] = {}
        parent = self._find_runs(
            f"tags.`hpo.study` = '{config.name}' and tags.`hpo.role` = 'study'"
        )
        if resume and parent:
            self.parent_id = parent[0].info.run_id
            # The budget the study fixed for its trials (`record_budget`), for their runs too.
            budget = parent[0].data.tags.get("memory_budget")
            self.study_tags["memory_budget"] = budget or self.study_tags["memory_budget"]
            self.client.update_run(self.parent_id, status=RunStatus.to_string(RunStatus.RUNNING))
            for run in self._find_runs(f"tags.`mlflow.parentRunId` = '{self.parent_id}'"):
                trial_id = run.data.tags["hpo.trial_id"]
                self._trial_runs[trial_id] = run.info.run_id
                self._earlier_metrics[trial_id] = list(run.data.metrics)
            return
        run = self.client.create_run(
            self.experiment_id,
            run_name=config.name,
            tags={
                **self.study_tags,
                "hpo.role": "study",
                "hpo.metric": space.metric,
                "hpo.direction": space.direction,
                "hpo.study_dir": str(config.study_dir.resolve()),
            },
        )
        self.parent_id = run.info.run_id
        self._log_params(
            self.parent_id,
            {
                **space.fixed_params(),
                "num_samples": config.num_samples,
                "max_concurrent": config.max_concurrent,
                "scheduler": config.scheduler,
                "tune_batch_size": config.tune_batch_size,
                # As given; "default": derived per machine (the bytes are the study's tag).
                "memory_budget": "default"
                if config.memory_budget is None
                else config.memory_budget,
                "cpus_per_trial": config.cpus_per_trial,
                "gpus_per_trial": config.gpus_per_trial,
                "metric": space.metric,
                "direction": space.direction,
                **_searched_ranges(space),
            },
        )

    def record_budget(self, budget_bytes: int) -> None:
        """The budget every trial got, where the study fixed it from free memory (its
        `memory_budget` tag was "default"): bytes, as a budget given with `--memory-budget`."""
        self.study_tags["memory_budget"] = str(budget_bytes)
        self.client.set_tag(self.parent_id, "memory_budget", str(budget_bytes))

    def recorded_budget(self) -> int | None:
        """The default budget `record_budget` fixed when the study started (on a resume, read
        back from the parent run), or None: a budget given with `--memory-budget`, or none
        recorded (each trial's node decides)."""
        tag = self.study_tags["memory_budget"]
        return int(tag) if self.config.memory_budget is None and tag.isdigit() else None

    def _find_runs(self, filter_string: str) -> list[Any]:
        return list(
            self.client.search_runs([self.experiment_id], filter_string, max_results=10_000)
        )

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(run_id).data.params
        new = [Param(k, _param(v)) for k, v in params.items() if k not in existing]
        changed = [k for k, v in params.items() if k in existing and existing[k] != _param(v)]
        if changed:
            logger.warning("mlflow run %s: params %s kept as first logged", run_id, changed)
        for start in range(0, len(new), 100):
            self.client.log_batch(run_id, params=new[start : start + 100])

    # --- trials ---------------------------------------------------------------------------------
    def start_trial(self, trial_id: str, config: dict[str, Any]) -> str:
        """The trial's child run: created on its first start, reused when Ray runs it again."""
        run_id = self._trial_runs.get(trial_id)
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial-{trial_id}",
                tags={
                    **self.study_tags,
                    "mlflow.parentRunId": self.parent_id,
                    "hpo.role": "trial",
                    "hpo.trial_id": trial_id,
                    "state": "running",
                },
            )
            run_id = self._trial_runs[trial_id] = run.info.run_id
        self._log_params(run_id, config)
        return run_id

    def log_result(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        """One reported result: an epoch's metrics (step = epoch), or a trial's last one.

        Each metric is logged once per step of a trial's run, by whichever driver reports it:
        a trial Ray runs again after `--resume` reports its epochs again (with new values when
        it trains again from the start, the same ones when its finished run is read back), and
        the first value logged stays, as Optuna keeps a step's first intermediate value
        (`OOMAwareOptunaSearch.on_trial_result`), so the run's curve and the sampler's agree.

        A trial's last result repeats its last epoch's metrics at the same step: those are not
        logged twice, only what it adds (test metrics, and once the whole run's peak memory,
        beside the last epoch's peak when they differ).
        """
        from mlflow.entities import Metric

        if is_oom_result(result):
            return
        run_id = self._trial_runs.get(trial_id) or self.start_trial(trial_id, config)
        step = int(result.get("epoch") or 0)
        now = int(time.time() * 1000)
        logged = self._logged_metrics(trial_id, run_id)
        # `final_result` marks a trial's last result both ways.
        last = result.get(TRAINED_KEY) is True or result.get("done") is True
        metrics = []
        for key, value in result.items():
            number = finite(value)
            wanted = key.startswith(("train_", "val_", "test_")) or key in _EPOCH_METRICS
            if number is None or not wanted:
                continue
            values = logged.get((key, step), [])
            whole_run_peak = last and key == _PEAK and len(values) == 1
            if not values or (whole_run_peak and number not in values):
                metrics.append(Metric(key, number, now, step))
                logged[(key, step)] = [*values, number]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def _logged_metrics(self, trial_id: str, run_id: str) -> dict[tuple[str, int], list[float]]:
        """The values the trial's run holds per (metric, step): what this driver logged, and on
        the trial's first result here, what an earlier driver had (one query per metric)."""
        logged = self._logged.get(trial_id)
        if logged is None:
            logged = self._logged[trial_id] = {}
            for key in self._earlier_metrics.pop(trial_id, []):
                for metric in self.client.get_metric_history(run_id, key):
                    logged.setdefault((key, metric.step), []).append(metric.value)
        return logged

    def end_trial(
        self, trial_id: str, config: dict[str, Any], result: dict[str, Any] | None, *, error: bool
    ) -> None:
        """Tags, applied batch sizes, artifacts and the final status of a finished trial."""
        from mlflow.entities import RunStatus

        run_id = self._trial_runs.get(trial_id) or self.start_trial(trial_id, config)
        result = result or {}
        state = end_state(result, error=error)
        oom = state == "pruned-oom"
        for key, value in {
            "state": state,
            "oom": "true" if oom else "false",
            "oom_stage": str(result.get(OOM_STAGE_KEY) or "") if oom else "",
        }.items():
            self.client.set_tag(run_id, key, value)
        # None (no size applied: out of memory in the tuner) is no value: not logged as "None".
        applied = {key: result.get(key) for key in _APPLIED}
        self._log_params(run_id, {k: v for k, v in applied.items() if v is not None})
        run_dir = result.get("run_dir")
        if run_dir and Path(run_dir).is_dir():
            self._log_run_dir(run_id, Path(run_dir))
        status = {
            "complete": RunStatus.FINISHED,
            "pruned-oom": RunStatus.KILLED,
            "stopped-early": RunStatus.KILLED,
        }.get(state, RunStatus.FAILED)
        self.client.set_terminated(run_id, RunStatus.to_string(status))

    def _log_run_dir(self, run_id: str, run_dir: Path) -> None:
        for name in ("config.json", "metrics.json"):
            if (run_dir / name).is_file():
                self.client.log_artifact(run_id, str(run_dir / name))
        if (run_dir / "model.pt").is_file():
            with tempfile.TemporaryDirectory() as tmp:
                model = Path(tmp) / "model"
                model.mkdir()
                for name in ("model.pt", "config.json"):
                    if (run_dir / name).is_file():
                        shutil.copy2(run_dir / name, model / name)
                self.client.log_artifacts(run_id, str(model), artifact_path="model")

    # --- the study ------------------------------------------------------------------------------
    def finish(self, summary: dict[str, Any], *, complete: bool) -> dict[str, str] | None:
        """Summary, plots and best model on the parent run; returns the registered model's
        `name` and `version` (a complete study with a best trial only)."""
        from mlflow.entities import Metric, RunStatus

        from hpo.plots import write_study_plots

        config = self.config
        if complete:
            self._delete_abandoned_runs({row["trial_id"] for row in summary["trials"]})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
            self.client.log_artifact(self.parent_id, str(path))
            try:
                import optuna

                study = optuna.load_study(study_name=config.name, storage=config.paths.optuna_url)
                plots = write_study_plots(study, Path(tmp) / "plots", metric=config.space.metric)
                if plots:
                    self.client.log_artifacts(self.parent_id, str(Path(tmp) / "plots"), "plots")
            except Exception as err:  # plots are a convenience: never lose a study over them
                logger.warning("study plots not written: %s", err)
        now = int(time.time() * 1000)
        counts = [
            Metric(key, float(summary[key]), now, 0)
            for key in (
                "num_trials",
                "num_complete",
                "num_pruned_oom",
                "num_stopped_early",
                "num_failed",
                "num_interrupted",
            )
        ]
        if summary.get("best_value") is not None:
            counts.append(Metric(f"best_{config.space.metric}", summary["best_value"], now, 0))
        # A study resumed (and one resumed after it finished) logs a count again only where it
        # changed: each resume of a finished study added the same values at step 0 again.
        latest = self.client.get_run(self.parent_id).data.metrics
        counts = [metric for metric in counts if latest.get(metric.key) != metric.value]
        if counts:
            self.client.log_batch(self.parent_id, metrics=counts)
        version = self._register_best(summary) if complete else None
        status = RunStatus.FINISHED if complete else RunStatus.KILLED
        self.client.set_terminated(self.parent_id, RunStatus.to_string(status))
        return version

    def _delete_abandoned_runs(self, known: set[str]) -> None:
        """Delete the runs of trials a killed driver had started but Ray's saved state did not
        know: never to finish (the resume asked the searcher for new trials in their place,
        and `fail_orphaned_trials` failed their Optuna trials). Kept, closed as interrupted,
        they were phantom trials of a finished study: `hpo.report` counted one more trial
        than `summary.json`, interrupted. MLflow keeps a deleted run (`mlflow runs restore`).

        A run that ended keeps its end: only one still open, or closed as interrupted by an
        earlier finish, was cut off.
        """
        from mlflow.entities import RunStatus

        running = RunStatus.to_string(RunStatus.RUNNING)
        for trial_id, run_id in list(self._trial_runs.items()):
            if trial_id in known:
                continue
            run = self.client.get_run(run_id)
            if run.info.status == running or run.data.tags.get("state") == "interrupted":
                self.client.set_tag(run_id, "state", "interrupted")
                self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
                self.client.delete_run(run_id)
                del self._trial_runs[trial_id]
                logger.info(
                    "trial %s was started by a driver stopped before Ray saved it, and will never"
                    " run: its MLflow run %s is deleted",
                    trial_id,
                    run_id,
                )

    def _register_best(self, summary: dict[str, Any]) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        best = summary.get("best_trial")
        run_id = self._trial_runs.get(best) if best else None
        if run_id is None:
            return None
        space = self.config.space
        name = f"{space.name}-{space.dataset}"
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(
                name, description=f"best models of {space.name} studies on {space.dataset}"
            )
        for earlier in self.client.search_model_versions(f"name = '{name}'"):
            tags = earlier.tags
            if tags.get("hpo.study") == self.config.name and tags.get("hpo.trial_id") == best:
                # Resuming a study that had finished: its best model is registered already.
                logger.info(
                    "%s version %s is this study's best model already (trial %s)",
                    name,
                    earlier.version,
                    best,
                )
                return {"name": name, "version": str(earlier.version)}
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        version = self.client.create_model_version(
            name,
            source=source,
            run_id=run_id,
            tags={"hpo.study": self.config.name, "hpo.trial_id": best},
            description=(
                f"{space.metric}={summary['best_value']:.4f}: best of study {self.config.name}"
                f" (trial {best}, {summary['num_trials']} trials)"
            ),
        )
        logger.info("registered %s version %s (trial %s)", name, version.version, best)
        return {"name": name, "version": str(version.version)}


class MlflowTrialLogger(Callback):
    """The Ray Tune callback (driver side) that writes each trial to the study's MLflow runs.

    It pickles as its URI and study only (Ray saves callbacks with the experiment), and finds
    the study's parent run, and the runs of trials started before, when the experiment starts
    or is restored.
    """

    def __init__(self, uri: str, config: StudyConfig) -> None:
        self.uri = uri
        self.config = config
        self._tracker: StudyTracker | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "config": self.config, "_tracker": None}

    @property
    def tracker(self) -> StudyTracker:
        if self._tracker is None:
            self._tracker = StudyTracker(self.uri, self.config, resume=True)
        return self._tracker

    def setup(self, *args: Any, **info: Any) -> None:
        self.tracker  # noqa: B018 - connect at the start, not at the first trial

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.start_trial(trial.trial_id, trial.config)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.tracker.log_result(trial.trial_id, trial.config, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.end_trial(trial.trial_id, trial.config, trial.last_result, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.end_trial(trial.trial_id, trial.config, trial.last_result, error=True)


def _searched_ranges(space: SearchSpace) -> dict[str, str]:
    """The space's searched ranges as the parent run's params (`space.batch_size`:
    `8..8192:log`, `space.schedule_type`: `none,step`), as `--set` writes them: studies of one
    space whose `--set` differed are told apart in MLflow."""
    from search_spaces.overrides import SETTABLE_KEYS

    ranges: dict[str, str] = {}
    for key in SETTABLE_KEYS:
        value = getattr(space, key)
        if key != "size":  # a fixed param already
            ranges[f"space.{key}"] = ",".join(value) if key == "schedule_type" else str(value)
    return ranges
