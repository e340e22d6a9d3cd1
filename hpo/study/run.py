"""`run_study`: claim the study directory, prepare once, run the trials, summarise."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpo.study.config import StudyConfig
from hpo.study.tuner import default_budget, ray_tuner
from trainables.batching.sizes import format_size
from trainables.errors import UserError
from trainables.training.files import write_json

__all__ = ["run_study"]

logger = logging.getLogger("hpo.run")


def run_study(config: StudyConfig, *, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the study; return its summary (also written to `summary.json`).

    Raises:
        UserError: Bad settings, a study directory that exists without `resume`, or nothing to
            resume, or another driver running the study.
    """
    # Ray's newer console output prints a table per experiment even at verbose=0; the legacy
    # reporter is silent at 0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Each trial's first report saves the experiment's state on purpose (`TrialReports`); Ray
    # warns about saves closer than 5 s apart, which trials starting together make.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # An OOM trial without an earlier value reports the worst value (-inf) on purpose; Ray's
    # TensorBoard logger warns about each one.
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    from hpo.callbacks import NoRayResumeHint, OneLineTrialErrors

    OneLineTrialErrors.install()
    NoRayResumeHint.install()
    config = _with_absolute_paths(config)
    from hpo.prepare import prepare_data
    from hpo.tracking import check_tracking_uri

    if not resume:
        _check_new(config)
    check_tracking_uri(config.tracking_uri)
    # Data and resources first: a bad --data-dir or --gpus-per-trial is an error before the
    # study directory exists.
    prepare_data(config.source, seed=config.seed, mode=config.space.mode)
    with _driver_lock(config):
        return _run_locked(config, resume=resume)


def _run_locked(config: StudyConfig, *, resume: bool) -> dict[str, Any]:
    import ray

    from hpo.prepare import prepare_prerequisites
    from hpo.tracking import StudyTracker

    paths = config.paths
    if not resume:
        _check_new(config)  # again, now that no other driver can be making it
    started_ray = False
    if not ray.is_initialized():
        from hpo.monitoring import init_ray

        init_ray(config.address, dashboard_host=config.dashboard_host)
        started_ray = True
    # After Ray's start: its driver installs a handler that aborts on SIGTERM.
    previous_handlers = _stop_on_signals()
    try:
        _check_resources(config)
        _claim(config, resume=resume)
        tracker = StudyTracker(config.tracking_uri, config, resume=resume)  # its parent run
        prerequisites = prepare_prerequisites(
            config.space, config.source, config.study_dir, seed=config.seed
        )
        # A resumed study keeps the budget it started with (its trials' memo keys with it).
        budget = tracker.recorded_budget() if resume else None
        if budget is None:
            # After the prerequisites: the memory they leave in use is not the trials'.
            budget = default_budget(config)
            if budget is not None:
                tracker.record_budget(budget)
        else:
            logger.info("memory budget: %s per trial, as the study started", format_size(budget))
        tuner = ray_tuner(config, prerequisites, resume=resume, budget=budget)
        ended = _num_ended_before(config, tuner) if resume else 0
        if ended >= config.num_samples:
            logger.info(
                "study %s had finished: %d of %d trials ended; nothing to run, its summary is"
                " written again",
                config.name,
                ended,
                config.num_samples,
            )
        else:
            logger.info(
                "study %s: %d trials of space %s, %d at a time (%s); Ray experiment %s",
                config.name,
                config.num_samples,
                config.space.name,
                config.max_concurrent,
                f"resumed, {ended} ended before" if resume else "new",
                paths.experiment,
            )
        # Ray Tune's console reporter prints tables on stdout, whatever `verbose` says; the
        # study logs its own lines (hpo.callbacks) and keeps stdout for the table or --json.
        with contextlib.redirect_stdout(sys.stderr):
            results = tuner.fit()
    finally:
        for signum, handler in previous_handlers.items():
            # None: set outside Python (Ray's abort on SIGTERM), which cannot be put back.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if started_ray:
            ray.shutdown()
    from hpo.states import num_ended
    from hpo.summary import fail_orphaned_trials, remove_abandoned_runs, summarise

    summary = summarise(config, results)
    complete = num_ended(summary) >= config.num_samples
    if complete:
        fail_orphaned_trials(config)
        remove_abandoned_runs(config, summary)
    tracker = StudyTracker(config.tracking_uri, config, resume=True)
    summary["mlflow"] = {
        "tracking_uri": config.tracking_uri,
        "experiment": tracker.experiment_name,
        "parent_run_id": tracker.parent_id,
        "registered_model": None,
    }
    registered = tracker.finish(summary, complete=complete)
    summary["mlflow"]["registered_model"] = registered
    write_json(paths.summary, summary)
    return summary


def _num_ended_before(config: StudyConfig, tuner: Any) -> int:
    """The trials of a restored Ray experiment that had ended; 0 for a new experiment (a
    resumed study whose driver stopped before Ray saved anything)."""
    from hpo.states import num_ended
    from hpo.summary import summarise

    try:
        results = tuner.get_results()
    except RuntimeError:  # not restored: "Can't return results as experiment has not been run"
        return 0
    return num_ended(summarise(config, results))


def _stop_on_signals() -> dict[int, Any]:
    """Make SIGTERM and SIGUSR1 stop the study as Ctrl-C does; returns the handlers they
    replaced, to restore (none where they cannot be set: not the main thread).

    SLURM sends SIGTERM at a job's time limit, on `scancel` and on preemption (SIGKILL follows
    after its KillWait, 30 s by default), and `hpo.sbatch` passes on the SIGUSR1 it asks for
    before the limit. Ray's driver aborted on SIGTERM: no last experiment state, no summary,
    MLflow runs left running; SIGUSR1 killed the driver before Ray Tune ran. Ray Tune stops
    gently on SIGUSR1 as on SIGINT: while it runs, its handler is called; before, the stop is a
    KeyboardInterrupt (exit 130), as Ctrl-C's is.
    """

    def stop(signum: int, frame: Any) -> None:
        logger.warning(
            "%s received (a time limit, scancel or preemption): stopping the study as Ctrl-C does",
            signal.Signals(signum).name,
        )
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if tune_stop is stop or not callable(tune_stop):
            raise KeyboardInterrupt
        tune_stop(signal.SIGUSR1, frame)

    try:
        return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGUSR1)}
    except ValueError:  # not the main thread
        return {}


def _claim(config: StudyConfig, *, resume: bool) -> None:
    """Create the study directory (new study) or check there is one to resume."""
    paths = config.paths
    if resume:
        if not paths.settings.is_file():
            raise UserError(f"--resume: {config.study_dir} holds no study (no study.json)")
        return
    _check_new(config)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json(paths.settings, config.to_json())


@contextlib.contextmanager
def _driver_lock(config: StudyConfig) -> Iterator[None]:
    """Hold the study's lock for the whole run: two drivers on one study (a `--resume` while it
    still runs, a requeued job beside the first) would run its trials twice and retag each
    other's MLflow runs. The kernel releases it when the driver dies, however it dies.

    Raises:
        UserError: Another driver holds it; the message says which (pid and host).
    """
    paths = config.paths
    created = not paths.root.exists()
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"--study-dir: cannot make the study's folder ({err})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                f"--study-name {config.name}: another driver ({holder}) is running this study"
                f" in {config.study_dir}; wait for it to end, or stop it and then --resume"
            ) from None
        except OSError as err:  # a file system without locks (some NFS or Lustre mounts)
            logger.warning(
                "%s cannot be locked (%s): nothing stops a second driver on this study",
                paths.lock,
                err,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            if created and [p.name for p in paths.root.iterdir()] == [paths.lock.name]:
                # A new study that stopped before it was made (bad resources): nothing left.
                paths.lock.unlink()
                paths.root.rmdir()
    finally:
        os.close(fd)


def _check_new(config: StudyConfig) -> None:
    root = config.paths.root
    if root.exists() and any(p.name != config.paths.lock.name for p in root.iterdir()):
        raise UserError(
            f"--study-name {config.name}: {config.study_dir} already holds a study; pass --resume"
            " to continue it, or another --study-name"
        )


def _check_resources(config: StudyConfig) -> None:
    import ray

    cluster = ray.cluster_resources()
    for name, need in (("CPU", config.cpus_per_trial), ("GPU", config.gpus_per_trial)):
        have = cluster.get(name, 0.0)
        if need > have:
            option = f"--{name.lower()}s-per-trial"
            raise UserError(
                f"{option} {need:g}: the Ray cluster has {have:g} {name}s in all, so no trial"
                f" could ever start; lower {option}"
            )


def _with_absolute_paths(config: StudyConfig) -> StudyConfig:
    """`config` with every path made absolute: Ray's workers run in their own working directory,
    so a relative `--study-dir` or `--data-dir` would name nothing there."""

    store = config.factor_store_path
    return dataclasses.replace(
        config,
        study_dir=Path(config.study_dir).resolve(),
        source=config.source.absolute(),
        factor_store_path=None if store is None else Path(store).resolve(),
    )
