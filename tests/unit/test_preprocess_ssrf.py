"""URL safety rules, without network: address classification and refusals before connecting."""

from __future__ import annotations

import pytest
from preprocess_core.errors import RefusedError
from preprocess_core.fetch_url import UrlFetcher, forbidden_reason

REFUSED = [
    "169.254.169.254",  # AWS/OCI/GCP metadata
    "169.254.0.1",
    "127.0.0.1",
    "127.5.5.5",
    "10.0.0.1",
    "172.16.3.4",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254",  # AWS IPv6 metadata (ULA)
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_special_addresses_are_refused(address: str) -> None:
    assert forbidden_reason(address) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(address) is None


class Resolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/x.jpg",
        "http://0.0.0.0:8080/x.jpg",
        "http://127.0.0.1/x.jpg",
        "http://[::1]/x.jpg",
        "http://internal.test/x.jpg",  # resolves to a private address
        "http://mixed.test/x.jpg",  # one public, one private answer: refused
        "ftp://example.com/x.jpg",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pw@public.test/x.jpg",
        "http:///nohost",
        "http://nosuch.test/x.jpg",
        "http://public.test:99999/x.jpg",
    ],
)
def test_refused_before_any_connection(url: str) -> None:
    resolver = Resolver(
        {"internal.test": ["10.1.2.3"], "mixed.test": ["8.8.8.8", "192.168.0.9"], "public.test": ["8.8.8.8"]}
    )
    fetcher = UrlFetcher(resolver=resolver, connect_timeout=0.01)
    with pytest.raises(RefusedError) as err:
        fetcher.fetch(url, 1000)
    assert err.value.status == 422


def test_allow_list_lets_a_trusted_name_through_the_address_check() -> None:
    resolver = Resolver({"images.internal": ["10.0.0.5"]})
    assert (
        UrlFetcher(resolver=resolver, allow_hosts=frozenset({"images.internal"})).checked_address("images.internal", 80)
        == "10.0.0.5"
    )
    with pytest.raises(RefusedError):
        UrlFetcher(resolver=resolver).checked_address("images.internal", 80)
    # The allow-list is by name: it does not open other names resolving to the same address.
    with pytest.raises(RefusedError):
        UrlFetcher(
            resolver=Resolver({"x.test": ["10.0.0.5"]}), allow_hosts=frozenset({"images.internal"})
        ).checked_address("x.test", 80)
