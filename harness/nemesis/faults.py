"""The fault catalogue: each fault injects on a resolved target and returns
the action that heals it, and says how to see that it bit (its Effect: one
look that answers (seen, evidence), polled briefly after the injection).
Faults never judge; the Nemesis records them and what was seen."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from harness.errors import PgchaosError
from harness.nemesis.targets import is_data_node

if TYPE_CHECKING:
    from harness.nemesis.nemesis import Nemesis

Heal = Callable[[], None]  # a custom fault's own undo (Nemesis.custom)
Inject = Callable[["Nemesis", str, dict[str, Any]], None]
Repair = Callable[["Nemesis", str, dict[str, Any]], None]
Seen = tuple[bool, str]  # (the effect was seen, what was seen)
FILL_FILE = "pgchaos-disk-fill"
ENOSPC_PROBE = ".pgchaos-enospc-probe"


@dataclass(frozen=True)
class Effect:
    """How to see that a fault took effect. `before(nem, target, params)` reads,
    before the injection, what `check` compares against; `check(nem, target,
    ctx)` looks once (ctx = before's answer plus "params"). The nemesis polls
    `check` for up to `timeout_s` (scaled) after the injection."""

    check: Callable[[Nemesis, str, dict[str, Any]], Seen]
    before: Callable[[Nemesis, str, dict[str, Any]], dict[str, Any]] | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Fault:
    """One kind of fault, whole: what it targets, how it is injected, how its effect is
    seen, and its repair. The repair needs only the fault's description (target and
    params), so the same one runs for `Nemesis.heal`, heal-all, `pgchaos heal ID` in
    another process and the drill; it is safe to run when there is nothing to undo."""

    name: str
    kind: str  # "node" or "link" or "action"
    description: str
    inject: Inject
    repair: Repair
    effect: Effect | None = None
    params: tuple[str, ...] = ()  # the parameters it takes (numbers, except "stream" and "signal")


def check_params(fault: Fault, params: dict[str, Any]) -> None:
    """One line for a parameter the fault does not take or a value it cannot use."""
    for key, value in params.items():
        if key not in fault.params:
            valid = ", ".join(fault.params) or "none"
            raise PgchaosError(f"{fault.name} takes no parameter {key!r}; valid: {valid}")
        if key == "stream":
            if value not in ("both", "downstream", "upstream"):
                raise PgchaosError(f"stream={value!r}: valid: both, downstream, upstream")
        elif key != "signal":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise PgchaosError(f"{key}={value!r} is not a number") from None
            if not number >= 0 or number == float("inf"):
                raise PgchaosError(f"{key}={value!r} must be a finite number >= 0")


def _kill(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.kill(target, signal=params.get("signal", "SIGKILL"))


def _stop(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.stop(target, timeout=int(params.get("timeout", 20)))


def _pause(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.pause(target)


def _restart(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.restart(target, timeout=int(params.get("timeout", 10)))


def _pg_kill(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    if not is_data_node(target, nem.stack):
        raise PgchaosError(f"pg-kill needs a PostgreSQL node, not {target!r}")
    if _postmaster(nem, target) == 1:
        # The postmaster is the container's init (a plain worker): the kernel drops a
        # SIGKILL sent to it from inside its PID namespace, so it comes through Docker;
        # the container ends with it, and nobody but the heal starts it again.
        nem.deployment.kill(target)  # its repair starts the container again
        return
    rc, out = nem.stack.exec(target, ["pkill", "-KILL", "-o", "-x", "postgres"], timeout=10)
    if rc != 0:
        raise PgchaosError(f"pg-kill on {target}: no postmaster to kill ({out.strip()})")
    # Patroni (or the operator) restarts PostgreSQL; the repair only makes sure the container runs


def _partition(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.disconnect(target)


def dcs_outage_members(nem: Nemesis, target: str, params: dict[str, Any]) -> list[str]:
    """The DCS members an etcd-outage stops: the target, and with `members=N` the next
    ones of the manifest's DCS up to N (a quorum or all of a multi-member DCS)."""
    members = list(getattr(getattr(nem.stack.manifest, "dcs", None), "members", None) or [target])
    start = members.index(target) if target in members else 0
    count = max(1, int(float(params.get("members", 1))))
    return ([target] if target not in members else []) + (members[start:] + members[:start])[:count]


def _etcd_outage(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """Stop the DCS member the target names (the nemesis resolves it: `etcd`, `dcs`), or
    with `members=N` that many members from it on."""
    for member in dcs_outage_members(nem, target, params):
        nem.deployment.stop(member, timeout=1)


def _disk_full(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    if not is_data_node(target, nem.stack):
        raise PgchaosError(f"disk-full needs a PostgreSQL node, not {target!r}")
    fill = nem.stack.data_mount(target) / FILL_FILE
    try:
        fill_to_enospc(fill)
    except BaseException:
        fill.unlink(missing_ok=True)
        raise


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no output)"])[-1]


def fill_to_enospc(fill: Any) -> None:
    """Allocate the free space of fill's file system to `fill`, then top it up
    with dd until the write fails with ENOSPC. fallocate may itself stop at
    ENOSPC (metadata rounding); dd must. Anything else is one line of error."""
    st = os.statvfs(fill.parent)
    free = st.f_bavail * st.f_frsize
    try:
        proc = subprocess.run(["fallocate", "-l", str(max(free - 4096, 4096)), str(fill)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 and "No space left on device" not in proc.stderr:
            raise PgchaosError(f"disk-full: fallocate on {fill} failed (exit {proc.returncode}): "
                               f"{_last_line(proc.stderr)}")
        # Top up whatever fallocate left until ENOSPC: dd with /dev/zero ends no other way.
        proc = subprocess.run(["dd", "if=/dev/zero", f"of={fill}", "bs=64k", "oflag=append",
                               "conv=notrunc"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PgchaosError(f"disk-full: could not fill {fill}: {exc}") from None
    if proc.returncode == 0 or "No space left on device" not in proc.stderr:
        raise PgchaosError(f"disk-full: dd on {fill} did not end with ENOSPC (exit {proc.returncode}): "
                           f"{_last_line(proc.stderr)}")


def _number(value: Any) -> int | float:
    """Toxiproxy wants integers (ms, KB/s): keep whole numbers whole."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _toxic(fault: str) -> Inject:
    def inject(nem: Nemesis, link: str, params: dict[str, Any]) -> None:
        attrs = {k: _number(v) for k, v in params.items() if k != "stream"}
        for name in _toxic_names(fault, params):
            nem.links.add_toxic(link, fault, stream=name.rsplit("-", 1)[1], **attrs)

    return inject


def _link_down(nem: Nemesis, link: str, params: dict[str, Any]) -> None:
    nem.links.set_enabled(link, False)


def _patronictl(verb: str) -> Inject:
    def inject(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
        group = nem.stack.manifest.group_of(target) or nem.stack.manifest.coordinator
        leader = nem.resolve_node(f"primary@{group.name}")
        cmd = ["patronictl", "-c", group.patroni_config, verb]
        if group.citus_group is not None:  # Patroni's Citus mode: "the --group must be specified"
            cmd += ["--group", str(group.citus_group)]
        if verb == "switchover":
            cmd += ["--leader", leader]
        if target not in ("primary", "leader", leader):
            cmd += ["--candidate", target]
        cmd += ["--force"]
        runner = next(c for c in group.members if c != leader)
        rc, out = nem.stack.exec(runner, cmd, user="postgres", timeout=60)
        # patronictl may exit 0 after refusing (e.g. a candidate that is not a sync standby)
        if rc != 0 or "Successfully" not in out:
            raise PgchaosError(f"patronictl {verb} failed: {' '.join(out.strip().splitlines()[-2:])}")

    return inject


# -- repairs: from the fault's description alone, safe to run twice ---------------------------
def _start_again(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """kill, stop, pause, restart, pg-kill: the container runs, unpaused."""
    nem.deployment.start(target)


def _start_dcs_members(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """etcd-outage: every DCS member it stopped runs again."""
    for member in dcs_outage_members(nem, target, params):
        nem.deployment.start(member)


def _reconnect(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    nem.deployment.reconnect(target)


def _free_space(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    (nem.stack.data_mount(target) / FILL_FILE).unlink(missing_ok=True)


def _remove_toxics(fault: str) -> Repair:
    def repair(nem: Nemesis, link: str, params: dict[str, Any]) -> None:
        for stream in ("downstream", "upstream"):  # both: the recorded stream may be either
            nem.links.remove_toxic(link, f"pgchaos-{fault}-{stream}")

    return repair


def _enable_link(nem: Nemesis, link: str, params: dict[str, Any]) -> None:
    nem.links.set_enabled(link, True)


def _nothing(nem: Nemesis, target: str, params: dict[str, Any]) -> None:
    """switchover, failover: the new leader is the cluster's new normal."""


# -- effects: one look each; the nemesis polls them right after the injection ----------------
def _state(nem: Nemesis, target: str) -> tuple[Any, dict[str, Any]]:
    container = nem.deployment.container(target)
    container.reload()
    return container, container.attrs.get("State") or {}


def _before_state(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    container, state = _state(nem, target)
    return {"status": container.status, "started": state.get("StartedAt"),
            "finished": state.get("FinishedAt")}


def _seen_down(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """kill, stop: the container went from running to gone or exited (or it exited
    and was started since: its FinishedAt moved)."""
    try:
        container, state = _state(nem, target)
    except PgchaosError as exc:
        return True, f"container gone ({exc})"
    moved = state.get("FinishedAt") != ctx.get("finished")
    if container.status in ("exited", "dead") and (moved or ctx.get("status") == "running"):
        return True, f"container {container.status} (exit code {state.get('ExitCode')})"
    if moved:
        return True, f"container exited at {state.get('FinishedAt')} and is {container.status} again"
    if ctx.get("status") not in (None, "running"):
        return False, f"container was already {ctx['status']} before the fault; nothing changed"
    return False, f"container still {container.status} since {state.get('StartedAt')}"


def _seen_paused(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    container, _ = _state(nem, target)
    return container.status == "paused", f"container status {container.status}"


def _seen_restarted(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    container, state = _state(nem, target)
    if state.get("StartedAt") != ctx.get("started"):
        return True, f"container started again at {state.get('StartedAt')} (was {ctx.get('started')})"
    return False, f"container {container.status}, not restarted (started {state.get('StartedAt')})"


def _postmaster(nem: Nemesis, target: str) -> int | None:
    """The postmaster's PID (the oldest postgres process), None when none runs."""
    rc, out = nem.stack.exec(target, ["pgrep", "-o", "-x", "postgres"], timeout=10)
    return int(out.split()[0]) if rc == 0 and out.split() and out.split()[0].isdigit() else None


def _before_postmaster(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"pid": _postmaster(nem, target)}


def _seen_postmaster_killed(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """pg-kill: the postmaster read before the kill is dead (gone or a zombie)."""
    old = ctx.get("pid")
    container, _ = _state(nem, target)
    if container.status != "running":
        return True, f"postmaster {old} gone with its container ({container.status})"
    if old is None:
        return False, "no postmaster was running before the kill"
    rc, out = nem.stack.exec(target, ["cat", f"/proc/{old}/stat"], timeout=10)
    if rc == 0 and ") Z " not in out:
        return False, f"postmaster pid {old} still alive"
    now = _postmaster(nem, target)
    return True, f"postmaster pid {old} gone; postmaster now {now or 'not running'}"


def _seen_partitioned(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    network, attached = nem.deployment.networks_of(target)
    if network in attached:
        return False, f"still attached to {network}"
    return True, f"not attached to {network} (networks: {', '.join(attached) or 'none'})"


def _seen_enospc(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """disk-full: writing one more byte to the data volume fails with ENOSPC."""
    mount = nem.stack.data_mount(target)
    probe = mount / ENOSPC_PROBE
    st = os.statvfs(mount)
    free = f"{st.f_bavail * st.f_frsize} bytes free"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return True, f"1-byte write to {mount}: ENOSPC ({free})"
    finally:
        probe.unlink(missing_ok=True)
    return False, f"a 1-byte write to {mount} succeeded ({free})"


def _patroni_members(nem: Nemesis, target: str | None = None) -> list[str]:
    """The Patroni members to ask: the target's group, else the coordinator group."""
    manifest = nem.stack.manifest
    group = (manifest.group_of(target) if target else None) or manifest.coordinator
    return list(group.members)


def _patroni(nem: Nemesis, member: str, path: str) -> dict[str, Any]:
    resp = requests.get(f"{nem.stack.patroni_url(member)}/{path}", timeout=3)
    return resp.json()


def _before_dcs(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    for member in _patroni_members(nem):
        with contextlib.suppress(Exception):
            return {"loop_wait": int(_patroni(nem, member, "config").get("loop_wait", 10))}
    return {"loop_wait": 10}


def _seen_dcs_unreachable(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    """etcd-outage: the DCS member is down and Patroni has not reached the DCS
    for more than two of its loops (its REST API's dcs_last_seen)."""
    container, _ = _state(nem, target)
    if container.status == "running":
        return False, f"{target} still running"
    stale_after = 2 * ctx.get("loop_wait", 10) + 1
    ages = []
    for member in _patroni_members(nem):
        try:
            last = _patroni(nem, member, "patroni").get("dcs_last_seen")
        except (requests.RequestException, ValueError, PgchaosError):
            continue
        if isinstance(last, (int, float)):
            age = time.time() - last
            ages.append(f"{member} {age:.0f} s")
            if age > stale_after:
                return True, (f"{target} {container.status}; Patroni on {member} last reached the DCS "
                              f"{age:.1f} s ago (loop_wait {ctx.get('loop_wait')} s)")
    return False, (f"{target} {container.status}; Patroni still reached the DCS within {stale_after} s "
                   f"({', '.join(ages) or 'no dcs_last_seen answered'})")


def _toxic_names(fault: str, params: dict[str, Any]) -> list[str]:
    streams = ["downstream", "upstream"] if params.get("stream", "both") == "both" \
        else [str(params["stream"])]
    return [f"pgchaos-{fault}-{s}" for s in streams]


def _seen_toxic(fault: str) -> Callable[[Nemesis, str, dict[str, Any]], Seen]:
    def check(nem: Nemesis, link: str, ctx: dict[str, Any]) -> Seen:
        """The link's toxics, read back from Toxiproxy, include this fault's."""
        toxics = nem.links._proxy(link).toxics()
        wanted = _toxic_names(fault, ctx.get("params") or {})
        missing = [n for n in wanted if n not in toxics]
        if missing:
            return False, f"{link}: toxic(s) {', '.join(missing)} absent (has: {', '.join(toxics) or 'none'})"
        return True, f"{link}: " + "; ".join(
            f"{toxics[n].type} {toxics[n].stream} {toxics[n].attributes}" for n in wanted)

    return check


def _seen_link_down(nem: Nemesis, link: str, ctx: dict[str, Any]) -> Seen:
    enabled = nem.links._proxy(link).enabled
    return not enabled, f"{link}: Toxiproxy reports enabled={str(enabled).lower()}"


def _leader(nem: Nemesis, target: str) -> str | None:
    """The leader of the target's Patroni group (the coordinator group's for `primary`)."""
    for member in _patroni_members(nem, target):
        with contextlib.suppress(Exception):
            doc = _patroni(nem, member, "cluster")
            leaders = [m["name"] for m in doc.get("members", []) if m.get("role") in ("leader", "master")]
            return leaders[0] if len(leaders) == 1 else None
    return None


def _before_leader(nem: Nemesis, target: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"leader": _leader(nem, target)}


def _seen_leader_changed(nem: Nemesis, target: str, ctx: dict[str, Any]) -> Seen:
    old, new = ctx.get("leader"), _leader(nem, target)
    if new is not None and new != old:
        return True, f"leader {old} -> {new}"
    return False, f"leader {new or 'none'} (was {old})"


DOWN = Effect(_seen_down, _before_state)


CATALOGUE: dict[str, Fault] = {f.name: f for f in [
    Fault("kill", "node", "SIGKILL the container (hard loss)", _kill, _start_again, DOWN, ("signal",)),
    Fault("stop", "node", "docker stop: graceful shutdown", _stop, _start_again, DOWN, ("timeout",)),
    Fault("pause", "node", "freeze every process of the container", _pause, _start_again,
          Effect(_seen_paused)),
    Fault("restart", "node", "docker restart", _restart, _start_again,
          Effect(_seen_restarted, _before_state, 30.0), ("timeout",)),
    Fault("pg-kill", "node", "SIGKILL PostgreSQL's postmaster, Patroni stays alive", _pg_kill, _start_again,
          Effect(_seen_postmaster_killed, _before_postmaster, 15.0)),
    Fault("partition", "node", "disconnect the node from the stack network", _partition, _reconnect,
          Effect(_seen_partitioned)),
    Fault("disk-full", "node", "fill the node's loop-mounted data volume to ENOSPC", _disk_full, _free_space,
          Effect(_seen_enospc)),
    Fault("etcd-outage", "node", "stop the DCS (etcd; members=N: N members of it)", _etcd_outage,
          _start_dcs_members, Effect(_seen_dcs_unreachable, _before_dcs, 30.0), ("members",)),
    Fault("latency", "link", "Toxiproxy latency (latency, jitter ms) on a link", _toxic("latency"),
          _remove_toxics("latency"), Effect(_seen_toxic("latency")), ("latency", "jitter", "stream")),
    Fault("bandwidth", "link", "Toxiproxy bandwidth limit (rate KB/s) on a link", _toxic("bandwidth"),
          _remove_toxics("bandwidth"), Effect(_seen_toxic("bandwidth")), ("rate", "stream")),
    Fault("timeout", "link", "Toxiproxy blackhole: data stops, connections hang", _toxic("timeout"),
          _remove_toxics("timeout"), Effect(_seen_toxic("timeout")), ("timeout", "stream")),
    Fault("reset-peer", "link", "Toxiproxy TCP RST on the link's connections", _toxic("reset-peer"),
          _remove_toxics("reset-peer"), Effect(_seen_toxic("reset-peer")), ("timeout", "stream")),
    Fault("link-down", "link", "disable the link: connections refused", _link_down, _enable_link,
          Effect(_seen_link_down)),
    Fault("switchover", "action", "patronictl switchover to a candidate (planned)", _patronictl("switchover"),
          _nothing, Effect(_seen_leader_changed, _before_leader, 30.0)),
    Fault("failover", "action", "patronictl failover --force (emergency)", _patronictl("failover"),
          _nothing, Effect(_seen_leader_changed, _before_leader, 30.0)),
]}


def repair(nem: Nemesis, fault: str, target: str, params: dict[str, Any] | None = None) -> None:
    """Undo a fault from its description (name, target, params): its catalogue entry's repair,
    the one every heal runs."""
    if fault not in CATALOGUE:
        raise PgchaosError(f"no repair for {fault!r}: not a catalogue fault; valid: {', '.join(CATALOGUE)}")
    CATALOGUE[fault].repair(nem, target, params or {})
