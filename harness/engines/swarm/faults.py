"""Faults in Docker Swarm's terms (the guide's `docker service ...` operations),
registered into the catalogue. Each works on a stack run by the swarm engine
(`--engine swarm`), targets a stack-file service (coordinator-1, pgbouncer, or
a role such as `primary`), and says how to see that it bit (its Effect; the
nemesis records the observation op, as for every fault of the catalogue):

- task-kill: SIGKILL the running task's container; Swarm replaces the task
  (heal = wait for the replacement task to run).
- service-force-update: `docker service update --force SERVICE`.
- service-image-update: rolling `docker service update --image` to a second
  local tag of the same image (and back, on the next one).
- service-scale: `docker service scale SERVICE=N` (heal = scale back).
- edge-stop: stop the edge container that publishes the host ports.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import docker.errors

from harness.engines.swarm.deployment import SwarmDeployment
from harness.errors import PgchaosError
from harness.nemesis.faults import CATALOGUE, Effect, Fault, Seen

if TYPE_CHECKING:
    from harness.nemesis.nemesis import Nemesis

HEAL_TIMEOUT_S = 180.0
REPLACING = "replacing"  # params key: the task ids an injection replaces, for its repair to wait on


def swarm(nem: Nemesis, fault: str = "this fault") -> SwarmDeployment:
    dep = nem.stack.deployment
    if not isinstance(dep, SwarmDeployment):
        raise PgchaosError(f"{fault} needs the swarm engine (--engine swarm); this stack runs on {dep.name}")
    return dep


def _running_ids(dep: SwarmDeployment, service: str) -> list[str]:
    return sorted(t["ID"] for t in dep.tasks(service) if (t.get("Status") or {}).get("State") == "running")


def _task_state(dep: SwarmDeployment, task_id: str) -> tuple[str, str, str]:
    """(state, desired state, error) of one task."""
    try:
        task = dep.docker.api.inspect_task(task_id)
    except docker.errors.NotFound:
        return "removed", "shutdown", ""
    status = task.get("Status") or {}
    return status.get("State", "?"), task.get("DesiredState", "?"), status.get("Err", "")


def wait_replaced(nem: Nemesis, service: str, old: list[str], timeout_s: float = HEAL_TIMEOUT_S) -> list[str]:
    """Wait (bounded, scaled) until every desired task of the service runs and none of
    `old` is among them; the running task IDs."""
    dep = swarm(nem)
    deadline = time.monotonic() + timeout_s * nem.timeout_multiplier
    want = dep.replicas().get(service.removeprefix(f"{dep.project}_"), (0, 1))[1]
    while time.monotonic() < deadline:
        running = _running_ids(dep, service)
        if len(running) >= want and not set(running) & set(old):
            return running
        time.sleep(0.5)
    raise PgchaosError(f"{dep.swarm_service(service)}: replacement task(s) not running within "
                       f"{timeout_s * nem.timeout_multiplier:.0f} s")


def _before_tasks(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    dep = swarm(nem)
    return {"tasks": _running_ids(dep, target), "image": dep.image_of(target),
            "replicas": dep.replicas().get(target, (0, 0))}


# -- task-kill ---------------------------------------------------------------------------
def _task_kill(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep = swarm(nem, "task-kill")
    params[REPLACING] = _running_ids(dep, target)  # the repair waits for their replacements
    dep.kill(target, signal=params.get("signal", "SIGKILL"))


def _seen_task_killed(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """The task that ran before is no longer running (Swarm saw its container die)."""
    dep = swarm(nem)
    old = ctx.get("tasks") or []
    if not old:
        return False, "no running task before the kill"
    states = {t[:12]: _task_state(dep, t) for t in old}
    dead = {t: s for t, s in states.items() if s[0] != "running"}
    if not dead:
        return False, f"task(s) {', '.join(states)} still running"
    new = [t[:12] for t in _running_ids(dep, target) if t not in old]
    return True, ("; ".join(f"task {t} {s[0]} (desired {s[1]}{', ' + s[2] if s[2] else ''})"
                            for t, s in dead.items())
                  + f"; replacement running: {', '.join(new) or 'not yet'}")


# -- service-force-update / service-image-update --------------------------------------------
def _force_update(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep = swarm(nem, "service-force-update")
    params[REPLACING] = _running_ids(dep, target)
    dep.force_update(target, detach=True)


def _image_update(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep = swarm(nem, "service-image-update")
    params[REPLACING] = _running_ids(dep, target)
    dep.update_image(target, dep.rolled_tag(dep.image_of(target)), detach=True)


def _seen_replaced(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """An update bit: a task that ran before was shut down by the update (and, for an
    image update, the service's spec names the other image)."""
    dep = swarm(nem)
    old = ctx.get("tasks") or []
    spec = dep.service_spec(target)
    update = (spec.get("UpdateStatus") or {}).get("State", "none")
    image = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    if ctx.get("check_image") and image == ctx.get("image"):
        return False, f"service image still {image} (update {update})"
    stopped = [t[:12] for t in old if _task_state(dep, t)[1] != "running"]
    if not stopped:
        return False, f"update {update}; task(s) {', '.join(t[:12] for t in old) or 'none'} still desired running"
    new = [t[:12] for t in _running_ids(dep, target) if t not in old]
    return True, (f"update {update}; task(s) {', '.join(stopped)} shut down by the update; image {image}; "
                  f"new task running: {', '.join(new) or 'not yet'}")


def _before_image(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    return {**_before_tasks(nem, target, params), "check_image": True}


# -- service-scale ----------------------------------------------------------------------------
def _scale(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep = swarm(nem, "service-scale")
    if "replicas" not in params:
        raise PgchaosError("service-scale needs --param replicas=N")
    dep.scale(target, int(float(params["replicas"])))


def _seen_scaled(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    dep = swarm(nem)
    want = int(float((ctx.get("params") or {}).get("replicas", -1)))
    running, desired = dep.replicas().get(target, (0, 0))
    was = ctx.get("replicas") or (0, 0)
    ok = desired == want and running == want
    return ok, f"{dep.swarm_service(target)} {running}/{desired} (was {was[0]}/{was[1]}, asked {want})"


# -- edge-stop ----------------------------------------------------------------------------------
def _edge_stop(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep = swarm(nem, "edge-stop")
    if target != "edge":
        raise PgchaosError(f"edge-stop targets the edge container: write `edge`, not {target!r}")
    dep.edge().stop(timeout=int(float(params.get("timeout", 1))))


def _seen_edge_down(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    dep = swarm(nem)
    edge = dep.edge()
    edge.reload()
    port = dep.ports.pgbouncer
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    ok = edge.status != "running" and refused
    said = "refuses" if refused else "accepts"
    return ok, f"edge {edge.name} {edge.status}; 127.0.0.1:{port} {said} connections"


# -- repairs: from the fault's description (a game day's `pgchaos heal` has nothing else) -----
def _await_desired(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """task-kill, updates: the tasks that ran before are replaced (when the injection named
    them), and the service runs its desired replicas with no update under way."""
    dep = swarm(nem, "this fault")
    if params.get(REPLACING):
        wait_replaced(nem, target, list(params[REPLACING]))
    deadline = time.monotonic() + HEAL_TIMEOUT_S * nem.timeout_multiplier
    while time.monotonic() < deadline:
        running, desired = dep.replicas().get(target, (0, 1))
        if running == desired and dep.update_state(target) not in ("updating", "rollback_started"):
            return
        time.sleep(0.5)
    raise PgchaosError(f"{dep.swarm_service(target)}: not back at its desired replicas within "
                       f"{HEAL_TIMEOUT_S * nem.timeout_multiplier:.0f} s")


def _scale_back(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """service-scale: back to the stack file's replicas."""
    dep = swarm(nem, "service-scale")
    dep.scale(target, dep.desired_in_stack_file(target))
    _await_desired(nem, target, {})


def _start_edge(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    edge = swarm(nem, "edge-stop").edge()
    edge.reload()
    if edge.status != "running":
        edge.start()


SWARM_FAULTS = [
    Fault("task-kill", "node", "swarm: SIGKILL the service's running task; Swarm replaces it", _task_kill,
          _await_desired, Effect(_seen_task_killed, _before_tasks, 15.0), ("signal",)),
    Fault("service-force-update", "node", "swarm: docker service update --force SERVICE (tasks replaced)",
          _force_update, _await_desired, Effect(_seen_replaced, _before_tasks, 60.0)),
    Fault("service-image-update", "node", "swarm: rolling docker service update --image (second local tag)",
          _image_update, _await_desired, Effect(_seen_replaced, _before_image, 60.0)),
    Fault("service-scale", "node", "swarm: docker service scale SERVICE=replicas (heal scales back)",
          _scale, _scale_back, Effect(_seen_scaled, _before_tasks, 60.0), ("replicas",)),
    Fault("edge-stop", "action", "swarm: stop the edge container that publishes the host ports",
          _edge_stop, _start_edge, Effect(_seen_edge_down), ("timeout",)),
]


def register() -> None:
    """Add the swarm faults to the catalogue (idempotent)."""
    for fault in SWARM_FAULTS:
        CATALOGUE.setdefault(fault.name, fault)


register()
