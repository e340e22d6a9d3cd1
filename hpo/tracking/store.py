"""Where a study's MLflow store is, and whether it can be used: no Ray or MLflow import until a
store is checked (`hpo.report` reads these too, and its errors must come fast)."""

from __future__ import annotations

import logging
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from trainables.cli import tool_command
from trainables.errors import UserError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "artifact_location",
    "check_server",
    "check_tracking_uri",
    "client",
    "default_tracking_uri",
    "experiment_name",
    "quiet_mlflow",
    "sqlite_path",
    "ui_command",
]


def default_tracking_uri(study_root: Path) -> str:
    """The project's one store: `<study root>/mlflow.db` (artifacts beside it, `mlartifacts`)."""
    return f"sqlite:///{(study_root / 'mlflow.db').resolve()}"


def experiment_name(space: str) -> str:
    return f"hpo-{space}"


def ui_command(uri: str) -> str:
    """How to browse the store: the exact `mlflow ui` command, or the server's address."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"{tool_command('mlflow')} ui --backend-store-uri {uri}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH[?OPTIONS]` URI; None for any other store.

    Example:
        >>> sqlite_path("sqlite:////studies/mlflow.db?timeout=30")
        PosixPath('/studies/mlflow.db')
    """
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0] or ".")


def artifact_location(uri: str, space: str) -> str | None:
    """Artifacts of a SQLite store go beside it (MLflow would use the working directory)."""
    db = sqlite_path(uri)
    if db is None:
        return None  # a server or a file store decides
    return (db.parent / "mlartifacts" / experiment_name(space)).resolve().as_uri()


def check_tracking_uri(uri: str) -> None:
    """Fail fast, before any training, when the store cannot be reached or written: a server
    is checked with `check_server`, then every store with one real MLflow request.

    Raises:
        UserError: Naming the URI and what is wrong.
    """
    where = f"--mlflow-uri {uri}"
    if uri.startswith(("http://", "https://")):
        check_server(
            uri,
            hint="start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`) or leave"
            " --mlflow-uri out for the local store",
        )
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(db) as connection:  # creates it if needed: a real write
                connection.execute("CREATE TABLE IF NOT EXISTS _hpo_write_check (x INTEGER)")
                connection.execute("DROP TABLE _hpo_write_check")
        except (OSError, sqlite3.Error) as err:
            raise UserError(f"{where}: cannot write the SQLite store at {db} ({err})") from None
    elif not uri.startswith(("file:", "/", "databricks")) and "://" not in uri:
        raise UserError(
            f"{where}: not a tracking URI; give sqlite:///PATH, http://HOST:PORT or a folder"
        )
    quiet_mlflow()
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as err:  # MLflow raises many kinds; all mean "unusable"
        raise UserError(f"{where}: the tracking store cannot be used ({err})") from None


def check_server(uri: str, *, hint: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an MLflow server that cannot be reached or says it is unwell: MLflow's own
    client would retry it for minutes. A 4xx answer from `/health` (a server that wants a
    login, say) is an answer: what it means is MLflow's to report.

    Args:
        uri: The server, `http://HOST:PORT` or `https://...`.
        hint: What to do about an unreachable server, appended to the error.
        timeout_s: Seconds to wait for `/health`; default 5.

    Raises:
        UserError: Naming the URI and what is wrong.
    """
    health = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as err:
        if err.code >= 500:
            raise UserError(
                f"--mlflow-uri {uri}: the tracking server is not healthy ({health} answered"
                f" {err.code})"
            ) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(
            f"--mlflow-uri {uri}: the tracking server cannot be reached ({reason}); {hint}"
        ) from None


def quiet_mlflow() -> None:
    # A new SQLite store runs its schema migrations with one INFO line each.
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


def client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)
