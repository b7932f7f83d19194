"""Host faults on a swarm of several nodes (`--engine swarm-nodes`), registered
into the catalogue. Each targets a service or a role (`primary`, `replica`,
`coordinator-2` …) and acts on the node that runs its task; each has its
Effect (how to see it bit) and a repair that works from the description alone
(it brings back every node of the run, not only the one it hit):

- node-crash: `docker kill` of the node (a host losing power); seen when the
  swarm's managers mark the node down — the look's `after_s` is Swarm's own
  detection time.
- node-stop: `docker stop` of the node (an orderly shutdown); seen as above.
- node-drain: `docker node update --availability drain`; seen when the node is
  drained and the target's task no longer runs there.
- node-cut: the node disconnected from the others' network (its engine keeps
  running its tasks); seen when the managers mark it down while its engine
  still runs the stack's containers.
The repair of each is the node's rejoin: started, reconnected, active, Ready
in the swarm, its inner edge up, and the target's service running again.

On an attached swarm (hosts pgchaos does not run) only node-drain is offered:
crash, stop and cut refuse in one line (capability `node-control`), and the
repair makes active again only the node the drain hit.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from harness.engines.swarm.deployment import NAMESPACE_LABEL, _run
from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment
from harness.errors import PgchaosError
from harness.nemesis.faults import CATALOGUE, Effect, Fault, Seen

if TYPE_CHECKING:
    from harness.engines.swarm_nodes.nodes import Node
    from harness.nemesis.nemesis import Nemesis

REJOIN_TIMEOUT_S = 120.0
NODE = "node"  # params key: the node an injection hit, for its repair


def hosts(nem: Nemesis, fault: str = "this fault") -> SwarmNodesDeployment:
    dep = nem.stack.deployment
    if not isinstance(dep, SwarmNodesDeployment):
        raise PgchaosError(f"{fault} needs a swarm of several hosts (--engine swarm-nodes)")
    return dep


def _hit(nem: Nemesis, target: str, params: dict[str, Any], fault: str) -> tuple[SwarmNodesDeployment, Node]:
    dep = hosts(nem, fault)
    node = dep.node_of(target)
    params[NODE] = node.name
    return dep, node


def _before(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    dep = hosts(nem)
    return {NODE: dep.node_of(target).name}


def _state(dep: SwarmNodesDeployment, name: str) -> dict[str, str]:
    return dep.node_states().get(name, {"state": "unknown", "availability": "?", "reachability": ""})


# -- injections ------------------------------------------------------------------------------
def _crash(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep, node = _hit(nem, target, params, "node-crash")
    dep.nodes.kill(node)


def _stop(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep, node = _hit(nem, target, params, "node-stop")
    dep.nodes.stop(node, timeout=int(float(params.get("timeout", 20))))


def _drain(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep, node = _hit(nem, target, params, "node-drain")
    dep.drained.add(node.name)
    _run(["docker", "node", "update", "--availability", "drain", node.name], env=dep.cli_env(),
         what="docker node update --availability drain")


def _cut(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    dep, node = _hit(nem, target, params, "node-cut")
    dep.avoid.add(node.name)  # the deployment asks the other managers from now on
    dep.manager()
    dep.nodes.disconnect(node)


# -- effects ------------------------------------------------------------------------------------
def _seen_down(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """The managers mark the node down (Swarm's detection)."""
    dep = hosts(nem)
    name = ctx.get(NODE, "")
    st = _state(dep, name)
    container = dep.nodes.container(dep.nodes.by_name(name))
    container.reload()
    return st["state"] == "down", (f"swarm node {name}: {st['state']} (reachability {st['reachability'] or '-'}); "
                                   f"node container {container.status}")


def _seen_drained(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    dep = hosts(nem)
    name = ctx.get(NODE, "")
    st = _state(dep, name)
    where = dep.placement().get(target.removeprefix(f"{dep.project}_"))
    ok = st["availability"] == "drain" and where != name
    return ok, f"swarm node {name}: availability {st['availability']}; {target}'s task on {where or 'no node'}"


def _seen_cut(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """Down for the managers, yet the cut-off node's engine still runs the stack's containers."""
    dep = hosts(nem)
    name = ctx.get(NODE, "")
    node = dep.nodes.by_name(name)
    st = _state(dep, name)
    running = 0
    with contextlib.suppress(Exception):
        label = f"{NAMESPACE_LABEL}={dep.project}"
        running = len(dep.nodes.client(node).containers.list(filters={"label": label}))
    connected = dep.nodes.connected(node)
    ok = st["state"] == "down" and not connected and running > 0
    return ok, (f"swarm node {name}: {st['state']} for the managers; on the nodes' network: {connected}; "
                f"its engine still runs {running} container(s) of {dep.project}")


# -- the repair: the node rejoins -----------------------------------------------------------------
def rejoin(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """Every node of the run started, connected and active; wait (bounded, scaled) until
    each is Ready, the inner edges run and the target's service runs its tasks again.
    Attached: the node the fault hit (and any pgchaos drained) active and Ready again."""
    dep = hosts(nem, "rejoin")
    deadline = time.monotonic() + REJOIN_TIMEOUT_S * nem.timeout_multiplier
    for node in dep.nodes.nodes:
        dep.nodes.start(node)
        dep.nodes.connect(node)
    dep.avoid.clear()
    mine = dep.drained | ({params[NODE]} if params.get(NODE) else set())
    while time.monotonic() < deadline:
        states = dep.node_states()
        if not dep.provisioned:  # someone else's hosts: only what pgchaos changed
            states = {name: st for name, st in states.items() if name in mine}
        for name, st in states.items():
            if st["availability"] != "active":
                _run(["docker", "node", "update", "--availability", "active", name], env=dep.cli_env(),
                     what="docker node update --availability active", check=False)
        want = dep.nodes.count if dep.provisioned else len(mine)
        if len(states) == want and all(s["state"] == "ready" and s["availability"] == "active"
                                       for s in states.values()):
            dep.drained.clear()
            break
        time.sleep(1.0)
    else:
        raise PgchaosError(f"swarm nodes not all Ready and active within "
                           f"{REJOIN_TIMEOUT_S * nem.timeout_multiplier:.0f} s: {dep.node_states()}")
    dep.ensure_inner_edges()
    if dep.wait_task_running(target, timeout_s=max(deadline - time.monotonic(), 10.0)) is None:
        raise PgchaosError(f"{dep.swarm_service(target)}: no running task after the nodes rejoined")


NODE_FAULTS = [
    Fault("node-crash", "node", "swarm-nodes: docker kill of the node running the target's task (host lost)",
          _crash, rejoin, Effect(_seen_down, _before, 90.0)),
    Fault("node-stop", "node", "swarm-nodes: docker stop of the node running the target's task (host shut down)",
          _stop, rejoin, Effect(_seen_down, _before, 60.0), ("timeout",)),
    Fault("node-drain", "node", "swarm-nodes: docker node update --availability drain of the target's node",
          _drain, rejoin, Effect(_seen_drained, _before, 60.0)),
    Fault("node-cut", "node", "swarm-nodes: the target's node disconnected from the other nodes",
          _cut, rejoin, Effect(_seen_cut, _before, 90.0)),
]


def register() -> None:
    """Add the host faults to the catalogue (idempotent)."""
    for fault in NODE_FAULTS:
        CATALOGUE.setdefault(fault.name, fault)


register()
