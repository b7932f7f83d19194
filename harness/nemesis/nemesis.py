"""The nemesis: injects and heals faults on one stack and records both in the
run's history (process "nemesis", type "info"). Right after each injection it
looks, in a background thread and for a bounded time, for the fault's effect
and records what it saw (process "observer", type "ok" when seen, "fail" when
not, f "fault-effect"); a heal waits for that look. Its final heal-all always
runs, even after an exception, and leaves every container running,
unpaused and connected, every link clean and every disk freed."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker.errors

from harness.errors import PgchaosError
from harness.history import HistoryWriter
from harness.nemesis.faults import (
    CATALOGUE,
    FILL_FILE,
    Fault,
    Heal,
    check_params,
    repair,
)
from harness.nemesis.targets import resolve_link, resolve_node
from harness.nemesis.toxiproxy import ToxiproxyLinks

if TYPE_CHECKING:
    from harness.engines.base import Deployment
    from harness.stack.stack import Stack

NEMESIS = "nemesis"
OBSERVER = "observer"
FAULT_EFFECT = "fault-effect"


@dataclass
class ActiveFault:
    """A fault in force: the history index of its injection names it."""

    id: int
    fault: str
    target: str
    time: float
    params: dict[str, Any] = field(default_factory=dict)
    heal: Heal | None = None  # a custom fault's own undo; catalogue faults use their repair
    effect: dict[str, Any] | None = None  # {"seen", "evidence", "after_s"} once looked at
    observer: threading.Thread | None = field(default=None, repr=False, compare=False)


def toxiproxy_links(stack: Stack) -> ToxiproxyLinks:
    """The stack's Toxiproxy API through its 127.0.0.1 port (lazily: a stack may have none)."""
    toxi = stack.manifest.toxiproxy
    if toxi is None:
        return ToxiproxyLinks.absent("this stack has no toxiproxy (manifest [toxiproxy])")
    return ToxiproxyLinks.resolving(lambda: stack.deployment.endpoint(toxi.service, toxi.api_port))


class Nemesis:
    """Faults on one stack, recorded in one history."""

    def __init__(self, stack: Stack, history: HistoryWriter | None = None,
                 timeout_multiplier: float | None = None) -> None:
        self.stack = stack
        self.history = history
        self.timeout_multiplier = _multiplier() if timeout_multiplier is None else timeout_multiplier
        self.links = toxiproxy_links(stack)
        self.active: dict[int, ActiveFault] = {}
        self.listeners: list[Callable[[str, ActiveFault], None]] = []  # (verb, fault) on inject/heal
        self._lock = threading.Lock()
        self._next_id = 0

    # -- helpers used by faults ------------------------------------------------
    @property
    def deployment(self) -> Deployment:
        """The engine's verbs on this stack (each refuses a container the stack does not own)."""
        return self.stack.deployment

    def owned(self, service: str) -> Any:
        """The service's container, refusing anything outside this stack (ours, or the attached project)."""
        return self.deployment.refuse_unless_owned(self.stack.container(service))

    def resolve_node(self, role: str) -> str:
        return resolve_node(self.stack, role)

    # -- verbs ----------------------------------------------------------------
    @staticmethod
    def fault(name: str) -> Fault:
        if name not in CATALOGUE:
            raise PgchaosError(f"unknown fault {name!r}; valid: {', '.join(CATALOGUE)}")
        return CATALOGUE[name]

    def resolve(self, fault: Fault, role: str) -> str:
        if fault.kind == "link":
            return resolve_link(self.stack, role, self.links.names())
        if fault.kind == "action":
            return role
        if fault.name == "etcd-outage":
            return self._dcs_member(role)
        return resolve_node(self.stack, role)

    def _dcs_member(self, role: str) -> str:
        """The DCS member an etcd-outage stops: the one the role names (`dcs`, `etcd`)."""
        dcs = getattr(self.stack.manifest, "dcs", None)
        members = list(getattr(dcs, "members", None) or ["etcd"])
        service = resolve_node(self.stack, role)
        if service not in members:
            raise PgchaosError(f"etcd-outage stops a DCS member, not {service!r}; valid: dcs, "
                               f"{', '.join(members)}")
        return service

    def inject(self, name: str, role: str, **params: Any) -> ActiveFault:
        """Resolve the target now, record the fault, inject it."""
        fault = self.fault(name)
        check_params(fault, params)
        target = self.resolve(fault, role)
        before = self._before(fault, target, params)
        fid, t = self._record_fault(name, {"target": target, "role": role, **params})
        active = ActiveFault(fid, name, target, t, params)
        try:
            fault.inject(self, target, params)
        except (docker.errors.APIError, PgchaosError) as exc:
            self._record_heal(active, error=str(exc))
            if isinstance(exc, PgchaosError):
                raise
            raise PgchaosError(f"{name} on {target} failed: {exc.explanation or exc}") from None
        self.active[fid] = active
        self._observe(fault, active, before)
        self._tell("inject", active)
        return active

    # -- did it bite? ------------------------------------------------------------
    def _before(self, fault: Fault, target: str, params: dict[str, Any]) -> dict[str, Any]:
        """What the effect's check compares against, read before the injection."""
        ctx: dict[str, Any] = {"params": params}
        if fault.effect is not None and fault.effect.before is not None:
            try:
                ctx.update(fault.effect.before(self, target, params))
            except Exception as exc:  # the check says what it could not compare
                ctx["before_error"] = f"{type(exc).__name__}: {exc}"
        return ctx

    def _observe(self, fault: Fault, active: ActiveFault, ctx: dict[str, Any]) -> None:
        if fault.effect is None:
            return
        active.observer = threading.Thread(target=self._watch, args=(fault, active, ctx), daemon=True,
                                           name=f"pgchaos-observe-{fault.name}-{active.id}")
        active.observer.start()

    def _watch(self, fault: Fault, active: ActiveFault, ctx: dict[str, Any]) -> None:
        """Poll the fault's check until the effect is seen or the (scaled) time is up; record it."""
        assert fault.effect is not None
        start = time.monotonic()
        deadline = start + fault.effect.timeout_s * self.timeout_multiplier
        seen, evidence = False, "not looked at"
        while True:
            try:
                seen, evidence = fault.effect.check(self, active.target, ctx)
            except Exception as exc:
                seen, evidence = False, f"could not look: {type(exc).__name__}: {exc}"
            if seen or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        if not seen:
            evidence += f" (looked for {time.monotonic() - start:.1f} s)"
            if "before_error" in ctx:
                evidence += f"; before the fault: {ctx['before_error']}"
        evidence = " ".join(evidence.split())[:300]
        active.effect = {"seen": seen, "evidence": evidence, "after_s": round(time.monotonic() - start, 3)}
        if self.history is not None:
            with contextlib.suppress(ValueError):  # a history closed under us (never before a join)
                self.history.append(OBSERVER, "ok" if seen else "fail", FAULT_EFFECT,
                                    {"fault": active.id, "target": active.target, "evidence": evidence},
                                    node=active.target)

    def observed(self, active: ActiveFault) -> dict[str, Any] | None:
        """Wait for the look at a fault's effect (bounded); its {"seen", "evidence", "after_s"}."""
        thread = active.observer
        if thread is not None and thread is not threading.current_thread():
            fault = CATALOGUE.get(active.fault)
            bound = (fault.effect.timeout_s if fault and fault.effect else 10.0) * self.timeout_multiplier
            thread.join(timeout=bound + 60.0)
        return active.effect

    def _tell(self, verb: str, active: ActiveFault) -> None:
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(verb, active)

    def heal(self, active: ActiveFault) -> None:
        """Undo one fault and record the heal (after the look at its effect)."""
        self.observed(active)
        self.active.pop(active.id, None)
        error = None
        began = self.history.now() if self.history is not None else None
        try:
            if active.heal is not None:  # a custom fault
                active.heal()
            else:  # the catalogue's repair: the same one `pgchaos heal` runs from the history
                repair(self, active.fault, active.target, active.params)
        except Exception as exc:  # heal-all will retry the generic repairs
            error = f"{type(exc).__name__}: {exc}"
        self._record_heal(active, error=error, began=began)
        self._tell("heal", active)

    def repair(self, fault: str, target: str, params: dict[str, Any] | None = None) -> None:
        """Heal a catalogue fault from its description alone (a fault injected by another process)."""
        self.fault(fault)
        repair(self, fault, target, params or {})

    def custom(self, name: str, target: str, inject: Callable[[], Heal],
               effect: Callable[[], tuple[bool, str]] | None = None, **params: Any) -> ActiveFault:
        """A fault outside the catalogue, recorded and healed like any other in one call.

        `inject()` does the damage and returns its heal; `effect()` says whether it took
        effect and what was seen (without it the fault is recorded as unconfirmed, so a
        verdict over it is "unknown", never "pass"). Heal it with `heal(fault)`; heal-all
        heals it too."""
        if name in CATALOGUE or name in ("heal", FAULT_EFFECT):
            raise PgchaosError(f"custom fault {name!r} clashes with a catalogue name; choose another")
        fid, t = self._record_fault(name, {"target": target, "role": target, "custom": True, **params})
        active = ActiveFault(fid, name, target, t, params)
        try:
            active.heal = inject()
        except Exception as exc:
            self._record_heal(active, error=f"{type(exc).__name__}: {exc}")
            raise PgchaosError(f"custom fault {name} on {target} failed: {exc}") from None
        self.active[fid] = active
        try:
            seen, evidence = effect() if effect is not None else (False, "no effect check was given")
        except Exception as exc:
            seen, evidence = False, f"could not look: {type(exc).__name__}: {exc}"
        active.effect = {"seen": seen, "evidence": evidence[:300], "after_s": 0.0}
        if self.history is not None:
            self.history.append(OBSERVER, "ok" if seen else "fail", FAULT_EFFECT,
                                {"fault": fid, "target": target, "evidence": evidence[:300]}, node=target)
        self._tell("inject", active)
        return active

    def _record_fault(self, name: str, value: dict[str, Any]) -> tuple[int, float]:
        """The fault op in the history: (its index, which names the fault; its time)."""
        if self.history is not None:
            op = self.history.append(NEMESIS, "info", name, value)
            return op.index, op.time
        with self._lock:
            self._next_id += 1
            return self._next_id - 1, 0.0

    def _record_heal(self, active: ActiveFault, error: str | None = None,
                     began: float | None = None) -> None:
        """The heal op, at the repair's end; ``began`` is when the repair started."""
        if self.history is not None:
            value: dict[str, Any] = {"target": active.target, "fault": active.id}
            if began is not None:
                value["began"] = round(began, 6)
            self.history.append(NEMESIS, "info", "heal", value, error=error)

    def heal_all(self) -> None:
        """Jepsen's final generator: heal what is active, then repair everything."""
        for active in sorted(self.active.values(), key=lambda a: -a.id):
            self.heal(active)
        with contextlib.suppress(Exception):
            self.links.reset()
        for node in self.stack.loop_members:
            (self.stack.data_mount(node) / FILL_FILE).unlink(missing_ok=True)
        # every container running and on its network (an attached project's other
        # containers are none of our business); the engine's own part (e.g. Swarm's edge
        # and scaled services)
        with contextlib.suppress(Exception):
            self.stack.deployment.heal_all(self.stack.manifest.services() if self.stack.attached else None)

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal_all()


def _multiplier() -> float:
    """PGCHAOS_TIMEOUT_MULTIPLIER (CI's), else 1."""
    try:
        value = float(os.environ.get("PGCHAOS_TIMEOUT_MULTIPLIER", "") or 1.0)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0
