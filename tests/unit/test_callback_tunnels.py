"""Finding 13: IPv6 addresses that carry an IPv4 address must not reach a private one.

Literal addresses only: getaddrinfo answers them without any look-up or traffic.
"""

from __future__ import annotations

import pytest

from process_api.api.callbacks import ForbiddenAddress, check_address


@pytest.mark.parametrize(
    "uri",
    [
        "http://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
        "http://[64:ff9b::10.0.0.8]:8080/x",  # NAT64 of 10.0.0.8, dotted
        "http://[64:ff9b:1::a00:8]/x",  # local-use NAT64 (RFC 8215)
        "http://[64:ff9b:1::808:808]/x",
        "http://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
        "http://[2002:c0a8:101::1]/x",  # 6to4 of 192.168.1.1
        "http://[2002:808:808::1]/x",  # 6to4, deprecated: refused whatever it carries
        "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped
        "http://[::ffff:a00:8]/x",
        "http://[::127.0.0.1]/x",  # IPv4-compatible (deprecated)
        "http://[::a9fe:a9fe]/x",
        "http://[::8.8.8.8]/x",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
        "http://[2001:0:a00:1:8000:63bf:f5ff:fffe]/x",  # Teredo, server 10.0.0.1
    ],
)
async def test_finding_13_ipv6_forms_of_private_ipv4_are_refused(uri: str) -> None:
    with pytest.raises(ForbiddenAddress, match="non-public"):
        await check_address(uri, allow_private=False)


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        # DNS64 gives these for public IPv4-only hosts on IPv6-only networks.
        ("http://[64:ff9b::808:808]/x", "64:ff9b::808:808"),
        ("http://[::ffff:8.8.8.8]/x", "::ffff:808:808"),
        ("http://[2606:4700:4700::1111]/x", "2606:4700:4700::1111"),
    ],
)
async def test_finding_13_public_ipv4_behind_nat64_or_mapped_is_called(
    uri: str, address: str
) -> None:
    assert await check_address(uri, allow_private=False) == address
