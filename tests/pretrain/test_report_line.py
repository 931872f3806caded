"""The report's arm description states how a pretrained image encoder started (tag ``image_init``)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from liver_mm.study.finish import arm_descriptions


def test_the_description_names_a_pretrained_start(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("x", artifact_location=str(tmp_path / "art"))
    params = {"modalities.description": "B-mode image only", "modalities.image": "True", "model.kind": "lightning"}
    runs = {}
    for arm, init in (("m1", "random (from scratch)"), ("m1_ssl", "self-supervised simclr on the training part (abc)")):
        run = client.create_run(exp, tags={"image_init": init})
        for k, v in params.items():
            client.log_param(run.info.run_id, k, v)
        runs[arm] = client.get_run(run.info.run_id)
    assert arm_descriptions(client, runs) == {
        "m1": "B-mode image only",
        "m1_ssl": "B-mode image only; image encoder: self-supervised simclr on the training part (abc)"}
