"""MLflow "models from code" entry point of the served liver-mm model.

MLflow copies this file into the logged model and runs it on load; it names the model class
by import, so no Python object is pickled. The weights and preprocessing come from the
model's ``bundle`` artifact (safetensors + JSON) in ``NodulePyfunc.load_context``.
"""

import mlflow

from liver_mm.serve.pyfunc import NodulePyfunc

mlflow.models.set_model(NodulePyfunc())
