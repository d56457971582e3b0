"""Finding 13: which Host headers a TRUSTED_HOSTS pattern lets through."""

from __future__ import annotations

import pytest

from process_api.api.middleware import _host_matches, split_host


@pytest.mark.parametrize(
    ("host", "pattern", "matches"),
    [
        ("api.example.org", "api.example.org", True),
        ("API.Example.org:8443", "api.example.org", True),  # a bare name allows any port
        ("api.example.org:8443", "api.example.org:8443", True),
        ("api.example.org:80", "api.example.org:8443", False),
        ("api.example.org", "api.example.org:8443", False),
        ("evil.example", "api.example.org", False),
        ("api.example.org.evil.example", "api.example.org", False),
        ("eu.api.example.org", "*.api.example.org", True),
        ("evilapi.example.org", "*.api.example.org", False),
        ("[::1]:5050", "[::1]:5050", True),
        ("[::1]:5050", "::1", True),
        ("[::1]:5051", "[::1]:5050", False),
    ],
)
def test_finding_13_trusted_host_patterns(host: str, pattern: str, matches: bool) -> None:
    assert _host_matches(split_host(host), split_host(pattern)) is matches
