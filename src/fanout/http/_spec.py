"""The input of ``fanout http``: one request per line, checked before anything is sent.

A line is a JSON object (``{"id", "method", "url", "headers", "params", "json",
"data"}``), a JSON string (a GET of that URL) or a plain ``http(s)://`` URL (a GET).
Blank lines are ignored. ``id`` defaults to the line number; ``index`` is the
position among the requests (0-based), used for ordering and kept in the output.
``${VAR}`` in a header value, the URL or a ``params`` value is filled from the
environment, and the value becomes a secret of that request.

An input in the OpenAI Batch format has instead ``{"custom_id", "method", "url",
"body"}`` on every line (``url`` usually relative, ``/v1/chat/completions``);
``detect_format`` tells the two apart by the first line. One format per file.

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
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from fanout.http._redact import Scrubber, is_sensitive, secret_parts

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_METHOD_SET = frozenset(METHODS)
FIELDS = ("id", "method", "url", "headers", "params", "json", "data")
_FIELD_SET = frozenset(FIELDS)
BATCH_FIELDS = ("custom_id", "method", "url", "body")
_BATCH_FIELD_SET = frozenset(BATCH_FIELDS)
#: the line formats: fanout's own, and the OpenAI Batch API's input lines
FORMATS = ("fanout", "openai")
#: where relative URLs of an OpenAI Batch input go without --base-url or OPENAI_BASE_URL
OPENAI_BASE_URL = "https://api.openai.com"
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
    #: secrets from ``headers`` (and others every request has, a proxy's password)
    secrets: tuple[str, ...] = ()
    #: the line format, one of ``FORMATS``
    format: str = "fanout"
    #: the line the format was told from (None: given with --format)
    format_line: int | None = None
    #: what a relative URL (``/v1/...``) is resolved against; None: not allowed
    base_url: str | None = None

    @property
    def id_field(self) -> str:
        """The field naming a request: ``id``, or ``custom_id`` in a Batch input."""
        return "custom_id" if self.format == "openai" else "id"


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


def make_context(label: str, header_options: list[str], env: Mapping[str, str],
                 secrets: tuple[str, ...] = ()) -> Context:
    """Resolve the ``-H`` options; raises ``SpecError`` naming a bad one. ``secrets``:
    more values to keep out of every record (a proxy's credentials)."""
    headers: dict[str, str] = {}
    sensitive: set[str] = set()
    every: list[str] = []
    for option in header_options:
        name, value, is_secret, found = parse_header_option(option, env)
        for existing in [n for n in headers if n.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
        if is_secret:
            sensitive.add(name.lower())
        every.extend(found)
    every.extend(secrets)
    return Context(label, env, headers, frozenset(sensitive), tuple(every))


def for_format(ctx: Context, fmt: str, line: int | None, base_url: str | None) -> Context:
    """``ctx`` for an input in format ``fmt`` (told from ``line``; None: given).

    For the OpenAI Batch format, whose lines carry no headers, ``Authorization:
    Bearer ${OPENAI_API_KEY}`` is added when that variable is set and ``-H`` gave
    no ``Authorization``; relative URLs go to ``base_url``, else
    ``$OPENAI_BASE_URL``, else ``OPENAI_BASE_URL``.
    """
    if fmt != "openai":
        return replace(ctx, format=fmt, format_line=line, base_url=base_url)
    if base_url is None:
        base_url = ctx.env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        check_base_url(base_url, "OPENAI_BASE_URL")
    headers, sensitive, secrets = ctx.headers, ctx.sensitive, ctx.secrets
    key = ctx.env.get("OPENAI_API_KEY")
    if key and not any(name.lower() == "authorization" for name in headers):
        value = f"Bearer {key}"
        _check_header_value("Authorization", value)
        headers = {**headers, "Authorization": value}
        sensitive = sensitive | {"authorization"}
        secrets = (*secrets, key, *secret_parts(value))
    return replace(ctx, headers=headers, sensitive=sensitive, secrets=secrets, format=fmt,
                   format_line=line, base_url=base_url)


def check_base_url(url: str, where: str) -> str:
    """A base URL (``http://host:8000``, ``http://host:8000/v1``) or ``SpecError``."""
    try:
        _check_url(url)
    except SpecError as exc:
        what = str(exc).replace('"url" ', "", 1).replace(" or, with --base-url, a path", "")
        raise SpecError(f"{where} {what} (got {url!r})") from None
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise SpecError(f"{where} must not have a query or fragment (got {url!r})")
    return url


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` (a path from the root); a base ending in ``/v1``, as the
    OpenAI SDKs write it, takes ``/v1/...`` paths without doubling the ``/v1``."""
    base = base.rstrip("/")
    if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        base = base[:-3]
    return base + path


def detect_format(handle: IO[bytes]) -> tuple[str, int | None]:
    """The format of an input, told from its first line that is not blank (an object
    with ``custom_id`` is a Batch line), and that line's number; reads that far."""
    for lineno, raw in read_lines(handle):
        text = raw.lstrip(b"\xef\xbb\xbf \t").rstrip()
        if text[:1] == b"{":
            try:
                value = json.loads(text)
            except ValueError:
                return "fanout", lineno
            if isinstance(value, dict) and "custom_id" in value:
                return "openai", lineno
        return "fanout", lineno
    return "fanout", None


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
        hint = " or, with --base-url, a path" if url.startswith("/") else ""
        raise SpecError(f'"url" must be an http:// or https:// URL{hint} (it has {shown})')
    if not parts.hostname:
        raise SpecError('"url" has no host')
    if _SPACE(url):
        raise SpecError('"url" contains whitespace (encode it as %20)')
    return url


_NO_SECRETS: list[str] = []


def _url(value: Any, ctx: Context, checked: bool) -> tuple[str, list[str]]:
    """The URL of a line, ``${VAR}`` filled and a path resolved against the base URL;
    also the values filled in (secrets)."""
    if value.__class__ is str and "${" not in value and (
        ctx.base_url is None or value[:1] != "/"
    ):  # the usual line
        return (value if checked else _check_url(value)), _NO_SECRETS
    if not isinstance(value, str):
        raise SpecError(f'"url" must be a string (got {_describe(value)})')
    used = _NO_SECRETS
    if "${" in value:
        value, used = fill_env(value, ctx.env, '"url"')
    if ctx.base_url is not None and value[:1] == "/":
        value = join_url(ctx.base_url, value)
    if not checked:
        try:
            _check_url(value)
        except SpecError as exc:
            if not used:
                raise
            raise SpecError(Scrubber(used).text(str(exc))) from None
    return value, used


def _check_params(params: Any, env: Mapping[str, str]
                  ) -> tuple[list[tuple[str, str | int | float]], list[str]]:
    if not isinstance(params, dict):
        raise SpecError(f'"params" must be an object (got {_describe(params)})')
    out: list[tuple[str, str | int | float]] = []
    used = _NO_SECRETS
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
            elif isinstance(v, str) and "${" in v:
                v, filled = fill_env(v, env, f'"params"."{key}"')
                used = [*used, *filled]
            out.append((key, v))
    return out, used


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


def _check_method(method: Any) -> str:
    if not isinstance(method, str) or method.upper() not in _METHOD_SET:
        shown = repr(method) if isinstance(method, str) else _describe(method)
        raise SpecError(f"unknown method {shown} (expected one of: {', '.join(METHODS)})")
    return method.upper()


def _one_format(ctx: Context) -> str:
    """Why a line of the other format is wrong here."""
    if ctx.format_line is None:
        return f"--format {ctx.format} was given"
    name = "an OpenAI Batch line" if ctx.format == "openai" else "in fanout's format"
    return f"line {ctx.format_line} is {name}; use one format per file"


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
        if isinstance(value, dict):
            if ctx.format == "openai":
                return _from_batch(value, lineno, index, ctx, checked)
            return _from_object(value, lineno, index, ctx, checked)
        if not isinstance(value, str):
            raise SpecError(
                f"expected a JSON object, a JSON string or a URL (got {_describe(value)})"
            )
        text = value
    elif "://" not in text and not (ctx.base_url is not None and first == "/"):
        if first == "/":
            raise SpecError("is a path, not a URL: give --base-url to send it")
        raise SpecError("is neither a JSON request nor an http(s) URL")
    if ctx.format == "openai":
        raise SpecError(f'expected an OpenAI Batch line {{"custom_id", "method", "url", '
                        f'"body"}}, not a bare URL ({_one_format(ctx)})')
    url, used = _url(text, ctx, checked)
    return RequestSpec(lineno, index, lineno, "GET", url, ctx.headers,
                       sensitive=ctx.sensitive,
                       secrets=(*ctx.secrets, *used) if used else ctx.secrets)


class LineParser(Protocol):
    """Reads one input line (not blank) as a request, like :func:`parse_line` (the
    default); ``fanout chat`` passes its own, for lines that are prompts."""

    def __call__(self, raw: bytes, lineno: int, index: int, ctx: Context, *,
                 checked: bool = False) -> RequestSpec: ...


def _from_object(
    obj: dict[str, Any], lineno: int, index: int, ctx: Context, checked: bool
) -> RequestSpec:
    if not _FIELD_SET.issuperset(obj):
        unknown = next(k for k in obj if k not in _FIELD_SET)
        if unknown == "custom_id":
            raise SpecError(f'"custom_id" is a field of the OpenAI Batch format, but '
                            f"{_one_format(ctx)}")
        raise SpecError(f'unknown field "{unknown}" (expected: {", ".join(FIELDS)})')
    if "url" not in obj:
        raise SpecError('"url" is missing')
    url, used = _url(obj["url"], ctx, checked)
    spec_id = _check_id(obj.get("id"), lineno)
    method = obj.get("method", "GET")
    if method.__class__ is not str or method not in _METHOD_SET:
        method = _check_method(method)
    if "json" in obj and "data" in obj:
        raise SpecError('give either "json" or "data", not both')
    params = None
    if obj.get("params") is not None:
        params, in_params = _check_params(obj["params"], ctx.env)
        if in_params:
            used = [*used, *in_params]
    data = _check_data(obj["data"]) if obj.get("data") is not None else None

    line_headers = obj.get("headers")
    if line_headers is None:
        return RequestSpec(spec_id, index, lineno, method, url, ctx.headers, params,
                           obj.get("json"), "json" in obj, data, ctx.sensitive,
                           (*ctx.secrets, *used) if used else ctx.secrets)
    headers = dict(ctx.headers)
    sensitive = set(ctx.sensitive)
    secrets = [*ctx.secrets, *used]
    if not isinstance(line_headers, dict):
        raise SpecError(f'"headers" must be an object (got {_describe(line_headers)})')
    for name, value in line_headers.items():
        if not _TOKEN.match(name):
            raise SpecError(f"header name {name!r} is not a valid HTTP header name")
        if isinstance(value, bool) or not isinstance(value, _SCALARS):
            raise SpecError(f'header "{name}" must be a string (got {_describe(value)})')
        value = str(value)
        _check_header_value(name, value)
        filled, found = fill_env(value, ctx.env, f'header "{name}"')
        lower = name.lower()
        for existing in [n for n in headers if n.lower() == lower]:
            del headers[existing]
        headers[name] = filled
        if found or is_sensitive(name):
            sensitive.add(lower)
            secrets.extend(found)
            secrets.extend(secret_parts(filled))
        else:
            sensitive.discard(lower)
    return RequestSpec(
        spec_id, index, lineno, method, url, headers, params,
        obj.get("json"), "json" in obj, data, frozenset(sensitive), tuple(secrets),
    )


def _from_batch(
    obj: dict[str, Any], lineno: int, index: int, ctx: Context, checked: bool
) -> RequestSpec:
    """A line of an OpenAI Batch input: ``{"custom_id", "method", "url", "body"}``."""
    if not _BATCH_FIELD_SET.issuperset(obj):
        unknown = next(k for k in obj if k not in _BATCH_FIELD_SET)
        hint = f"; {_one_format(ctx)}" if unknown in _FIELD_SET else ""
        raise SpecError(f'unknown field "{unknown}" in an OpenAI Batch line '
                        f'(expected: {", ".join(BATCH_FIELDS)}){hint}')
    custom_id = obj.get("custom_id")
    if custom_id is None:
        raise SpecError('"custom_id" is missing')
    if not isinstance(custom_id, str) or not custom_id:
        raise SpecError(f'"custom_id" must be a non-empty string (got {_describe(custom_id)})')
    if "url" not in obj:
        raise SpecError('"url" is missing')
    url, used = _url(obj["url"], ctx, checked)
    method = _check_method(obj.get("method", "POST"))
    return RequestSpec(custom_id, index, lineno, method, url, ctx.headers, None,
                       obj.get("body"), "body" in obj, None, ctx.sensitive,
                       (*ctx.secrets, *used) if used else ctx.secrets)


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


def _salvage_id(raw: bytes, lineno: int, key: str) -> str | int:
    try:
        value = json.loads(raw)
    except ValueError:
        return lineno
    if isinstance(value, dict):
        candidate = value.get(key)
        if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
            return candidate
    return lineno


def validate(
    handle: IO[bytes], ctx: Context, *, skip_invalid: bool, cache_bytes: int = CACHE_BYTES,
    parse: LineParser = parse_line,
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
            item = parse(raw, lineno, index, ctx)
            first = seen.get(item.id)
            if first is not None:
                raise SpecError(f"duplicate {ctx.id_field} {item.id!r} "
                                f"(first on line {first})")
            seen[item.id] = lineno
        except SpecError as exc:
            message = f"{ctx.label}:{lineno}: {exc}"
            if not skip_invalid:
                raise InputError(message) from None
            checked.invalid[lineno] = message
            checked.invalid_ids[lineno] = _salvage_id(raw, lineno, ctx.id_field)
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
    parse: LineParser = parse_line,
) -> Iterator[RequestSpec | InvalidLine]:
    """The requests (and invalid lines as such) of an input validated by ``validate``
    (with the same ``parse``), skipping ids in ``done``."""
    invalid = checked.invalid
    index = 0
    for lineno, raw in read_lines(handle):
        item: RequestSpec | InvalidLine
        if lineno in invalid:
            item = InvalidLine(checked.invalid_ids[lineno], index, lineno, invalid[lineno])
        else:
            try:
                item = parse(raw, lineno, index, ctx, checked=True)
            except SpecError as exc:  # the file changed since it was validated
                item = InvalidLine(_salvage_id(raw, lineno, ctx.id_field), index, lineno,
                                   f"{ctx.label}:{lineno}: {exc}")
        index += 1
        if item.id in done:
            continue
        yield item
