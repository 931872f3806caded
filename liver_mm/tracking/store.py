"""Where runs go: the tracking URI, the experiment, and a client on a store that exists.

MLflow's convention is honoured: an explicit ``logger.tracking_uri`` wins, then
``$MLFLOW_TRACKING_URI``, else an embedded sqlite store ``./mlflow.db`` with a file artifact root
(``./mlartifacts``). A new sqlite store is created once, under a file lock, so parallel study arms
never race on its schema migration. A tracking server (``http(s)://``, e.g. ``scripts/mlflow-server.sh``) or a
database URI (``postgresql://``, ``mysql://``) needs no lock and takes none: the server serialises the writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock
from mlflow.tracking import MlflowClient

#: MLflow 3's experiment kind tag and its model-training value (the UI reads them; mlflow.entities has no constant):
#: a new experiment opens in the UI's model-training mode
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def tracking_uri(configured: str | None = None) -> str:
    """An explicitly configured URI, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db`` (absolute)."""
    if configured:
        return str(configured)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str(Path("mlflow.db").resolve())


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def file_lock(path: Path, timeout: float = -1) -> FileLock:
    """An exclusive lock on ``path`` (created, folder too; left in place) for a ``with`` block: processes of one
    machine (or of a shared file system) take turns. ``filelock.FileLock``: an ``flock`` on Unix; waits forever
    unless ``timeout`` (seconds) is given, then raises ``filelock.Timeout``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return FileLock(path, timeout=timeout, mode=0o600)


def open_client(uri: str) -> MlflowClient:
    """A client on ``uri``; a sqlite store is created (schema migrated, mode 0600) once, under ``<db>.lock``; a
    tracking server must answer (:func:`check_server`). No lock is taken for any other store.

    Raises ``OSError`` naming the folder when a sqlite store's folder cannot be written.
    """
    db = sqlite_path(uri)
    if db is None:
        if uri.startswith(("http://", "https://")):
            check_server(uri)
        return MlflowClient(uri)
    from liver_mm.fileio import check_writable_dir

    check_writable_dir(db.parent)
    with file_lock(db.with_name(db.name + ".lock")):
        new = not db.exists()
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # forces schema creation while holding the lock
        if new:
            db.chmod(0o600)  # the runs of patient-linked studies: the owner's only, whatever the umask
    return client


class TrackingServerDown(ConnectionError):
    """The MLflow tracking server does not answer."""


def check_server(uri: str, timeout: float = 10.0) -> None:
    """Raise :class:`TrackingServerDown` naming ``uri`` when its ``/health`` does not answer within ``timeout``
    seconds (a job then fails at once with this message instead of MLflow's retries; finished runs are kept)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingServerDown(
            f"MLflow tracking server {uri} does not answer ({reason}): start it (scripts/mlflow-server.sh up) "
            "or set MLFLOW_TRACKING_URI / logger.tracking_uri, then rerun the same command: finished runs are "
            "kept and the study resumes") from None


def experiment_id(client: MlflowClient, name: str, artifact_root: str | None = None) -> str:
    """Id of experiment ``name``, created if new; a new experiment on a sqlite store keeps its
    artifacts under ``artifact_root`` (a local folder, created 0700)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if artifact_root and client.tracking_uri.startswith("sqlite:"):
        root = Path(artifact_root).resolve()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's only, whatever the umask
        location = root.as_uri()
    try:

        # model training, so that MLflow 3's UI opens the experiment in that mode (not GenAI)
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
    except Exception:  # created meanwhile by a parallel child run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def connect(logger_cfg) -> tuple[MlflowClient, str]:
    """(client, experiment id) of a ``logger`` config group (``tracking_uri``, ``experiment_name``, ``artifact_root``)."""
    client = open_client(tracking_uri(logger_cfg.get("tracking_uri")))
    return client, experiment_id(client, str(logger_cfg.experiment_name), logger_cfg.get("artifact_root"))
