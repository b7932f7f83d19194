"""The nemesis: injects and heals faults on one stack and records both in the
run's history (process "nemesis", type "info"). Its final heal-all always
runs, even after an exception, and leaves every container running,
unpaused and connected, every link clean and every disk freed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker.errors

from harness.errors import PgchaosError
from harness.history import HistoryWriter
from harness.nemesis.faults import CATALOGUE, FILL_FILE, Fault, Heal, ensure_running
from harness.nemesis.targets import resolve_link, resolve_node
from harness.nemesis.toxiproxy import ToxiproxyLinks
from harness.stack.spec import DATA_NODES
from harness.stack.stack import OWNER_LABEL, PROJECT_LABEL

if TYPE_CHECKING:
    from harness.stack.stack import Stack

NEMESIS = "nemesis"


@dataclass
class ActiveFault:
    """A fault in force: the history index of its injection names it."""

    id: int
    fault: str
    target: str
    time: float
    params: dict[str, Any] = field(default_factory=dict)
    heal: Heal | None = None


class Nemesis:
    """Faults on one stack, recorded in one history."""

    def __init__(self, stack: Stack, history: HistoryWriter | None = None) -> None:
        self.stack = stack
        self.history = history
        self.links = ToxiproxyLinks("127.0.0.1", stack.spec.ports.toxiproxy)
        self.active: dict[int, ActiveFault] = {}
        self.listeners: list[Callable[[str, ActiveFault], None]] = []  # (verb, fault) on inject/heal
        self._lock = threading.Lock()
        self._next_id = 0

    # -- helpers used by faults ------------------------------------------------
    def owned(self, service: str) -> Any:
        """The service's container, refusing anything without our labels."""
        container = self.stack.container(service)
        labels = container.labels
        if labels.get(OWNER_LABEL) != "pgchaos" or labels.get(PROJECT_LABEL) != self.stack.project:
            raise PgchaosError(f"refusing to touch {container.name}: not owned by {self.stack.project}")
        return container

    def stack_network(self) -> Any:
        nets = self.stack.docker.networks.list(
            filters={"label": [f"{PROJECT_LABEL}={self.stack.project}", f"{OWNER_LABEL}=pgchaos"]})
        if not nets:
            raise PgchaosError(f"no network of {self.stack.project} found")
        return nets[0]

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
        return resolve_node(self.stack, role)

    def inject(self, name: str, role: str, **params: Any) -> ActiveFault:
        """Resolve the target now, record the fault, inject it."""
        fault = self.fault(name)
        target = self.resolve(fault, role)
        value = {"target": target, "role": role, **params}
        if self.history is not None:
            op = self.history.append(NEMESIS, "info", name, value)
            fid, t = op.index, op.time
        else:
            with self._lock:
                fid, t = self._next_id, 0.0
                self._next_id += 1
        active = ActiveFault(fid, name, target, t, params)
        try:
            active.heal = fault.inject(self, target, params)
        except (docker.errors.APIError, PgchaosError) as exc:
            self._record_heal(active, error=str(exc))
            if isinstance(exc, PgchaosError):
                raise
            raise PgchaosError(f"{name} on {target} failed: {exc.explanation or exc}") from None
        self.active[fid] = active
        self._tell("inject", active)
        return active

    def _tell(self, verb: str, active: ActiveFault) -> None:
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(verb, active)

    def heal(self, active: ActiveFault) -> None:
        """Undo one fault and record the heal."""
        self.active.pop(active.id, None)
        error = None
        try:
            if active.heal is not None:
                active.heal()
        except Exception as exc:  # heal-all will retry the generic repairs
            error = f"{type(exc).__name__}: {exc}"
        self._record_heal(active, error=error)
        self._tell("heal", active)

    def _record_heal(self, active: ActiveFault, error: str | None = None) -> None:
        if self.history is not None:
            self.history.append(NEMESIS, "info", "heal",
                                {"target": active.target, "fault": active.id},
                                error=error)

    def heal_all(self) -> None:
        """Jepsen's final generator: heal what is active, then repair everything."""
        for active in sorted(self.active.values(), key=lambda a: -a.id):
            self.heal(active)
        with contextlib.suppress(Exception):
            self.links.reset()
        for node in DATA_NODES:
            (self.stack.data_mount(node) / FILL_FILE).unlink(missing_ok=True)
        network = None
        with contextlib.suppress(PgchaosError):
            network = self.stack_network()
        for service, container in self.stack.containers().items():
            ensure_running(container)
            if network is not None:
                network.reload()
                if container.id not in {c.id for c in network.containers}:
                    with contextlib.suppress(docker.errors.APIError):
                        network.connect(container, aliases=[service])

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal_all()
