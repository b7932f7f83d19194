"""Toxiproxy links of the stack, over toxiproxy-python.

toxiproxy-python 0.1.1 works against Toxiproxy 2.12 for what we use
(list proxies, add/remove toxics, enable/disable a proxy), with two quirks
this wrapper absorbs: the server address is a class attribute shared by the
whole process (set before every call here), and `add_toxic` drops the
server's answer (we read the toxic back to confirm it exists).
"""

from __future__ import annotations

from collections.abc import Callable

from toxiproxy.api import APIConsumer
from toxiproxy.server import Toxiproxy

from harness.errors import PgchaosError

TOXIC_TYPES = {
    "latency": ("latency", {"latency": 200, "jitter": 50}),
    "bandwidth": ("bandwidth", {"rate": 64}),
    "timeout": ("timeout", {"timeout": 0}),
    "reset-peer": ("reset_peer", {"timeout": 0}),
}


class ToxiproxyLinks:
    """Named links (Toxiproxy proxies) of one stack."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server = Toxiproxy()
        self._resolve: Callable[[], tuple[str, int]] | None = None
        self._absent: str | None = None

    @classmethod
    def resolving(cls, address: Callable[[], tuple[str, int]]) -> ToxiproxyLinks:
        """Links whose API address is looked up on first use (a published port)."""
        links = cls("127.0.0.1", 0)
        links._resolve = address
        return links

    @classmethod
    def absent(cls, reason: str) -> ToxiproxyLinks:
        """A stack without Toxiproxy: every use fails with `reason`; reset does nothing."""
        links = cls("127.0.0.1", 0)
        links._absent = reason
        return links

    def _bind(self) -> Toxiproxy:
        if self._absent is not None:
            raise PgchaosError(self._absent)
        if self._resolve is not None:
            self.host, self.port = self._resolve()
            self._resolve = None
        APIConsumer.host, APIConsumer.port = self.host, self.port
        return self._server

    def names(self) -> list[str]:
        return sorted(self._bind().proxies())

    def _proxy(self, link: str):
        proxy = self._bind().get_proxy(link)
        if proxy is None:
            raise PgchaosError(f"unknown link {link!r}; links: {', '.join(self.names())}")
        return proxy

    def add_toxic(self, link: str, fault: str, stream: str = "downstream",
                  **attributes: float) -> str:
        """Add the toxic for `fault` on `link`; returns the toxic's name."""
        if fault not in TOXIC_TYPES:
            raise PgchaosError(f"unknown toxic {fault!r}; valid: {', '.join(TOXIC_TYPES)}")
        toxic_type, defaults = TOXIC_TYPES[fault]
        name = f"pgchaos-{fault}-{stream}"
        proxy = self._proxy(link)
        proxy.add_toxic(name=name, type=toxic_type, stream=stream,
                        attributes={**defaults, **attributes})
        if proxy.get_toxic(name) is None:
            raise PgchaosError(f"Toxiproxy did not keep toxic {name} on {link}")
        return name

    def remove_toxic(self, link: str, name: str) -> None:
        proxy = self._proxy(link)
        if proxy.get_toxic(name) is not None:
            proxy.destroy_toxic(name)

    def set_enabled(self, link: str, enabled: bool) -> None:
        proxy = self._proxy(link)
        proxy.enable() if enabled else proxy.disable()

    def reset(self) -> None:
        """Re-enable every link and remove every toxic."""
        if self._absent is None:
            self._bind().reset()
