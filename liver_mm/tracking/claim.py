"""One live study per study key, across processes and hosts sharing one MLflow store.

A study's process first *claims* its key: it creates a small claim run (tag ``study_claim`` = the key,
``claim_state=candidate``, its owner's tags) and then looks at every other claim of the key:

* a live claim that is ``held`` wins: this one is withdrawn (deleted) and :class:`StudyBusy` names its owner;
* a live candidate created earlier (start time, then run id) wins: the same;
* a live candidate created later is waited for (it sees this one and withdraws, or it did not see it and holds);
* claims whose owner is gone are deleted; with none left this claim becomes ``held``.

Each process's create is stored before it looks, so of two simultaneous claims at least one sees the other: both
never hold. The held claim and the study's parent run beat (:func:`~liver_mm.tracking.owner.heartbeat`) until
:func:`release`, which deletes the claim (a killed study's claim is deleted by the next one, once its owner counts
as gone). Only the holder creates or takes over the parent run.
"""

from __future__ import annotations

import atexit
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from liver_mm.tracking.owner import beat_age, describe, heartbeat, owner_alive, owner_tags

log = logging.getLogger(__name__)
CLAIM_TAG = "study_claim"
STATE_TAG = "claim_state"
#: seconds between two looks while a later claim decides
CLAIM_POLL_S = 0.5
#: the longest wait for later claims to decide (a claim process hung between its create and its look)
CLAIM_WAIT_S = 60.0


class StudyBusy(RuntimeError):
    """Another live process runs this study (or trains the run waited for)."""


@dataclass
class Claim:
    """A held claim: its run, and the heartbeats kept until :func:`release`."""

    client: MlflowClient
    run_id: str
    beats: ExitStack = field(default_factory=ExitStack)
    beating: set[str] = field(default_factory=set)

    def beat(self, run_id: str, every: float | None = None) -> None:
        """Keep ``run_id``'s heartbeat until the claim is released."""
        if run_id not in self.beating:
            self.beating.add(run_id)
            self.beats.enter_context(heartbeat(self.client, run_id, every))


_HELD: dict[tuple[str, str, str], Claim] = {}


def claim_study(client: MlflowClient, exp_id: str, key: str, name: str, every: float | None = None,
                poll_s: float = CLAIM_POLL_S, wait_s: float = CLAIM_WAIT_S) -> Claim:
    """This process's claim of study ``key`` (the one it holds already, or a new one); raises :class:`StudyBusy`
    naming the owner when another live process holds it or claimed it first."""
    slot = (str(client.tracking_uri), exp_id, key)
    if slot in _HELD:
        return _HELD[slot]
    tags = {**owner_tags(), CLAIM_TAG: key, STATE_TAG: "candidate", "study": name}
    mine = client.create_run(exp_id, tags=tags, run_name=f"claim:{name}")
    me = mine.info.run_id
    order = (mine.info.start_time, me)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            later = _look(client, exp_id, key, me, order, name)
            if not later:
                break
            if time.monotonic() > deadline:
                raise StudyBusy(f"study {name}: claim run {later[0].info.run_id} ({describe(later[0].data.tags)}) "
                                f"did not decide within {wait_s:.0f} s; stop that process, then rerun this command")
            time.sleep(poll_s)
        client.set_tag(me, STATE_TAG, "held")
    except BaseException:
        _delete(client, me)
        raise
    claim = _HELD[slot] = Claim(client, me)
    claim.beat(me, every)
    return claim


def _look(client: MlflowClient, exp_id: str, key: str, me: str, order: tuple[int, str], name: str) -> list[Run]:
    """The live later candidates to wait for; raises :class:`StudyBusy` when another claim wins; deletes dead
    ones."""
    later = []
    for run in client.search_runs([exp_id], f"tags.{CLAIM_TAG} = '{key}'"):
        tags = run.data.tags
        if run.info.run_id == me:
            continue
        if run.info.status != "RUNNING" or not owner_alive(tags):
            log.info("study %s: removing the claim of a study that is gone (%s, run %s)", name, describe(tags),
                     run.info.run_id)
            _delete(client, run.info.run_id)
            continue
        first = tags.get(STATE_TAG) == "held" or (run.info.start_time, run.info.run_id) < order
        if first:
            raise StudyBusy(f"another study ({describe(tags)}) is running study {name} (claim run "
                            f"{run.info.run_id}, last heartbeat {beat_age(tags):.0f} s ago); wait for it to finish "
                            "or stop it, then rerun this command")
        later.append(run)
    return later


def _delete(client: MlflowClient, run_id: str) -> None:
    try:
        client.delete_run(run_id)
    except MlflowException as exc:  # deleted by another process already
        log.debug("claim run %s: %s", run_id, exc)


def release(client: MlflowClient | None = None, key: str | None = None) -> None:
    """Stop the heartbeats of this process's claims (of ``client``'s store and study ``key``, or all) and delete
    the claim runs."""
    for slot, claim in list(_HELD.items()):
        if (client is None or slot[0] == str(client.tracking_uri)) and key in (None, slot[2]):
            del _HELD[slot]
            claim.beats.close()
            _delete(claim.client, claim.run_id)


@atexit.register
def _release_at_exit() -> None:
    try:
        release()
    except Exception as exc:  # noqa: BLE001 - the store may be gone; the next study deletes the claim
        log.debug("claims not released: %s", exc)
