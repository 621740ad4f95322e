"""Which network addresses web_fetch may connect to: the guard against server-side request forgery."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from mofaclaw.errors import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance-metadata endpoints hand out credentials: refused even when private addresses are
# allowed, unless a network listed in allowed_networks names them explicitly.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; not "private" to ipaddress
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_private: bool, allowed_networks: tuple[str, ...]) -> AddressPolicy:
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        except ValueError as exc:
            raise ToolError(f"tools.web.allowed_networks has an invalid network: {exc}") from None
        return cls(allow_private, networks)

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        ip = _embedded_ipv4(address)
        if any(ip in net or address in net for net in self.allowed_networks):
            return None
        if ip in _METADATA or address in _METADATA:
            return "a cloud metadata address"
        if self.allow_private:
            return None
        for kind, test in (
            ("a loopback address", ip.is_loopback),
            ("a link-local address", ip.is_link_local),
            ("a multicast address", ip.is_multicast),
            ("an unspecified address", ip.is_unspecified),
            ("a reserved address", ip.is_reserved),
            ("a private address", ip.is_private or ip in _SHARED),
        ):
            if test:
                return kind
        return None if ip.is_global else "not a public address"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    # ::ffff:10.0.0.1 and 64:ff9b::a00:1 reach 10.0.0.1: judge the IPv4 address they carry.
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


async def resolve_allowed(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """The addresses to connect to for `host`, in the resolver's order of preference, each checked.

    Every address must pass, not just the one used: a name that resolves to one public and one
    private address is treated as an attack, because which one a client picks is not ours to decide.
    """
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _lookup(host, port)
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise ToolError(
                f"refusing to fetch from {host}: it resolves to {address}, {reason}. Only public "
                "internet addresses are allowed (tools.web.allow_private_addresses / allowed_networks)"
            )
    return addresses


async def _lookup(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve host {host}: {exc.strerror}") from None
    # Scope ids ("fe80::1%eth0") are cut off: the address itself is what the policy judges.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise ToolError(f"cannot resolve host {host}: no addresses")
    return list(dict.fromkeys(addresses))
