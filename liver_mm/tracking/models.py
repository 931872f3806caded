"""The models a run logs: ``model`` (pyfunc: the bundle + preprocessing, what `predict` and serving use)
and ``torch_model`` (the bare network in MLflow's PyTorch flavour, one packed input), or a
scikit-learn ``model`` for the logistic-regression control.

Input examples are synthetic (a fixed pattern image, zero labs in the preprocessed space): no
patient's pixels or labs ever go into a logged model, its signature or its example.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import Model
from mlflow.tracking import MlflowClient


def synthetic_packed_example(image_size: int | None, n_tabular: int, n: int = 2) -> np.ndarray:
    """(n, S*S + F) float32: a diagonal-gradient crop in [0, 1] then zeros (the training mean of each
    preprocessed feature)."""
    parts = []
    if image_size:
        ramp = np.add.outer(np.arange(image_size), np.arange(image_size)) / (2.0 * max(1, image_size - 1))
        parts.append(np.repeat(ramp.reshape(1, -1), n, axis=0))
    parts.append(np.zeros((n, n_tabular)))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _use(client: MlflowClient, run_id: str) -> None:
    # MLflow's model-logging API resolves its store and the logged model's experiment process-wide
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)


def log_network_models(client: MlflowClient, run_id: str, bundle_dir: Path, net, image_size: int | None,
                       n_tabular: int) -> None:
    """Log ``model`` (pyfunc over ``bundle_dir``) and ``torch_model`` (``net`` behind one packed input)."""
    import mlflow.pytorch

    from liver_mm.models.packed import PackedInputClassifier
    from liver_mm.serve import pyfunc
    from liver_mm.serve.inference import Predictor

    _use(client, run_id)
    packed = PackedInputClassifier(net.eval(), image_size, n_tabular).eval()
    Model.log(None, name="torch_model", flavor=mlflow.pytorch, run_id=run_id, pytorch_model=packed,
              input_example=synthetic_packed_example(image_size, n_tabular), serialization_format="pt2",
              pip_requirements=pyfunc.pip_requirements())
    predictor = Predictor.from_dir(bundle_dir)  # the example is scored once by MLflow: it must load
    Model.log(None, name="model", flavor=mlflow.pyfunc, run_id=run_id, python_model=str(pyfunc.MODEL_CODE),
              artifacts={pyfunc.ARTIFACT_KEY: str(bundle_dir)},
              signature=pyfunc.request_signature(predictor.features, predictor.use_image,
                                                 predictor.preprocessor.variables),
              input_example=pyfunc.input_example(predictor), pip_requirements=pyfunc.pip_requirements(),
              metadata=pyfunc.model_metadata(predictor.features, predictor.preprocessor.variables))


def log_sklearn_model(client: MlflowClient, run_id: str, estimator, n_features: int) -> None:
    """Log a fitted scikit-learn estimator as ``model`` with a synthetic (zeros) input example."""
    import mlflow.sklearn
    import skops.io as sio

    _use(client, run_id)
    # MLflow's safe (skops) format refuses types it does not know, e.g. gradient-boosted trees' internals:
    # trust only scikit-learn's own
    trusted = [t for t in sio.get_untrusted_types(data=sio.dumps(estimator)) if t.startswith("sklearn.")]
    Model.log(None, name="model", flavor=mlflow.sklearn, run_id=run_id, sk_model=estimator,
              input_example=np.zeros((2, n_features)), pip_requirements=["scikit-learn"],
              skops_trusted_types=trusted or None)


def run_models(client: MlflowClient, run) -> frozenset[str]:
    """Names of the models ``run`` logged (MLflow 3 logged models whose source run it is: ``model``,
    ``torch_model``); not run artifacts, so ``list_artifacts`` does not show them."""
    found = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run.info.run_id}'")
    return frozenset(m.name for m in found)


def download_run_model(client: MlflowClient, run_id: str, name: str, dst: Path) -> Path:
    """A local copy (under ``dst``) of the model ``name`` run ``run_id`` logged (``runs:/<run_id>/<name>``, read
    from the client's store); ``ValueError`` when it cannot be fetched."""
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(client.tracking_uri)  # MLflow resolves a run's logged model through the global store
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/{name}", dst_path=str(dst),
                                                        tracking_uri=client.tracking_uri))
    except MlflowException as exc:
        raise ValueError(f"cannot fetch model {name!r} of run {run_id}: {exc}") from None


def load_sklearn_model(client: MlflowClient, run_id: str, dst: Path):
    """The scikit-learn estimator :func:`log_sklearn_model` logged as ``model`` of ``run_id`` (downloaded into
    ``dst``). Read with skops, never unpickled; only scikit-learn's own types are trusted, as at logging (a model
    holding any other type is refused: ``ValueError`` naming them). MLflow's own loader is not used: it refuses
    every format unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is set, skops included."""
    import skops.io as sio

    local = download_run_model(client, run_id, "model", dst)
    flavor = Model.load(str(local)).flavors.get("sklearn") or {}
    if flavor.get("serialization_format") != "skops" or not flavor.get("pickled_model"):
        raise ValueError(f"run {run_id}: model is not a scikit-learn model in skops format (flavor {flavor}); "
                         "only skops models are read")
    path = local / str(flavor["pickled_model"])
    untrusted = sio.get_untrusted_types(file=str(path))
    foreign = [t for t in untrusted if not t.startswith("sklearn.")]
    if foreign:
        raise ValueError(f"run {run_id}: model holds types other than scikit-learn's ({', '.join(foreign)}); "
                         "not loaded")
    return sio.load(str(path), trusted=untrusted)
