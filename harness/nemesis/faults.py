"""The fault catalogue: each fault injects on a resolved target and returns
the action that heals it. Faults never judge; the Nemesis records them."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import PgchaosError
from harness.nemesis.targets import is_data_node

if TYPE_CHECKING:
    from harness.nemesis.nemesis import Nemesis

Heal = Callable[[], None]
FILL_FILE = "pgchaos-disk-fill"


@dataclass(frozen=True)
class Fault:
    """One kind of fault: a name, what it targets and how it is injected."""

    name: str
    kind: str  # "node" or "link" or "action"
    description: str
    inject: Callable[[Nemesis, str, dict[str, Any]], Heal]


def _kill(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    container = nem.owned(target)
    container.kill(signal=params.get("signal", "SIGKILL"))
    return lambda: nem.owned(target).start()


def _stop(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    nem.owned(target).stop(timeout=int(params.get("timeout", 20)))
    return lambda: nem.owned(target).start()


def _pause(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    nem.owned(target).pause()
    return lambda: nem.owned(target).unpause()


def _restart(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    nem.owned(target).restart(timeout=int(params.get("timeout", 10)))
    return lambda: None


def _pg_kill(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    if not is_data_node(target):
        raise PgchaosError(f"pg-kill needs a PostgreSQL node, not {target!r}")
    rc, out = nem.stack.exec(target, ["pkill", "-KILL", "-o", "-x", "postgres"], timeout=10)
    if rc != 0:
        raise PgchaosError(f"pg-kill on {target}: no postmaster to kill ({out.strip()})")
    return lambda: None  # Patroni (or the operator) restarts PostgreSQL


def _partition(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    container = nem.owned(target)
    network = nem.stack_network()
    network.disconnect(container, force=True)

    def heal() -> None:
        network.reload()
        if container.id not in {c.id for c in network.containers}:
            network.connect(container, aliases=[target])

    return heal


def _etcd_outage(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    nem.owned("etcd").stop(timeout=1)
    return lambda: nem.owned("etcd").start()


def _disk_full(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
    if not is_data_node(target):
        raise PgchaosError(f"disk-full needs a PostgreSQL node, not {target!r}")
    fill = nem.stack.data_mount(target) / FILL_FILE
    st = os.statvfs(fill.parent)
    free = st.f_bavail * st.f_frsize
    subprocess.run(["fallocate", "-l", str(max(free - 4096, 4096)), str(fill)], capture_output=True)
    # Top up whatever fallocate left (metadata rounding) until ENOSPC.
    subprocess.run(["dd", "if=/dev/zero", f"of={fill}", "bs=64k", "oflag=append",
                    "conv=notrunc"], capture_output=True)
    return lambda: fill.unlink(missing_ok=True)


def _number(value: Any) -> int | float:
    """Toxiproxy wants integers (ms, KB/s): keep whole numbers whole."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _toxic(fault: str) -> Callable[[Nemesis, str, dict[str, Any]], Heal]:
    def inject(nem: Nemesis, link: str, params: dict[str, Any]) -> Heal:
        attrs = {k: _number(v) for k, v in params.items() if k != "stream"}
        streams = ["downstream", "upstream"] if params.get("stream", "both") == "both" \
            else [str(params["stream"])]
        names = [nem.links.add_toxic(link, fault, stream=s, **attrs) for s in streams]

        def heal() -> None:
            for name in names:
                nem.links.remove_toxic(link, name)

        return heal

    return inject


def _link_down(nem: Nemesis, link: str, params: dict[str, Any]) -> Heal:
    nem.links.set_enabled(link, False)
    return lambda: nem.links.set_enabled(link, True)


def _patronictl(verb: str) -> Callable[[Nemesis, str, dict[str, Any]], Heal]:
    def inject(nem: Nemesis, target: str, params: dict[str, Any]) -> Heal:
        leader = nem.resolve_node("primary")
        cmd = ["patronictl", "-c", "/etc/patroni/patroni.yml", verb]
        if verb == "switchover":
            cmd += ["--leader", leader]
        if target not in ("primary", "leader", leader):
            cmd += ["--candidate", target]
        cmd += ["--force"]
        runner = next(c for c in ("coordinator-1", "coordinator-2", "coordinator-3")
                      if c != leader)
        rc, out = nem.stack.exec(runner, cmd, user="postgres", timeout=60)
        # patronictl may exit 0 after refusing (e.g. a candidate that is not a sync standby)
        if rc != 0 or "Successfully" not in out:
            raise PgchaosError(f"patronictl {verb} failed: {' '.join(out.strip().splitlines()[-2:])}")
        return lambda: None

    return inject


CATALOGUE: dict[str, Fault] = {f.name: f for f in [
    Fault("kill", "node", "SIGKILL the container (hard loss)", _kill),
    Fault("stop", "node", "docker stop: graceful shutdown", _stop),
    Fault("pause", "node", "freeze every process of the container", _pause),
    Fault("restart", "node", "docker restart", _restart),
    Fault("pg-kill", "node", "SIGKILL PostgreSQL's postmaster, Patroni stays alive", _pg_kill),
    Fault("partition", "node", "disconnect the node from the stack network", _partition),
    Fault("disk-full", "node", "fill the node's loop-mounted data volume to ENOSPC", _disk_full),
    Fault("etcd-outage", "node", "stop the DCS (etcd)", _etcd_outage),
    Fault("latency", "link", "Toxiproxy latency (latency, jitter ms) on a link", _toxic("latency")),
    Fault("bandwidth", "link", "Toxiproxy bandwidth limit (rate KB/s) on a link",
          _toxic("bandwidth")),
    Fault("timeout", "link", "Toxiproxy blackhole: data stops, connections hang",
          _toxic("timeout")),
    Fault("reset-peer", "link", "Toxiproxy TCP RST on the link's connections",
          _toxic("reset-peer")),
    Fault("link-down", "link", "disable the link: connections refused", _link_down),
    Fault("switchover", "action", "patronictl switchover to a candidate (planned)",
          _patronictl("switchover")),
    Fault("failover", "action", "patronictl failover --force (emergency)",
          _patronictl("failover")),
]}


def ensure_running(container: Any) -> None:
    """Unpause or start a container that a fault left down."""
    container.reload()
    if container.status == "paused":
        container.unpause()
    elif container.status in ("exited", "created", "dead"):
        with contextlib.suppress(Exception):
            container.start()
