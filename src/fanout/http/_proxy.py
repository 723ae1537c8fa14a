"""Which proxy a request goes through: ``--proxy URL``, else the environment, read as
curl and requests read it.

The environment is ``http_proxy``, ``https_proxy`` and ``all_proxy`` (for both
schemes when the scheme's own is unset), upper or lower case, read once at the
start with ``urllib.request.getproxies()``; ``no_proxy``/``NO_PROXY`` lists the
hosts that go direct: ``*``, names and domain suffixes (``example.com`` and
``.example.com`` both cover ``api.example.com``), ``host:port``, IP addresses and
networks (``10.0.0.0/8``). As in curl, it also applies to ``--proxy``.

Not aiohttp's ``trust_env``: for every request it reads the environment and the
whole ``~/.netrc`` again in a worker thread (two thread hops a request: 2.6 times
the time of a request to a local server), sends ``~/.netrc`` credentials to any
host listed there, fails every request that carries its own ``Authorization``
header for such a host ("Cannot combine AUTHORIZATION header with AUTH
argument"), and ignores ``all_proxy`` and ``https://`` proxy URLs. Here the
choice is made once per origin and cached, and ``~/.netrc`` is not read.

Proxy credentials (``http://user:pass@proxy:3128``) are sent as
``Proxy-Authorization`` to the proxy only, and are secrets: never written. They
stay in the proxy URL handed to aiohttp: its ``proxy_auth`` is deprecated, and
its ``proxy_headers`` reach the proxy only for https targets (CONNECT), not with
the absolute-form requests of http targets.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

from yarl import URL

_ORIGIN = re.compile(r"[^:/?#]*://[^/?#]*").match
_SCHEMES = ("http", "https")
# distinct origins remembered; past this the cache starts again (a crawl of many hosts)
_CACHE_MAX = 4096


class ProxyError(ValueError):
    """A proxy setting that cannot be used; the message never shows its credentials."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy: its URL, credentials included (``DIRECT``: no proxy); ``str()``
    shows it without them."""

    url: URL | None
    #: values to keep out of everything written (the password, encoded forms)
    secrets: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "direct" if self.url is None else str(self.url.with_user(None))


DIRECT = Proxy(None)


def parse_proxy(text: str, where: str) -> Proxy:
    """``http://user:pass@host:3128`` (scheme http when none is given) as a ``Proxy``;
    ``ProxyError`` names ``where`` (``--proxy``, ``HTTPS_PROXY``) and what is wrong."""
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ProxyError(f"{where} is not a valid proxy URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    shown = f"{scheme}://{host or ''}{'' if port is None else f':{port}'}"
    if scheme not in _SCHEMES:
        raise ProxyError(f"{where}: {shown}: only http:// and https:// proxies are supported")
    if not host:
        raise ProxyError(f"{where} has no host (got {shown})")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyError(f"{where}: a proxy URL is scheme://[user:password@]host[:port] "
                         f"(got a path or query after {shown})")
    if parts.username is None and parts.password is None:
        return Proxy(URL.build(scheme=scheme, host=host, port=port))
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if ":" in user:
        raise ProxyError(f"{where}: the proxy user name has a ':' in it ({shown})")
    url = URL.build(scheme=scheme, user=user, password=password, host=host, port=port)
    token = base64.b64encode(f"{user}:{password}".encode("latin-1", "replace")).decode()
    userinfo = parts.netloc.rpartition("@")[0]
    secrets = [userinfo, f"{user}:{password}", token, password or user]
    return Proxy(url, tuple(dict.fromkeys(s for s in secrets if s)))


class NoProxy:
    """A ``no_proxy`` list: ``*`` (every host), names and domain suffixes
    (``example.com`` and ``.example.com`` both cover ``api.example.com``), either with
    ``:port`` for that port only, and IP addresses and networks (``10.0.0.0/8``,
    ``::1``), separated by commas or spaces.

    Written here because the stdlib's matcher, ``urllib.request.proxy_bypass``, is
    undocumented, takes other settings on macOS and Windows, and knows no networks.
    """

    def __init__(self, text: str) -> None:
        entries = text.replace(" ", ",").lower().split(",")
        self.everything = "*" in entries
        self._names: set[tuple[str, int | None]] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip().lstrip(".")
            if not entry or entry == "*":
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name, sep, port = entry.rpartition(":")
            if sep and port.isdigit() and not name.endswith(":"):
                self._names.add((name.strip("[]"), int(port)))
            else:
                self._names.add((entry, None))

    def covers(self, host: str, port: int) -> bool:
        """Whether a request to ``host:port`` goes direct."""
        if self.everything:
            return True
        host = host.lower().rstrip(".")
        if self._networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                if any(address in network for network in self._networks):
                    return True
        names = self._names
        while True:
            if (host, None) in names or (host, port) in names:
                return True
            dot = host.find(".")
            if dot < 0:
                return False
            host = host[dot + 1:]


class Proxies:
    """``pick(url)``: the proxy for a request URL (``DIRECT``: none)."""

    def __init__(self, by_scheme: Mapping[str, Proxy], no_proxy: str | None = None) -> None:
        self._by_scheme = dict(by_scheme)
        self._no_proxy = NoProxy(no_proxy) if no_proxy else None
        self._cache: dict[str, Proxy] = {}

    def __bool__(self) -> bool:
        return bool(self._by_scheme)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every proxy's credentials, to scrub from what is written."""
        return tuple(s for proxy in self._by_scheme.values() for s in proxy.secrets)

    @classmethod
    def from_settings(cls, option: str | None) -> Proxies:
        """``--proxy`` for every scheme (``""``: no proxy at all), else the environment
        (``urllib.request.getproxies()``); ``no_proxy`` applies to both."""
        found = getproxies()
        no_proxy = found.get("no")
        if option is not None:
            if not option.strip():
                return cls({})
            proxy = parse_proxy(option, "--proxy")
            return cls({"http": proxy, "https": proxy}, no_proxy)
        by_scheme: dict[str, Proxy] = {}
        for scheme in _SCHEMES:
            own = found.get(scheme)
            value = own or found.get("all")
            if value:
                name = f"{scheme if own else 'all'}_proxy".upper()
                by_scheme[scheme] = parse_proxy(value, f"{name} (from the environment)")
        return cls(by_scheme, no_proxy)

    def pick(self, url: str) -> Proxy:
        """The proxy to send a request for ``url`` through (``DIRECT``: none)."""
        match = _ORIGIN(url)
        origin = match.group() if match else url
        try:
            return self._cache[origin]
        except KeyError:
            pass
        proxy = self._choose(origin)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[origin] = proxy
        return proxy

    def _choose(self, origin: str) -> Proxy:
        parts = urlsplit(origin)
        scheme = parts.scheme.lower()
        proxy = self._by_scheme.get(scheme, DIRECT)
        if proxy is DIRECT or self._no_proxy is None:
            return proxy
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            return proxy
        return DIRECT if self._no_proxy.covers(parts.hostname or "", port) else proxy
