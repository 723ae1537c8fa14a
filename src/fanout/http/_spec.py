"""The input of ``fanout http``: one request per line, checked before anything is sent.

A line is a JSON object (``{"id", "method", "url", "headers", "params", "json",
"data"}``), a JSON string (a GET of that URL) or a plain ``http(s)://`` URL (a GET).
Blank lines are ignored. ``id`` defaults to the line number; ``index`` is the
position among the requests (0-based), used for ordering and kept in the output.

The input is streamed twice: once to validate every line (keeping the ids seen,
for the duplicate check), then again to feed the run. An input under
``CACHE_BYTES`` is instead kept as parsed during the first pass, so memory stays
bounded for huge inputs and small ones are parsed once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from fanout.http._redact import is_sensitive, secret_parts

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_METHOD_SET = frozenset(METHODS)
FIELDS = ("id", "method", "url", "headers", "params", "json", "data")
_FIELD_SET = frozenset(FIELDS)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCALARS = (str, int, float)
_SPACE = re.compile(r"\s").search
# json.loads minus its per-call argument handling and encoding sniffing (input is UTF-8)
_decode_json = json.JSONDecoder().raw_decode
_SIMPLE_URL = re.compile(
    r"https?://(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?(?:[/?#]\S*)?", re.ASCII
).fullmatch
#: an input up to this size is kept parsed after validation instead of read twice
CACHE_BYTES = 4 << 20


class SpecError(ValueError):
    """What is wrong with one input line (the caller adds ``FILE:LINE:``)."""


@dataclass(slots=True)
class RequestSpec:
    """One request to send, fully resolved (headers merged, ``${VAR}`` filled); not
    to be changed once made (not frozen: building it must be cheap)."""

    id: str | int
    index: int
    line: int
    method: str
    url: str
    headers: dict[str, str]
    params: list[tuple[str, str | int | float]] | None = None
    json: Any = None
    has_json: bool = False
    data: str | dict[str, str] | None = None
    #: lower-case names of headers not to send to another origin
    sensitive: frozenset[str] = frozenset()
    #: values to scrub from everything written about this request
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """A line that failed validation, kept as a failed record (``--skip-invalid``)."""

    id: str | int
    index: int
    line: int
    message: str


@dataclass
class Context:
    """What parsing a line needs besides the line."""

    label: str
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    #: ``-H`` headers, already resolved, added to every request (the line's win);
    #: shared by the requests without headers of their own, so never changed
    headers: dict[str, str] = field(default_factory=dict)
    #: lower-case names among ``headers`` that are sensitive
    sensitive: frozenset[str] = frozenset()
    #: secrets from ``headers``
    secrets: tuple[str, ...] = ()


def fill_env(value: str, env: Mapping[str, str], where: str) -> tuple[str, list[str]]:
    """``value`` with each ``${VAR}`` replaced from ``env``; also the values used."""
    if "${" not in value:
        return value, []
    used: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            filled = env[name]
        except KeyError:
            raise SpecError(
                f"{where} uses ${{{name}}}, but environment variable {name} is not set"
            ) from None
        used.append(filled)
        return filled

    return _ENV_REF.sub(sub, value), used


def parse_header_option(option: str, env: Mapping[str, str]) -> tuple[str, str, bool, list[str]]:
    """``-H "Name: value"`` -> (name, value, sensitive, secrets)."""
    name, sep, value = option.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise SpecError(f'-H/--header must look like "Name: value" (got {name!r})')
    _check_header_value(name, value)
    filled, used = fill_env(value, env, f"header {name!r}")
    sensitive = bool(used) or is_sensitive(name)
    secrets = [*used, *secret_parts(filled)] if sensitive else []
    return name, filled, sensitive, secrets


def make_context(label: str, header_options: list[str], env: Mapping[str, str]) -> Context:
    """Resolve the ``-H`` options; raises ``SpecError`` naming a bad one."""
    headers: dict[str, str] = {}
    sensitive: set[str] = set()
    secrets: list[str] = []
    for option in header_options:
        name, value, is_secret, found = parse_header_option(option, env)
        for existing in [n for n in headers if n.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
        if is_secret:
            sensitive.add(name.lower())
        secrets.extend(found)
    return Context(label, env, headers, frozenset(sensitive), tuple(secrets))


def _check_header_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise SpecError(f"header {name!r} has a line break in its value")


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise SpecError(f'"url" must be a string (got {_describe(url)})')
    simple = _SIMPLE_URL(url)
    if simple is not None and (simple.group(1) is None or int(simple.group(1)) <= 65535):
        return url  # the usual shape, checked without urlsplit (a tenth of the time)
    if not url:
        raise SpecError('"url" is empty')
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SpecError(f'"url" is not a valid URL ({exc})') from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise SpecError(f'"url" must be an http:// or https:// URL (it has {shown})')
    if not parts.hostname:
        raise SpecError('"url" has no host')
    if _SPACE(url):
        raise SpecError('"url" contains whitespace (encode it as %20)')
    return url


def _check_params(params: Any) -> list[tuple[str, str | int | float]]:
    if not isinstance(params, dict):
        raise SpecError(f'"params" must be an object (got {_describe(params)})')
    out: list[tuple[str, str | int | float]] = []
    for key, value in params.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif not isinstance(v, _SCALARS):
                raise SpecError(
                    f'"params"."{key}" must be a string, a number or a list of them '
                    f"(got {_describe(v)})"
                )
            out.append((key, v))
    return out


def _check_data(data: Any) -> str | dict[str, str]:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        form: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, _SCALARS):
                raise SpecError(
                    f'"data"."{key}" must be a string or a number (got {_describe(value)})'
                )
            form[key] = str(value)
        return form
    raise SpecError(f'"data" must be a string (raw body) or an object (form fields) '
                    f"(got {_describe(data)})")


def _check_id(value: Any, lineno: int) -> str | int:
    if value is None:
        return lineno
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(f'"id" must be a string or an integer (got {_describe(value)})')
    return value


def parse_line(
    raw: bytes, lineno: int, index: int, ctx: Context, *, checked: bool = False
) -> RequestSpec:
    """One input line (not blank) as a request; ``SpecError`` says what is wrong.

    ``checked``: the line passed ``validate`` already; skip re-checking its URL.
    """
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SpecError("is not valid UTF-8") from None
    first = text[:1]
    if first in ("{", '"', "[") or first.isdigit() or text in ("true", "false", "null"):
        try:
            value, end = _decode_json(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if end != len(text):
            raise SpecError(f"invalid JSON (Extra data at column {end + 1})")
        if isinstance(value, str):
            return _simple_get(value if checked else _check_url(value), lineno, index, ctx)
        if not isinstance(value, dict):
            raise SpecError(
                f"expected a JSON object, a JSON string or a URL (got {_describe(value)})"
            )
        return _from_object(value, lineno, index, ctx, checked)
    if "://" not in text:
        raise SpecError("is neither a JSON request nor an http(s) URL")
    return _simple_get(text if checked else _check_url(text), lineno, index, ctx)


def _simple_get(url: str, lineno: int, index: int, ctx: Context) -> RequestSpec:
    return RequestSpec(lineno, index, lineno, "GET", url, ctx.headers,
                       sensitive=ctx.sensitive, secrets=ctx.secrets)


def _from_object(
    obj: dict[str, Any], lineno: int, index: int, ctx: Context, checked: bool
) -> RequestSpec:
    if not _FIELD_SET.issuperset(obj):
        unknown = next(k for k in obj if k not in _FIELD_SET)
        raise SpecError(f'unknown field "{unknown}" (expected: {", ".join(FIELDS)})')
    if "url" not in obj:
        raise SpecError('"url" is missing')
    url = obj["url"] if checked else _check_url(obj["url"])
    spec_id = _check_id(obj.get("id"), lineno)
    method = obj.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in _METHOD_SET:
        shown = repr(method) if isinstance(method, str) else _describe(method)
        raise SpecError(f"unknown method {shown} (expected one of: {', '.join(METHODS)})")
    method = method.upper()
    if "json" in obj and "data" in obj:
        raise SpecError('give either "json" or "data", not both')
    params = _check_params(obj["params"]) if obj.get("params") is not None else None
    data = _check_data(obj["data"]) if obj.get("data") is not None else None

    line_headers = obj.get("headers")
    if line_headers is None:
        return RequestSpec(spec_id, index, lineno, method, url, ctx.headers, params,
                           obj.get("json"), "json" in obj, data, ctx.sensitive, ctx.secrets)
    headers = dict(ctx.headers)
    sensitive = set(ctx.sensitive)
    secrets = list(ctx.secrets)
    if not isinstance(line_headers, dict):
        raise SpecError(f'"headers" must be an object (got {_describe(line_headers)})')
    for name, value in line_headers.items():
        if not _TOKEN.match(name):
            raise SpecError(f"header name {name!r} is not a valid HTTP header name")
        if isinstance(value, bool) or not isinstance(value, _SCALARS):
            raise SpecError(f'header "{name}" must be a string (got {_describe(value)})')
        value = str(value)
        _check_header_value(name, value)
        filled, used = fill_env(value, ctx.env, f'header "{name}"')
        lower = name.lower()
        for existing in [n for n in headers if n.lower() == lower]:
            del headers[existing]
        headers[name] = filled
        if used or is_sensitive(name):
            sensitive.add(lower)
            secrets.extend(used)
            secrets.extend(secret_parts(filled))
        else:
            sensitive.discard(lower)
    return RequestSpec(
        spec_id, index, lineno, method, url, headers, params,
        obj.get("json"), "json" in obj, data, frozenset(sensitive), tuple(secrets),
    )


def read_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each line that is not blank."""
    for lineno, raw in enumerate(handle, 1):
        if raw.strip():
            yield lineno, raw


@dataclass
class Checked:
    """What validating the whole input found."""

    count: int = 0
    #: line number -> "FILE:LINE: what is wrong" for invalid lines (``--skip-invalid``)
    invalid: dict[int, str] = field(default_factory=dict)
    #: line number -> id, for invalid lines whose id could be read
    invalid_ids: dict[int, str | int] = field(default_factory=dict)
    #: the ids of the valid lines (-> their line number)
    ids: dict[str | int, int] = field(default_factory=dict)
    #: every line as parsed, when the input is small (then it is not read again)
    cached: list[RequestSpec | InvalidLine] | None = None

    def left(self, done: set[Any]) -> int:
        """How many lines remain to send when the ids in ``done`` are already done."""
        if not done:
            return self.count
        return sum(1 for i in self.ids if i not in done) + sum(
            1 for i in self.invalid_ids.values() if i not in done)


class InputError(Exception):
    """The input is not valid; the message is ``FILE:LINE: what is wrong``."""


def _salvage_id(raw: bytes, lineno: int) -> str | int:
    try:
        value = json.loads(raw)
    except ValueError:
        return lineno
    if isinstance(value, dict):
        candidate = value.get("id")
        if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
            return candidate
    return lineno


def validate(
    handle: IO[bytes], ctx: Context, *, skip_invalid: bool, cache_bytes: int = CACHE_BYTES
) -> Checked:
    """Check every line; keeps the ids seen (and, for an input under ``cache_bytes``,
    the parsed lines, so it need not be read and parsed again). Raises ``InputError``
    at the first bad line unless ``skip_invalid``, which collects them instead."""
    checked = Checked()
    seen: dict[str | int, int] = {}
    cached: list[RequestSpec | InvalidLine] | None = []
    budget = cache_bytes
    index = 0
    for lineno, raw in read_lines(handle):
        item: RequestSpec | InvalidLine
        try:
            item = parse_line(raw, lineno, index, ctx)
            first = seen.get(item.id)
            if first is not None:
                raise SpecError(f"duplicate id {item.id!r} (first on line {first})")
            seen[item.id] = lineno
        except SpecError as exc:
            message = f"{ctx.label}:{lineno}: {exc}"
            if not skip_invalid:
                raise InputError(message) from None
            checked.invalid[lineno] = message
            checked.invalid_ids[lineno] = _salvage_id(raw, lineno)
            item = InvalidLine(checked.invalid_ids[lineno], index, lineno, message)
        if cached is not None:
            budget -= len(raw)
            if budget >= 0:
                cached.append(item)
            else:
                cached = None
        index += 1
    checked.count = index
    checked.ids = seen
    checked.cached = cached
    return checked


def cached_specs(
    checked: Checked, done: set[Any] | frozenset[Any] = frozenset()
) -> Iterator[RequestSpec | InvalidLine]:
    """The lines kept by ``validate`` (``checked.cached``), skipping ids in ``done``."""
    assert checked.cached is not None
    for item in checked.cached:
        if item.id not in done:
            yield item


def iter_specs(
    handle: IO[bytes],
    ctx: Context,
    checked: Checked,
    done: set[Any] | frozenset[Any] = frozenset(),
) -> Iterator[RequestSpec | InvalidLine]:
    """The requests (and invalid lines as such) of an input validated by ``validate``,
    skipping ids in ``done``."""
    invalid = checked.invalid
    index = 0
    for lineno, raw in read_lines(handle):
        item: RequestSpec | InvalidLine
        if lineno in invalid:
            item = InvalidLine(checked.invalid_ids[lineno], index, lineno, invalid[lineno])
        else:
            try:
                item = parse_line(raw, lineno, index, ctx, checked=True)
            except SpecError as exc:  # the file changed since it was validated
                item = InvalidLine(_salvage_id(raw, lineno), index, lineno,
                                   f"{ctx.label}:{lineno}: {exc}")
        index += 1
        if item.id in done:
            continue
        yield item
