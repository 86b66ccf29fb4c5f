"""The SSRF guard for webhook URLs: which addresses are refused, with which reason and message."""

import ipaddress
import socket
from collections.abc import Sequence

import pytest

from infra.destinations import (
    Destination,
    Resolver,
    UnsafeDestinationError,
    check_address,
    check_url,
    resolve_host,
)

# (address, reason): every refused range, for IPv4 and IPv6 and IPv4 wrapped in IPv6.
REFUSED_ADDRESSES = [
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("169.254.170.23", "metadata"),
    ("100.100.100.200", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("fd00:ec2::23", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("::ffff:10.0.0.5", "private"),
    ("169.254.1.1", "link_local"),
    ("fe80::1", "link_local"),
    ("::ffff:169.254.1.1", "link_local"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("::ffff:100.64.0.1", "cgnat"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("2001:db8::1", "reserved"),
    ("100::1", "reserved"),
    ("::7f00:1", "reserved"),  # IPv4-compatible ::127.0.0.1
    ("64:ff9b:1::a00:5", "reserved"),  # local-use NAT64
    ("2001:0:4136:e378:8000:63bf:a247:27dd", "reserved"),  # Teredo for 93.184.216.34
    ("2002:a9fe:a9fe::", "metadata"),  # 6to4 for 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 for 127.0.0.1
    ("2002:a00:5::", "private"),  # 6to4 for 10.0.0.5
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 for 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 for 127.0.0.1
    ("64:ff9b::a00:5", "private"),  # NAT64 for 10.0.0.5
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "private"),  # Teredo client 10.0.0.5
]

PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::",  # 6to4 for 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 for 93.184.216.34, as DNS64 hands out
]


def url_for(address: str, scheme: str = "http") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}/hook"


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    """A resolver answering from ``table``; any other name is an error in the test."""

    def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def refusal(
    url: str,
    *,
    allow_networks: Sequence[str] = (),
    https_only: bool = False,
    resolve: Resolver = resolve_host,
) -> UnsafeDestinationError:
    with pytest.raises(UnsafeDestinationError) as info:
        check_url(url, allow_networks=allow_networks, https_only=https_only, resolve=resolve)
    return info.value


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_literal_address_is_refused(address: str, reason: str) -> None:
    error = refusal(url_for(address))
    assert error.reason == reason
    assert str(error).startswith(f"webhook URL host {address} is ")


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_check_address_refuses(address: str, reason: str) -> None:
    with pytest.raises(UnsafeDestinationError) as info:
        check_address(address)
    assert info.value.reason == reason
    assert str(info.value).startswith(f"{address} is ")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "webhook URL host 169.254.169.254 is a cloud metadata address",
        ),
        ("http://10.0.0.5/", "webhook URL host 10.0.0.5 is a private address"),
        (
            "http://[2002:a00:5::]/",
            "webhook URL host 2002:a00:5:: is a 6to4 address for 10.0.0.5, a private address",
        ),
        (
            "http://[64:ff9b::7f00:1]/",
            "webhook URL host 64:ff9b::7f00:1 is a NAT64 address for 127.0.0.1, a loopback address",
        ),
    ],
)
def test_message_is_one_clear_sentence(url: str, message: str) -> None:
    assert str(refusal(url)) == message


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_hostname_resolving_to_refused_address(address: str, reason: str) -> None:
    resolve = fake_resolver({"hooks.example.com": [address]})
    error = refusal("https://hooks.example.com/hook", resolve=resolve)
    assert error.reason == reason
    assert str(error).startswith("webhook URL host hooks.example.com resolves to ")
    assert address not in str(error)


def test_hostname_message_names_the_host_but_not_the_address() -> None:
    resolve = fake_resolver({"metadata.internal": ["169.254.169.254"]})
    error = refusal("http://metadata.internal/", resolve=resolve)
    assert str(error) == "webhook URL host metadata.internal resolves to a cloud metadata address"


def test_hostname_message_names_no_embedded_address() -> None:
    resolve = fake_resolver({"nat.example.com": ["64:ff9b::7f00:1"]})
    error = refusal("http://nat.example.com/", resolve=resolve)
    assert str(error) == (
        "webhook URL host nat.example.com resolves to a NAT64 address embedding a loopback address"
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "loopback"),
        ("LOCALHOST", "loopback"),
        ("2130706433", "loopback"),
        ("0x7f000001", "loopback"),
        ("0x7f.1", "loopback"),
        ("127.1", "loopback"),
        ("127.0.1", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("0", "unspecified"),
    ],
)
def test_odd_spellings_refused_through_real_resolver(host: str, reason: str) -> None:
    error = refusal(f"http://{host}:8080/hook")
    assert error.reason == reason
    assert str(error).startswith(f"webhook URL host {host.lower()} resolves to ")


@pytest.mark.parametrize(
    ("addresses", "bad"),
    [
        (["93.184.216.34", "10.0.0.5"], "10.0.0.5"),
        (["10.0.0.5", "93.184.216.34"], "10.0.0.5"),
        (["2606:4700::1111", "93.184.216.34", "fd00::5"], "fd00::5"),
    ],
)
def test_one_bad_address_among_good_ones_refuses(addresses: list[str], bad: str) -> None:
    resolve = fake_resolver({"mixed.example.com": addresses})
    error = refusal("https://mixed.example.com/", resolve=resolve)
    assert error.reason == "private"
    assert "host mixed.example.com resolves to a private address" in str(error)
    assert bad not in str(error)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_literal_is_allowed(address: str) -> None:
    destination = check_url(url_for(address, "https"))
    assert destination == Destination(
        url=url_for(address, "https"),
        scheme="https",
        host=address,
        port=443,
        addresses=(str(ipaddress.ip_address(address)),),
    )


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_check_address_allows_public(address: str) -> None:
    assert check_address(address) is None


def test_hostname_resolving_to_public_addresses_is_allowed() -> None:
    resolve = fake_resolver(
        {"hooks.example.com": ["93.184.216.34", "2606:4700::1111", "93.184.216.34"]}
    )
    destination = check_url("http://Hooks.Example.com:8443/v1/hook?x=1", resolve=resolve)
    assert destination == Destination(
        url="http://Hooks.Example.com:8443/v1/hook?x=1",
        scheme="http",
        host="hooks.example.com",
        port=8443,
        addresses=("93.184.216.34", "2606:4700::1111"),
    )


def test_resolver_is_given_host_and_port() -> None:
    calls = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["93.184.216.34"]

    check_url("https://hooks.example.com/", resolve=resolve)
    check_url("http://hooks.example.com:8080/", resolve=resolve)
    assert calls == [("hooks.example.com", 443), ("hooks.example.com", 8080)]


LOCAL = ["127.0.0.0/8", "::1/128"]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_allowlist_opens_local_addresses(address: str) -> None:
    destination = check_url(url_for(address).replace("/hook", ":8080/hook"), allow_networks=LOCAL)
    assert (destination.host, destination.port) == (address, 8080)
    assert destination.addresses == (str(ipaddress.ip_address(address)),)
    assert check_address(address, LOCAL) is None


def test_allowlist_opens_localhost_through_real_resolver() -> None:
    destination = check_url("http://localhost:8080/hook", allow_networks=LOCAL)
    assert destination.host == "localhost"
    assert "127.0.0.1" in destination.addresses
    assert set(destination.addresses) <= {"127.0.0.1", "::1"}


def test_allowlist_opens_only_its_networks() -> None:
    error = refusal("http://10.0.0.1/", allow_networks=LOCAL)
    assert error.reason == "private"
    assert str(error) == "webhook URL host 10.0.0.1 is a private address"
    with pytest.raises(UnsafeDestinationError) as info:
        check_address("10.0.0.1", LOCAL)
    assert str(info.value) == "10.0.0.1 is a private address"


def test_allowlist_overrides_every_rule() -> None:
    destination = check_url("http://169.254.169.254/", allow_networks=["169.254.169.254/32"])
    assert destination.addresses == ("169.254.169.254",)


def test_allowlist_applies_to_every_resolved_address() -> None:
    resolve = fake_resolver({"dev.test": ["127.0.0.1", "192.168.1.9"]})
    error = refusal("http://dev.test/", allow_networks=["127.0.0.0/8"], resolve=resolve)
    assert error.reason == "private"
    assert "host dev.test resolves to a private address" in str(error)


def test_https_only_refuses_http() -> None:
    error = refusal("http://hooks.example.com/", https_only=True)
    assert error.reason == "https_required"
    assert str(error) == "webhook URL for hooks.example.com must use https"


def test_https_only_allows_https() -> None:
    resolve = fake_resolver({"hooks.example.com": ["93.184.216.34"]})
    destination = check_url("https://hooks.example.com/", https_only=True, resolve=resolve)
    assert (destination.scheme, destination.port) == ("https", 443)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://example.com/file", "ftp"),
        ("file:///etc/passwd", "file"),
        ("gopher://127.0.0.1:6379/_INFO", "gopher"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/plain,hi", "data"),
        ("dict://example.com:11211/stat", "dict"),
    ],
)
def test_other_schemes_are_refused(url: str, scheme: str) -> None:
    error = refusal(url)
    assert error.reason == "scheme"
    assert str(error) == f"webhook URL must start with http:// or https://, not {scheme}:"


def test_missing_scheme_is_refused() -> None:
    error = refusal("hooks.example.com/hook")
    assert error.reason == "scheme"
    assert str(error) == "webhook URL must start with http:// or https://"


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cr3t-token@hooks.example.com/",
        "https://alice@hooks.example.com/",
        "https://:s3cr3t-token@hooks.example.com/",
        "https://@hooks.example.com/",
        "https://alice:s3cr3t-token@93.184.216.34/",
        "http://hooks.example.com\\@169.254.169.254/",
    ],
)
def test_credentials_are_refused_and_not_repeated(url: str) -> None:
    error = refusal(url)
    assert error.reason == "credentials"
    assert str(error).endswith("must not contain a username or password")
    host = url.rpartition("@")[2].rstrip("/")
    assert f"webhook URL for {host} " in str(error)
    assert "alice" not in str(error)
    assert "s3cr3t" not in str(error)


@pytest.mark.parametrize("url", ["http:///hook", "https://", "http://:8080/", "https:hook"])
def test_missing_host_is_refused(url: str) -> None:
    error = refusal(url)
    assert error.reason == "no_host"
    assert str(error) == "webhook URL has no host"


BAD_PORT = "webhook URL for hooks.example.com has an invalid port"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com:99999/", BAD_PORT),
        ("http://hooks.example.com:http/", BAD_PORT),
        ("http://[127.0.0.1]/", "webhook URL could not be parsed"),
        ("http://[::1/", "webhook URL could not be parsed"),
        ("http://[::1%25lo]/", "webhook URL host ::1%25lo is not a valid IPv6 address"),
        ("http://[v1.x]/", "webhook URL host v1.x is not a valid IPv6 address"),
        ("http://hooks example.com/", "webhook URL must not contain spaces or control characters"),
        (" http://127.0.0.1/", "webhook URL must not contain spaces or control characters"),
        ("http://127.0.0.1\t/", "webhook URL must not contain spaces or control characters"),
        ("http://127%2e0%2e0%2e1/", "webhook URL host 127%2e0%2e0%2e1 is not a valid hostname"),
        ("http://a..b/", "webhook URL host a..b is not a valid hostname"),
        ("http://bücher.example/", "webhook URL host bücher.example is not a valid hostname"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    error = refusal(url, resolve=fake_resolver({}))
    assert error.reason == "malformed"
    assert str(error).startswith(message)


def test_unresolvable_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    error = refusal("https://nowhere.example.com/")
    assert error.reason == "unresolvable"
    assert str(error) == "webhook URL host nowhere.example.com could not be resolved"
    assert isinstance(error.__cause__, socket.gaierror)


def test_name_resolving_to_nothing_is_refused() -> None:
    error = refusal("https://empty.example.com/", resolve=fake_resolver({"empty.example.com": []}))
    assert error.reason == "unresolvable"
    assert str(error) == "webhook URL host empty.example.com could not be resolved"


def test_resolve_host_returns_each_address_once() -> None:
    addresses = resolve_host("localhost", 80)
    assert addresses
    assert len(addresses) == len(set(addresses))
    assert set(addresses) <= {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    "allow_networks", [["10.0.0.0/33"], ["not-a-network"], ["10.0.0.1/8"], ["127.0.0.0/8", ""]]
)
def test_invalid_allowed_network_raises_value_error(allow_networks: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        check_url("https://93.184.216.34/", allow_networks=allow_networks)
    assert not isinstance(info.value, UnsafeDestinationError)
    with pytest.raises(ValueError) as info:
        check_address("93.184.216.34", allow_networks)
    assert not isinstance(info.value, UnsafeDestinationError)
