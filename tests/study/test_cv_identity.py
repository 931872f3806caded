"""Cross-validated arms follow the arm's settings (arm key) and never train a fold another live study trains."""

from __future__ import annotations

import threading
import time

from omegaconf import OmegaConf

from liver_mm.study.cv.run import _find_or_create_arm_run, _free_folds
from tests.tracking.test_registry_owner import _owned, other_process, store  # noqa: F401 - fixtures

FOLD = {"study_key": "k", "is_study_parent": "false", "study_level": "fold", "arm": "m1", "repeat": "0",
        "fold": "0"}


def _fold_run(client, exp_id: str, pid: int, akey: str) -> str:
    run_id = _owned(client, exp_id, "m1 r0 f0", pid)
    for k, v in {**FOLD, "arm_key": akey}.items():
        client.set_tag(run_id, k, v)
    return run_id


def _finish(client, run_id: str) -> None:
    client.set_tag(run_id, "outputs_logged", "true")
    client.set_terminated(run_id, "FINISHED")


def test_a_fold_another_study_trains_is_waited_for_not_trained_twice(store, other_process):  # noqa: F811
    client, exp_id = store
    run_id = _fold_run(client, exp_id, other_process.pid, "a1")
    threading.Thread(target=lambda: (time.sleep(1.0), _finish(client, run_id)), daemon=True).start()
    done = _free_folds(client, exp_id, "k", "m1", "a1", [(0, 0)], poll_s=0.2)
    assert list(done) == [("0", "0")] and done[("0", "0")].info.run_id == run_id
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]  # nothing removed, nothing new


def test_fold_runs_of_other_settings_do_not_count(store, other_process):  # noqa: F811
    client, exp_id = store
    old = _fold_run(client, exp_id, other_process.pid, "old-settings")
    _finish(client, old)
    assert _free_folds(client, exp_id, "k", "m1", "a1", [(0, 0)], poll_s=0.2) == {}  # trained again
    assert client.get_run(old).info.status == "FINISHED"  # kept, not reused


def test_the_arm_run_follows_the_arm_key(store):  # noqa: F811
    client, exp_id = store
    parent = client.create_run(exp_id).info.run_id
    cfg = OmegaConf.create({"study": {"arm": "m1", "name": "s"}, "modalities": {"name": "m1", "image": True},
                            "model": {"kind": "lightning"}, "cv": {"folds": 3, "repeats": 1}})
    cohort = type("C", (), {"synthetic": True, "manifest_hash": "h", "content_hash": "c"})()
    first = _find_or_create_arm_run(client, exp_id, "k", parent, cfg, cohort, "a1")
    client.set_tag(first, "study_level", "arm")
    assert _find_or_create_arm_run(client, exp_id, "k", parent, cfg, cohort, "a1") == first
    other = _find_or_create_arm_run(client, exp_id, "k", parent, cfg, cohort, "a2")
    assert other != first and client.get_run(other).data.tags["arm_key"] == "a2"
