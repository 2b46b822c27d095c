"""Callbacks and partner token requests go only to globally reachable addresses, however an
IPv6 address wraps an IPv4 one."""

import pytest

from referral_hub.callbacks import targets

from .factories import bearer

REFUSED = {
    # IPv4
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback, end of the block",
    "10.1.2.3": "private 10/8",
    "172.16.0.1": "private 172.16/12",
    "172.31.255.255": "private 172.16/12, end",
    "192.168.0.1": "private 192.168/16",
    "169.254.169.254": "cloud metadata",
    "169.254.1.1": "link-local",
    "100.64.0.1": "carrier-grade NAT 100.64/10",
    "100.127.255.254": "carrier-grade NAT, end",
    "198.18.0.1": "benchmarking 198.18/15",
    "198.19.255.255": "benchmarking, end",
    "192.0.2.1": "documentation TEST-NET-1",
    "198.51.100.7": "documentation TEST-NET-2",
    "203.0.113.9": "documentation TEST-NET-3",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast, administratively scoped",
    "240.0.0.1": "reserved 240/4",
    "255.255.255.255": "limited broadcast",
    "0.0.0.0": "unspecified",  # noqa: S104 (a target to refuse, not a bind)
    "0.1.2.3": "this network 0/8",
    "192.0.0.8": "IETF protocol assignments 192.0.0/24",
    "192.0.0.170": "NAT64 discovery",
    "192.88.99.1": "6to4 relay anycast",
    # IPv6
    "::1": "IPv6 loopback",
    "::": "IPv6 unspecified",
    "fc00::1": "unique-local fc00::/7",
    "fd12:3456::1": "unique-local fd00::/8",
    "fe80::1": "link-local",
    "fec0::1": "site-local, deprecated",
    "ff02::1": "multicast, link scope",
    "ff0e::1": "multicast, global scope",
    "2001:db8::1": "documentation",
    "3fff::1": "documentation (RFC 9637)",
    "100::1": "discard-only",
    "5f00::1": "SRv6 segment identifiers",
    "2001:10::1": "ORCHID",
    # IPv4 inside IPv6
    "::ffff:127.0.0.1": "IPv4-mapped loopback",
    "::ffff:10.0.0.1": "IPv4-mapped private",
    "::ffff:169.254.169.254": "IPv4-mapped metadata",
    "::ffff:100.64.0.1": "IPv4-mapped carrier-grade NAT",
    "::127.0.0.1": "IPv4-compatible loopback",
    "::8.8.8.8": "IPv4-compatible, deprecated even when public",
    "::ffff:0:7f00:1": "IPv4-translated loopback",
    "64:ff9b::7f00:1": "NAT64 loopback",
    "64:ff9b::a9fe:a9fe": "NAT64 metadata",
    "64:ff9b::c0a8:101": "NAT64 private",
    "64:ff9b:1::808:808": "local-use NAT64",
    "2002:7f00:1::1": "6to4 loopback",
    "2002:c0a8:101::1": "6to4 private",
    "2002:a9fe:a9fe::1": "6to4 metadata",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo, client 127.0.0.1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7": "Teredo, client 8.8.8.8: Teredo is not global",
    "2606:4700::5efe:7f00:1": "ISATAP loopback",
    "2606:4700::200:5efe:a00:1": "ISATAP private",
}

ALLOWED = {
    "8.8.8.8": "public",
    "1.1.1.1": "public",
    "93.184.215.14": "public",
    "100.128.0.1": "just past carrier-grade NAT",
    "172.32.0.1": "just past 172.16/12",
    "198.20.0.1": "just past benchmarking",
    "2606:4700:4700::1111": "public IPv6",
    "2a00:1450:4001:80b::200e": "public IPv6",
    "::ffff:8.8.8.8": "IPv4-mapped public",
    "64:ff9b::808:808": "NAT64 public (an IPv6-only hub behind DNS64)",
    "2002:808:808::1": "6to4 public",
    "2606:4700::5efe:808:808": "ISATAP public",
}


def url_of(address):
    return f"https://[{address}]/" if ":" in address else f"https://{address}/"


@pytest.fixture
def production_targets(app, monkeypatch):
    monkeypatch.setitem(app.config, "CALLBACK_ALLOW_PRIVATE_TARGETS", False)


def test_the_table_covers_every_kind():
    assert len(REFUSED) + len(ALLOWED) >= 30


@pytest.mark.parametrize("address", REFUSED, ids=REFUSED.values())
def test_an_address_that_is_not_public_is_refused(production_targets, address):
    with pytest.raises(targets.TargetRefused):
        targets.resolve(url_of(address))


@pytest.mark.parametrize("address", ALLOWED, ids=ALLOWED.values())
def test_a_public_address_is_allowed(production_targets, address):
    assert targets.resolve(url_of(address))


@pytest.mark.parametrize(
    "address", ["::ffff:0:7f00:1", "64:ff9b::a9fe:a9fe", "2002:c0a8:101::1", "::127.0.0.1"]
)
def test_wrapped_private_addresses_are_refused_at_registration(
    client, partner, production_targets, address
):
    response = client.post(
        "/api/v1/subscriptions", json={"url": url_of(address)}, headers=bearer(partner["token"])
    )
    assert response.status_code == 422, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == ["url"]
