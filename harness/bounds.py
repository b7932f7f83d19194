"""Waiver bounds derived from the stack's own timings, not typed in.

A hard loss of the leader (``docker kill``, a killed Swarm task) cannot
recover before Patroni's leader key expires: the bound is Patroni's ``ttl``
+ ``loop_wait`` (the key was last refreshed up to one loop before the kill)
+ the router's detection time, HAProxy ``inter × (fall + rise)`` (the old
member marked down, the new one up). Patroni's timings come from its REST
API (``/config``, the DCS's live copy); HAProxy's from the run's
``haproxy.cfg`` (the primary backend's ``default-server``/``server`` lines,
HAProxy's defaults ``inter 2s fall 3 rise 2`` where a setting is absent). A
manifest can set the bound by hand, with a reason (``[bounds] hard_kill_s``).
A waiver in the targets table opts in with ``derive = "hard-kill"``; its
literal ``bound`` stays the fallback where the timings cannot be read (a
history checked without its stack).
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from harness.targets import Waiver

if TYPE_CHECKING:
    from harness.stack.stack import Stack

DERIVATIONS: Final = ("hard-kill",)
HAPROXY_DEFAULTS: Final = {"inter": 2.0, "fall": 3, "rise": 2}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s|m|h)?$")
_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1e-3}  # HAProxy: ms by default


@dataclass(frozen=True)
class Timings:
    """What governs a hard-loss recovery; None where it could not be read."""

    ttl: float | None = None
    loop_wait: float | None = None
    retry_timeout: float | None = None
    inter_s: float | None = None
    fall: int | None = None
    rise: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def haproxy_checks(text: str) -> tuple[float, int, int] | None:
    """(inter seconds, fall, rise) of the backend that checks ``/primary`` (None: no such backend)."""
    blocks = re.split(r"^(?=(?:backend|listen|frontend|defaults)\b)", text, flags=re.M)
    for block in blocks:
        if "/primary" not in block or not block.startswith(("backend", "listen")):
            continue
        found: dict[str, Any] = dict(HAPROXY_DEFAULTS)
        for line in block.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] not in ("default-server", "server"):
                continue
            for key, value in zip(words, words[1:], strict=False):
                if key == "inter" and (m := _DURATION.match(value)):
                    found["inter"] = float(m.group(1)) * _UNITS[m.group(2)]
                elif key in ("fall", "rise") and value.isdigit():
                    found[key] = int(value)
        return float(found["inter"]), int(found["fall"]), int(found["rise"])
    return None


def patroni_config(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/config", timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
        doc = json.loads(resp.read())
    return doc if isinstance(doc, dict) else {}


def read_timings(stack: Stack) -> Timings:
    """The stack's Patroni and HAProxy timings (fields None where unreadable)."""
    patroni: dict[str, Any] = {}
    for group in stack.manifest.groups:
        if not getattr(group, "patroni", True):
            continue
        for member in group.members:
            with contextlib.suppress(Exception):
                patroni = patroni_config(stack.patroni_url(member))
                break
        if patroni:
            break
    checks = None
    # the run's copy of the config folder, else the stack's own file beside its manifest
    for cfg in (Path(stack.config_dir) / "haproxy.cfg", stack.manifest.dir / "haproxy.cfg"):
        with contextlib.suppress(OSError):
            checks = haproxy_checks(cfg.read_text())
        if checks:
            break
    inter, fall, rise = checks if checks else (None, None, None)
    num = lambda k: float(patroni[k]) if isinstance(patroni.get(k), int | float) else None  # noqa: E731
    return Timings(num("ttl"), num("loop_wait"), num("retry_timeout"), inter, fall, rise)


def derive(kind: str, t: Timings) -> tuple[float, str] | None:
    """(bound, how it was derived), or None when a timing it needs is unknown."""
    if kind != "hard-kill":
        raise ValueError(f"unknown derivation {kind!r}; known: {', '.join(DERIVATIONS)}")
    if None in (t.ttl, t.loop_wait, t.inter_s, t.fall, t.rise):
        return None
    assert t.ttl is not None and t.loop_wait is not None and t.inter_s is not None
    assert t.fall is not None and t.rise is not None
    router = t.inter_s * (t.fall + t.rise)
    bound = round(t.ttl + t.loop_wait + router, 3)
    return bound, (f"Patroni ttl {t.ttl:g} s + loop_wait {t.loop_wait:g} s + HAProxy inter {t.inter_s:g} s "
                   f"x (fall {t.fall} + rise {t.rise}) = {bound:g} s")


PATRONI_LOOP_WAIT_DEFAULT: Final = 10.0  # Patroni's default loop_wait


def router_follow_s(t: Timings) -> tuple[float, str]:
    """How long the router may take to follow a leader that Patroni has settled on: the
    old and new members' REST checks change within one Patroni ``loop_wait``, and HAProxy
    marks them down and up within ``inter × (fall + rise)``. HAProxy's and Patroni's
    defaults stand in for a timing that cannot be read, so the answer is never shorter
    than the stack's own."""
    inter = t.inter_s if t.inter_s is not None else HAPROXY_DEFAULTS["inter"]
    fall = t.fall if t.fall is not None else int(HAPROXY_DEFAULTS["fall"])
    rise = t.rise if t.rise is not None else int(HAPROXY_DEFAULTS["rise"])
    loop_wait = t.loop_wait if t.loop_wait is not None else PATRONI_LOOP_WAIT_DEFAULT
    follow = round(loop_wait + inter * (fall + rise), 3)
    return follow, (f"Patroni loop_wait {loop_wait:g} s + HAProxy inter {inter:g} s x (fall {fall} + "
                    f"rise {rise}) = {follow:g} s")


def resolve(waivers: list[Waiver], timings: Timings | None,
            overrides: dict[str, tuple[float, str]] | None = None) -> list[Waiver]:
    """Waivers with their bound derived (or set by the manifest), each saying how.

    A derived bound replaces the table's only when it is tighter: the table's
    ``bound`` is the cap, so a configuration that slows failover cannot widen the
    waiver that excuses it. A manifest override (with its reason) is taken as is."""
    out = []
    for w in waivers:
        if w.derive is None:
            out.append(w)
        elif overrides and w.derive in overrides:
            bound, reason = overrides[w.derive]
            out.append(replace(w, bound=bound, derivation=f"set by the manifest: {bound:g} s ({reason})"))
        else:
            got = derive(w.derive, timings) if timings is not None else None
            if got is None:
                out.append(replace(w, derivation=f"the stack's timings could not be read: the table's "
                                                 f"bound {w.bound:g} s"))
            elif got[0] > w.bound:  # derived bounds tighten a waiver, never loosen it
                out.append(replace(w, derivation=f"{got[1]}, over the table's {w.bound:g} s: capped at "
                                                 f"{w.bound:g} s (a slower configuration does not loosen "
                                                 f"its own waiver; a manifest [bounds] entry with a "
                                                 f"reason can)"))
            else:
                out.append(replace(w, bound=got[0], derivation=got[1]))
    return out


def derived_bounds(waivers: list[Waiver]) -> list[dict[str, Any]]:
    """What the verdict records, so that ``pgchaos report`` re-judges with the same bounds."""
    return [{"row": w.row, "faults": list(w.faults), "derive": w.derive, "bound": w.bound,
             "derivation": w.derivation} for w in waivers if w.derive is not None]


def apply_recorded(waivers: list[Waiver], recorded: list[dict[str, Any]] | None) -> list[Waiver]:
    """Waivers with the bounds a run recorded (its verdict's ``derived_bounds``)."""
    by_key = {(r.get("row"), tuple(r.get("faults") or ()), r.get("derive")): r for r in recorded or []
              if isinstance(r, dict) and isinstance(r.get("bound"), int | float)}
    out = []
    for w in waivers:
        r = by_key.get((w.row, w.faults, w.derive))
        out.append(w if r is None else replace(w, bound=float(r["bound"]), derivation=r.get("derivation")))
    return out
