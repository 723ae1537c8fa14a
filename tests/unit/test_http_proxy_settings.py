"""Choosing the proxy of a request: proxy URLs, the environment, NO_PROXY lists."""

from __future__ import annotations

import base64

import pytest

from fanout.http._proxy import DIRECT, NoProxy, Proxies, ProxyError, parse_proxy

VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)


def test_a_proxy_url_keeps_its_credentials_for_sending_and_shows_none() -> None:
    proxy = parse_proxy("http://al%40ce:p%3Ass-word@proxy.local:3128", "--proxy")
    assert proxy.url is not None
    assert (proxy.url.user, proxy.url.password) == ("al@ce", "p:ss-word")
    assert str(proxy) == "http://proxy.local:3128"
    token = base64.b64encode(b"al@ce:p:ss-word").decode()
    assert {"p:ss-word", "al@ce:p:ss-word", token, "al%40ce:p%3Ass-word"} <= set(proxy.secrets)


def test_a_proxy_without_a_scheme_is_http_and_without_credentials_has_no_secrets() -> None:
    proxy = parse_proxy("proxy.local:3128", "--proxy")
    assert str(proxy) == "http://proxy.local:3128" and proxy.secrets == ()
    assert str(parse_proxy("https://proxy.local", "--proxy")) == "https://proxy.local"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socks5://u:secret-1@h:1080", "--proxy: socks5://h:1080: only http:// and https://"),
        ("http://u:secret-1@h:99999", "--proxy is not a valid proxy URL"),
        ("http://u:secret-1@:8080", "--proxy has no host"),
        ("http://u:secret-1@h:8080/x?y", "a proxy URL is scheme://[user:password@]host[:port]"),
    ],
)
def test_bad_proxy_urls_say_why_without_the_password(text: str, message: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_proxy(text, "--proxy")
    assert message in str(info.value) and "secret-1" not in str(info.value)


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 80, True),
        ("example.com", "api.example.com", 80, True),
        (".example.com", "api.example.com", 80, True),
        (".example.com", "example.com", 80, True),
        ("example.com", "badexample.com", 80, False),
        ("EXAMPLE.com", "Api.Example.COM.", 80, True),
        ("example.com:8080", "example.com", 8080, True),
        ("example.com:8080", "example.com", 80, False),
        ("10.0.0.0/8, 192.168.1.1", "10.2.3.4", 80, True),
        ("10.0.0.0/8, 192.168.1.1", "192.168.1.1", 80, True),
        ("10.0.0.0/8, 192.168.1.1", "192.168.1.2", 80, False),
        ("::1", "::1", 80, True),
        ("[::1]", "::1", 80, True),
        ("fd00::/8", "fd12::1", 80, True),
        ("localhost", "127.0.0.1", 80, False),
        ("", "example.com", 80, False),
    ],
)
def test_no_proxy_lists(no_proxy: str, host: str, port: int, direct: bool) -> None:
    assert NoProxy(no_proxy).covers(host, port) is direct


def test_the_environment_gives_a_proxy_per_scheme_and_all_proxy_fills_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3128")
    monkeypatch.setenv("ALL_PROXY", "http://u:sekret@every:3128")
    proxies = Proxies.from_settings(None)
    assert str(proxies.pick("http://a.example/x")) == "http://plain:3128"
    assert str(proxies.pick("https://a.example/x")) == "http://every:3128"
    assert "sekret" in proxies.secrets
    # lower case wins, as in curl and urllib
    monkeypatch.setenv("http_proxy", "http://lower:3128")
    assert str(Proxies.from_settings(None).pick("http://a/")) == "http://lower:3128"


def test_no_settings_no_proxies_and_an_empty_option_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not Proxies.from_settings(None)
    monkeypatch.setenv("HTTPS_PROXY", "http://env:3128")
    assert Proxies.from_settings(None)
    assert not Proxies.from_settings("")


def test_the_option_covers_both_schemes_and_no_proxy_still_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://env:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxies = Proxies.from_settings("http://option:8080")
    assert str(proxies.pick("http://a.example/")) == "http://option:8080"
    assert str(proxies.pick("https://a.example/")) == "http://option:8080"
    assert proxies.pick("https://svc.internal.example:8443/x") is DIRECT


def test_pick_decides_once_per_origin() -> None:
    proxies = Proxies({"http": parse_proxy("http://p:1", "--proxy")}, "skip.example")
    assert proxies.pick("http://skip.example/a?b") is DIRECT
    assert proxies.pick("http://skip.example:80/c") is DIRECT
    assert str(proxies.pick("http://other.example/a")) == "http://p:1"
    assert proxies.pick("https://other.example/a") is DIRECT  # no https proxy given
