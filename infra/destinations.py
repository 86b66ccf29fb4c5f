"""Vetting customer webhook URLs before genq calls them, so a tenant cannot point genq at its
own network (SSRF): only http(s), no credentials in the URL, and every address the host
resolves to must be a public one, unless an allowed network opens it for local development.

A host may resolve differently when the request is sent (DNS rebinding), so the caller must
connect to one of ``Destination.addresses`` rather than resolve the name again, and must not
follow redirects, which would lead to a URL nobody checked.
"""

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from schema.errors import RequestError

__all__ = [
    "Destination",
    "Resolver",
    "UnsafeDestinationError",
    "check_address",
    "check_url",
    "resolve_host",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> IP address strings; raises UnsafeDestinationError("unresolvable", ...).
Resolver = Callable[[str, int], list[str]]

DEFAULT_PORTS = {"http": 80, "https": 443}

# A resolvable name: ASCII labels only, so what we resolve is exactly what the URL says.
# Labels of at most 63 characters, as DNS allows (the resolver raises on longer ones).
HOSTNAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")
HOSTNAME_MAX = 253
# Space and control characters, which URL parsers drop or keep differently.
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, ...
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# (reason, description, networks), checked in order after the metadata addresses.
RULES: tuple[tuple[str, str, tuple[Network, ...]], ...] = (
    ("loopback", "a loopback address", _networks("127.0.0.0/8", "::1/128")),
    ("unspecified", "an unspecified address", _networks("0.0.0.0/8", "::/128")),
    (
        "private",
        "a private address",
        _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
    ),
    ("link_local", "a link-local address", _networks("169.254.0.0/16", "fe80::/10")),
    ("cgnat", "a carrier-grade NAT address", _networks("100.64.0.0/10")),
    ("multicast", "a multicast address", _networks("224.0.0.0/4", "ff00::/8")),
    (
        "reserved",
        "a reserved, non-public address",
        # Listed because `is_global` misses some of them on older Pythons.
        _networks(
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "::/96",  # IPv4-compatible, which some kernels still tunnel
            "::ffff:0:0:0/96",  # IPv4-translated
            "64:ff9b:1::/48",  # local-use NAT64
            "100::/64",
            "2001:db8::/32",
        ),
    ),
)

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeDestinationError(RequestError, ValueError):
    """A URL genq refuses to call.

    ``str(exc)`` says why in one sentence a customer understands, e.g. "webhook URL host
    10.0.0.5 is a private address"; ``reason`` is a short code for programs, e.g. "private".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve_host(host: str, port: int) -> list[str]:
    """The IP addresses ``host`` resolves to, each once, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestinationError(
            "unresolvable", f"webhook URL host {host} could not be resolved"
        ) from exc
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


@dataclass(frozen=True)
class Destination:
    """A URL that passed `check_url`, with the addresses it is safe to connect to."""

    url: str  # as given
    scheme: str  # "http" or "https"
    host: str  # as in the URL, lowercased, without IPv6 brackets
    port: int  # explicit, or 80/443 by scheme
    addresses: tuple[str, ...]  # every address the host resolved to, each one checked


def check_url(
    url: str,
    *,
    allow_networks: Sequence[str] = (),
    https_only: bool = False,
    resolve: Resolver = resolve_host,
) -> Destination:
    """Parse, resolve and vet a URL; raise `UnsafeDestinationError` if genq must not call it.

    Messages never repeat the URL itself, which may carry secrets in its userinfo or query.
    """
    allowed = _parse_networks(allow_networks)
    if CONTROL_OR_SPACE.search(url):
        raise UnsafeDestinationError(
            "malformed", "webhook URL must not contain spaces or control characters"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeDestinationError("malformed", "webhook URL could not be parsed") from None

    scheme = parts.scheme
    if scheme not in DEFAULT_PORTS:
        not_scheme = f", not {scheme}:" if scheme else ""
        raise UnsafeDestinationError(
            "scheme", f"webhook URL must start with http:// or https://{not_scheme}"
        )
    host = parts.hostname
    if not host:
        raise UnsafeDestinationError("no_host", "webhook URL has no host")
    if parts.username is not None:
        raise UnsafeDestinationError(
            "credentials", f"webhook URL for {host} must not contain a username or password"
        )
    if https_only and scheme != "https":
        raise UnsafeDestinationError("https_required", f"webhook URL for {host} must use https")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeDestinationError(
            "malformed", f"webhook URL for {host} has an invalid port"
        ) from None
    if port is None:
        port = DEFAULT_PORTS[scheme]

    literal = _literal(host, bracketed=parts.netloc.startswith("["))
    if literal is not None:
        problem = _problem(literal, allowed)
        if problem is not None:
            reason, description = problem
            raise UnsafeDestinationError(reason, f"webhook URL host {host} is {description}")
        addresses = (str(literal),)
    else:
        resolved = resolve(host, port)
        if not resolved:
            raise UnsafeDestinationError(
                "unresolvable", f"webhook URL host {host} could not be resolved"
            )
        for address in resolved:
            problem = _problem(ipaddress.ip_address(address), allowed, named=False)
            if problem is not None:
                reason, description = problem
                # Never name the address: that would map internal DNS for the caller.
                raise UnsafeDestinationError(
                    reason, f"webhook URL host {host} resolves to {description}"
                )
        addresses = tuple(dict.fromkeys(resolved))

    return Destination(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def check_address(address: str, allow_networks: Sequence[str] = ()) -> None:
    """Raise `UnsafeDestinationError` if genq may not call this IP address.

    An address inside one of ``allow_networks`` is allowed whatever it is; that is how local
    development and tests reach 127.0.0.1.
    """
    problem = _problem(ipaddress.ip_address(address), _parse_networks(allow_networks))
    if problem is not None:
        reason, description = problem
        raise UnsafeDestinationError(reason, f"{address} is {description}")


def _parse_networks(cidrs: Sequence[str]) -> list[Network]:
    """The allowed networks; a bad CIDR raises ValueError, so settings can validate them."""
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


def _literal(host: str, *, bracketed: bool) -> Address | None:
    """The IP address ``host`` spells, or None for a name that must be resolved.

    Only dotted-quad IPv4 counts as literal: other spellings (``127.1``, ``0x7f.1``,
    ``2130706433``) are left to the resolver, which reads them the way a connection would.
    """
    if bracketed:
        if "%" not in host:  # a zone ID names a local interface
            with suppress(ValueError):
                return ipaddress.IPv6Address(host)
        raise UnsafeDestinationError(
            "malformed", f"webhook URL host {host} is not a valid IPv6 address"
        )
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    if len(host.rstrip(".")) > HOSTNAME_MAX or not HOSTNAME.fullmatch(host):
        raise UnsafeDestinationError(
            "malformed",
            f"webhook URL host {host} is not a valid hostname"
            " (write internationalized names in their xn-- form)",
        )
    return None


def _problem(
    address: Address, allowed: Sequence[Network], *, named: bool = True
) -> tuple[str, str] | None:
    """(reason, description) if genq must not call ``address``, else None; ``named=False``
    keeps any address out of the description."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the very same endpoint
    if any(address in network for network in allowed):
        return None
    return _classify(address, named)


def _classify(address: Address, named: bool = True) -> tuple[str, str] | None:
    """(reason, description) for an address that is not a public one, else None."""
    if address in METADATA_ADDRESSES:
        return "metadata", "a cloud metadata address"
    for reason, description, networks in RULES:
        if any(address in network for network in networks):
            return reason, description
    for kind, embedded in _embedded_ipv4(address):
        problem = _classify(embedded, named)
        if problem is not None:
            reason, description = problem
            if not named:
                return reason, f"a {kind} address embedding {description}"
            return reason, f"a {kind} address for {embedded}, {description}"
    if not address.is_global:
        return "reserved", "a reserved, non-public address"
    return None


def _embedded_ipv4(address: Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses that traffic to a 6to4, NAT64 or Teredo address ends up at."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address in NAT64:
        return [("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))]
    if address.teredo is not None:
        return [("Teredo", ipv4) for ipv4 in address.teredo]
    return []
