"""Callback addresses: what is refused, and how a checked address is pinned."""

from __future__ import annotations

import pytest

from process_api.api.callbacks import ForbiddenAddress, _pinned, _shown, check_address


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://[::1]/x",
        "http://10.0.0.8/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "ftp://example.org/x",
        "file:///etc/passwd",
        "http:///no-host",
    ],
)
async def test_non_public_addresses_are_refused(uri: str) -> None:
    with pytest.raises(ForbiddenAddress):
        await check_address(uri, allow_private=False)


async def test_a_public_address_is_returned_to_be_called_at() -> None:
    assert await check_address("http://8.8.8.8:8080/x", allow_private=False) == "8.8.8.8"


async def test_private_addresses_can_be_allowed() -> None:
    assert await check_address("http://127.0.0.1/x", allow_private=True) is None


def test_the_request_goes_to_the_checked_address_under_the_uri_s_names() -> None:
    target, headers, extensions = _pinned("https://user:pw@hooks.example.org/cb?t=1", "203.0.113.9")
    assert target == "https://user:pw@203.0.113.9:443/cb?t=1"
    assert headers == {"Host": "hooks.example.org"}
    assert extensions == {"sni_hostname": "hooks.example.org"}
    assert _pinned("http://h.example:81/a", "2001:db8::1")[0] == "http://[2001:db8::1]:81/a"


def test_logged_uris_carry_no_credentials() -> None:
    assert (
        _shown("https://user:secret@hooks.example.org/cb?token=abc")
        == "https://hooks.example.org/cb"
    )
