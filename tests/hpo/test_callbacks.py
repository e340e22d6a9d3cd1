"""The study's log lines: one per event, Ray's failed-attempt tracebacks included."""

from __future__ import annotations

import io
import logging
import types

import pytest

from hpo.callbacks import NoRayResumeHint, NoRayTokenNotice, OneLineTrialErrors, StudyProgress


def test_a_failed_trial_attempt_is_one_line_without_its_traceback() -> None:
    OneLineTrialErrors.install()
    OneLineTrialErrors.install()
    ray_logger = logging.getLogger(OneLineTrialErrors.LOGGER)
    assert sum(isinstance(f, OneLineTrialErrors) for f in ray_logger.filters) == 1
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    ray_logger.addHandler(handler)
    try:
        try:
            raise ValueError("Traceback (most recent call last):\n  ...\nValueError: injected")
        except ValueError as err:
            # As Ray's TuneController logs it.
            ray_logger.error("Trial task failed for trial train_trial_597757c7", exc_info=err)
            ray_logger.error("another error", exc_info=err)  # left as it is
    finally:
        ray_logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Trial task failed for trial train_trial_597757c7: ValueError: injected"
    assert lines[1] == "another error"
    assert lines[2].startswith("Traceback")


def test_rays_tuner_restore_hint_is_dropped_for_the_studys_own() -> None:
    NoRayResumeHint.install()
    ray_logger = logging.getLogger(NoRayResumeHint.LOGGER)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    ray_logger.addHandler(handler)
    try:
        # As `ray.tune.tune.run` logs it when a study is stopped.
        ray_logger.warning(
            "Experiment has been interrupted, but the most recent state was saved.\n"
            'Resume experiment with: Tuner.restore(path="/s/ray/trials", trainable=...)'
        )
        ray_logger.warning("Total run time: 12.00 seconds")  # left as it is
    finally:
        ray_logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["Total run time: 12.00 seconds"]


def test_rays_token_notice_is_dropped_and_its_other_warnings_pass() -> None:
    from ray._private.authentication import authentication_token_setup as token_setup

    NoRayTokenNotice.install()
    ray_logger = logging.getLogger(NoRayTokenNotice.LOGGER)
    assert ray_logger is token_setup.logger
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    ray_logger.addHandler(handler)
    try:
        token_setup._warn_token_auth_enabled()  # what ray.init logs for a new local instance
        token_setup._warn_token_auth_disabled()
    finally:
        ray_logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("Token authentication is disabled for this Ray cluster.")


def test_a_trial_the_scheduler_stopped_is_logged_as_stopped_not_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trial = types.SimpleNamespace(
        trial_id="9a1d33d0",
        last_result={"val_f1": 0.5, "epoch": 1, "trained_to_end": False, "done": True},
    )
    with caplog.at_level(logging.INFO, logger="hpo.run"):
        StudyProgress("val_f1", epochs=4).on_trial_complete(0, [], trial)
    (record,) = caplog.records
    assert record.getMessage() == (
        "trial 9a1d33d0 stopped early by the scheduler after epoch 1: val_f1 0.5000 (1 finished)"
    )
