"""Where ``http_request`` may connect: the worker operator's egress policy.

Definitions come from API users; the operator runs the workers, and what a worker can
reach on its network (the loopback interface, the cloud's metadata service at
169.254.169.254, databases and admin interfaces on private addresses) is the operator's to
open, not a definition's. So by default ``http_request`` refuses to connect to:

* loopback (127.0.0.0/8, ::1) and unspecified (0.0.0.0/8, ::) addresses;
* link-local addresses (169.254.0.0/16, the metadata services included; fe80::/10);
* private ranges: RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 6598 shared address space
  (100.64/10), unique local (fc00::/7) and site-local (fec0::/10) IPv6;
* multicast (224.0.0.0/4, ff00::/8), reserved (240.0.0.0/4, broadcast included) and any
  other address IANA lists as not globally reachable (documentation, benchmarking, ...);
* the same addresses written into IPv6: IPv4-mapped (``::ffff:127.0.0.1``), IPv4-translated,
  IPv4-compatible, NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32).

``ORCHESTRATOR_HTTP_ALLOW`` (read by the worker, comma- or space-separated) opens some of
them: addresses or CIDR ranges (``127.0.0.1``, ``10.20.0.0/16``, ``::1``) and host names
(``billing.internal``; ``*.svc.cluster.local`` for every name under that domain). A host
name on the list may be reached at whatever its name resolves to; an address or range
whatever the URL's host. ``0.0.0.0/0,::/0`` turns the policy off.

The check is made where the connection is made (:class:`GuardedBackend`): the host name is
resolved once, every address it resolves to is checked (one refused address refuses the
host), and the connection goes to an address that was checked, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot slip through. TLS still
verifies the certificate against, and sends SNI for, the URL's host name. Every connection
is checked, so every redirect hop is too.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

ALLOW_VARIABLE = "ORCHESTRATOR_HTTP_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
#: Refused by default, first match names the rule.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified (0.0.0.0/8, 'this network')"),
    (_V4("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (_V4("169.254.0.0/16"), "link-local (169.254.0.0/16, where cloud metadata services live)"),
    (_V4("10.0.0.0/8"), "private (RFC 1918, 10.0.0.0/8)"),
    (_V4("172.16.0.0/12"), "private (RFC 1918, 172.16.0.0/12)"),
    (_V4("192.168.0.0/16"), "private (RFC 1918, 192.168.0.0/16)"),
    (_V4("100.64.0.0/10"), "in the shared address space (RFC 6598, 100.64.0.0/10)"),
    (_V4("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (_V4("240.0.0.0/4"), "reserved (240.0.0.0/4, broadcast included)"),
    (_V6("::/128"), "unspecified (::)"),
    (_V6("::1/128"), "loopback (::1)"),
    (_V6("::/96"), "reserved (IPv4-compatible IPv6, ::/96, deprecated)"),
    (_V6("fe80::/10"), "link-local (fe80::/10)"),
    (_V6("fc00::/7"), "private (unique local, fc00::/7)"),
    (_V6("fec0::/10"), "private (site-local, fec0::/10, deprecated)"),
    (_V6("ff00::/8"), "multicast (ff00::/8)"),
)
_NOT_GLOBAL = "not globally reachable (an IANA special-purpose range)"
# IPv6 prefixes whose last 32 bits are an IPv4 address the traffic goes to.
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_NAT64 = _V6("64:ff9b::/96")  # RFC 6052 well-known prefix
_HOST_NAME = re.compile(
    r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$"
)


class EgressRefused(Exception):
    """A connection the egress policy does not allow (raised before connecting)."""

    def __init__(self, host: str, address: IPAddress, rule: str) -> None:
        super().__init__(f"{host} -> {address}: {rule}")
        self.host = host
        self.address = address
        self.rule = rule

    def explain(self) -> str:
        """A sentence naming the host, the address and the rule, and how to allow it."""
        by_name = self.host != str(self.address)
        resolved = f" ({self.host} resolves to it)" if by_name else ""
        example = f"{self.address} or {self.host}" if by_name else str(self.address)
        return (
            f"refused to connect to {self.address}{resolved}: the address is {self.rule}, "
            "and the worker's egress policy refuses such addresses by default. The worker's "
            f"operator can allow it in {ALLOW_VARIABLE} (comma-separated addresses, CIDR "
            f"ranges or host names, e.g. {example})"
        )


class PolicyError(ValueError):
    """``ORCHESTRATOR_HTTP_ALLOW`` holds an entry that is neither an address, a CIDR range
    nor a host name."""


@dataclass(frozen=True)
class EgressPolicy:
    """What the worker's operator allows beyond the public internet (module docstring)."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # from "*.example.internal": ".example.internal"

    @classmethod
    def from_environment(cls) -> EgressPolicy:
        """The policy ``ORCHESTRATOR_HTTP_ALLOW`` sets (read on every call: cheap, cached).

        Raises:
            PolicyError: An entry that is not an address, a range or a host name.
        """
        return _parse(os.environ.get(ALLOW_VARIABLE, ""))

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """The rule that refuses connecting to ``address`` (which ``host`` resolved to), or
        None when it may be reached."""
        rule = default_rule(address)
        if rule is None or self._allows(host, address):
            return None
        return rule

    def _allows(self, host: str, address: IPAddress) -> bool:
        name = host.lower().rstrip(".")
        if name in self.names or any(name.endswith(suffix) for suffix in self.suffixes):
            return True
        candidates = [address, *_embedded_ipv4(address)]
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )


def default_rule(address: IPAddress) -> str | None:
    """The rule refusing ``address`` by default (module docstring), or None if it is a
    globally reachable address."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.packed)  # without a scope id
        if address not in _V6("::/127"):  # "::" and "::1" are themselves, not IPv4
            for embedded in _embedded_ipv4(address):
                rule = default_rule(embedded)
                if rule is not None:
                    return f"{rule}, as {embedded} inside an IPv6 address"
            if _embedded_ipv4(address):
                return None  # reaches the public IPv4 address it holds
    for network, rule in _REFUSED:
        if address.version == network.version and address in network:
            return rule
    return None if address.is_global else _NOT_GLOBAL


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, translated, NAT64, 6to4,
    Teredo server and client); none for an IPv4 address or a plain IPv6 one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    low32 = ipaddress.IPv4Address(address.packed[-4:])
    if address in _IPV4_TRANSLATED or address in _NAT64:
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


@functools.lru_cache(maxsize=8)
def _parse(value: str) -> EgressPolicy:
    networks: list[IPNetwork] = []
    names: set[str] = set()
    suffixes: list[str] = []
    for entry in (part for part in re.split(r"[\s,]+", value) if part):
        network = _network(entry)
        if network is not None:
            networks.append(network)
            continue
        name = entry.lower().rstrip(".")
        if not _HOST_NAME.match(name):
            raise PolicyError(
                f"{ALLOW_VARIABLE} has the entry {entry!r}, which is neither an address, a "
                "CIDR range (10.0.0.0/8) nor a host name (billing.internal, *.internal)"
            )
        if name.startswith("*."):
            suffixes.append(name[1:])
        else:
            names.add(name)
    return EgressPolicy(tuple(networks), frozenset(names), tuple(suffixes))


def _network(entry: str) -> IPNetwork | None:
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        if "/" in text or ":" in text:
            raise PolicyError(
                f"{ALLOW_VARIABLE} has the entry {entry!r}, which is not a valid address or "
                "CIDR range"
            ) from None
        return None


# --- where it is enforced: the connection ----------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking before it connects (module
    docstring). TLS is started by httpcore on the returned stream with the URL's host."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        for address in addresses:
            rule = self._policy.refusal(host, address)
            if rule is not None:
                raise EgressRefused(host, address, rule)
        failure: Exception | None = None
        for address in addresses:  # in the resolver's order, as a plain connect would
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("http_request does not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, without repeats."""
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}: no IPv4 or IPv6 address")
    return addresses


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a :class:`GuardedBackend`: no proxy (a proxy would connect
    for us, to addresses we never saw); certificates verified as httpx does by default
    (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are honoured)."""

    def __init__(self, policy: EgressPolicy) -> None:
        # Not super().__init__(): that builds a pool (and an SSL context) only to be
        # replaced. httpx has no public way to give its transport a network backend; the pool
        # is the transport's one collaborator (the egress tests fail if this stops working).
        context: ssl.SSLContext = httpx.create_ssl_context(trust_env=True)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, network_backend=GuardedBackend(policy)
        )
