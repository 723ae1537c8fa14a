"""The configuration of a run: the keywords of ``map``/``imap``/``amap``/``aimap``,
defined once (``Options``), checked once (``configure``) into one frozen
``RunConfig`` of plain data, built by keyword only. Defaults are written here
(and the retry ones in ``_retry``), nowhere else.
"""

from __future__ import annotations

import asyncio
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from fanout._errors import ConfigError, UnknownOption
from fanout._limits import parse_rate
from fanout._progress import progress_interval
from fanout._quota import Resource
from fanout._retry import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER,
    RetryMatch,
    RetryPolicy,
)
from fanout.executors import Executor, check_mode, executor_class
from fanout.executors._calls import is_async_callable

RetryOn = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | list[type[BaseException]]
    | Callable[[BaseException], bool]
    | None
)
Errors = Literal["collect", "raise"]


class Options(TypedDict, total=False):
    """The keywords of ``fanout.map``, ``imap``, ``amap`` and ``aimap``; each is
    described in ``fanout.map``'s docstring."""

    mode: str
    executor: Executor | None
    concurrency: int | str | None
    ordered: bool
    timeout: float | None
    retries: int
    retry_on: RetryOn
    rate: str | float | None
    budget: str | float | None
    cost: Callable[[Any], float] | None
    server_limits: Mapping[str, str | float] | None
    progress: bool | None
    progress_interval: float | None
    progress_details: Callable[[], object] | None
    errors: Errors
    max_retry_after: float
    backoff: float
    max_backoff: float


class AsyncOptions(Options, total=False):
    """``Options`` plus ``stop``, for ``amap`` and ``aimap``."""

    stop: asyncio.Event | None


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run needs besides the function and the items, checked."""

    #: a registered mode: the one asked for, or the one ``auto`` starts in
    mode: str
    #: calls at once; under ``auto_concurrency`` the most the limit may reach
    concurrency: int
    #: ``concurrency="auto"``: a latency-gradient limit finds it, up to ``concurrency``
    auto_concurrency: bool = False
    #: ``mode="auto"`` with a sync function: measure the first calls, then choose
    auto: bool = False
    #: the concurrency the user gave, if any (``auto`` uses it for the mode it picks)
    concurrency_given: int | None = None
    #: why this mode, e.g. "thread: asked for"
    mode_reason: str = ""
    #: the user's configured executor, or None for a new one of ``mode``
    executor: Executor | None = None
    ordered: bool = True
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate: float | None = None
    #: cost units per second, and the cost of an item
    budget: float | None = None
    cost: Callable[[Any], float] | None = None
    #: the server's limits known in advance: ("requests" or "tokens", units per second)
    server_limits: tuple[tuple[Resource, float], ...] = ()
    progress: bool | None = None
    #: seconds between plain progress lines (stderr not a terminal)
    progress_interval: float = 10.0
    #: more live text for the progress display: called from the display's thread
    progress_details: Callable[[], object] | None = None
    errors: Errors = "collect"
    #: names the run in progress and log lines
    description: str = "fanout"
    #: the consumer keeps every result (``map``)
    keep: bool = False


# What peers call these knobs: a misspelt keyword gets "did you mean ...?".
_PEER_NAMES = {
    "max_workers": "concurrency",
    "n_jobs": "concurrency",
    "workers": "concurrency",
    "num_workers": "concurrency",
    "n_workers": "concurrency",
    "processes": "concurrency",
    "threads": "concurrency",
    "pool_size": "concurrency",
    "max_concurrency": "concurrency",
    "limit": "concurrency",
    "max_retries": "retries",
    "retry": "retries",
    "tries": "retries",
    "attempts": "retries",
    "rate_limit": "rate",
    "max_rate": "rate",
    "max_per_second": "rate",
    "token_budget": "budget",
    "tokens_per_minute": "budget",
    "tpm": "budget",
    "weight": "cost",
    "backend": "mode",
    "prefer": "mode",
    "return_exceptions": "errors",
    "unordered": "ordered",
    "show_progress": "progress",
    "chunksize": "",
    "chunk_size": "",
}


def _unknown(name: str, api: str, known: tuple[str, ...]) -> UnknownOption:
    peer = _PEER_NAMES.get(name)
    if peer == "":
        hint = " (fanout sends tiny calls in batches by itself: leave it out)"
    elif peer:
        hint = f" (did you mean {peer}=?)"
    else:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}=?)" if close else ""
    return UnknownOption(f"{api}() got an unexpected keyword argument {name!r}{hint}")


def _number(name: str, value: Any, *, positive: bool) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value <= 0 if positive else value < 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a number of seconds {bound} (got {name}={value!r})")
    return float(value)


_AUTO = re.compile(r"^\s*auto\s*(?::\s*(\d+)\s*)?$", re.IGNORECASE)


def _concurrency(value: Any) -> tuple[int | None, bool]:
    """``(ceiling or None for the mode's default, auto)`` from an int, ``"auto"`` or
    ``"auto:64"``."""
    if value is None:
        return None, False
    if isinstance(value, str):
        match = _AUTO.match(value)
        if match is not None and match.group(1) != "0":
            return (int(match.group(1)) if match.group(1) else None), True
    elif not isinstance(value, bool) and isinstance(value, int) and value >= 1:
        return value, False
    raise ConfigError(
        "concurrency must be an int >= 1, 'auto' or 'auto:N' (N the most at once) "
        f"(got concurrency={value!r})"
    )


def _retry_on(value: Any) -> RetryMatch:
    """Exception classes as a tuple, or a predicate; anything else is an error.

    An exception class is callable too: it is checked first, so
    ``retry_on=ConnectionError`` means "only ConnectionError", not a predicate.
    """
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, (tuple, list)):
        if value and all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
            return tuple(value)
    elif callable(value) and not isinstance(value, type):
        predicate: Callable[[BaseException], bool] = value
        return predicate
    raise ConfigError(
        "retry_on must be an exception class, a tuple or list of them, or a function "
        f"fn(exc) -> bool (got retry_on={value!r})"
    )


def _server_limits(value: Any, cost: Any) -> tuple[tuple[Resource, float], ...]:
    """``{"requests": "3000/min", "tokens": "150000/min"}`` -> per-second limits."""
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value or not set(value) <= {"requests", "tokens"}:
        raise ConfigError(
            "server_limits must be a dict of 'requests' and/or 'tokens' to limits like "
            f"'3000/min' (got server_limits={value!r})"
        )
    if "tokens" in value and cost is None:
        raise ConfigError(
            f"server_limits={dict(value)!r} needs cost=fn, the tokens of one item (a "
            "'tokens' limit counts the cost of the calls)"
        )
    limits: list[tuple[Resource, float]] = []
    for resource in ("requests", "tokens"):
        if resource in value:
            rate = parse_rate(value[resource], name=f"server_limits[{resource!r}]",
                              unit=resource)
            assert rate is not None
            limits.append((resource, rate))
    return tuple(limits)


def _check_fn(fn: Any) -> None:
    if callable(fn):
        return
    if asyncio.iscoroutine(fn):
        fn.close()
        raise ConfigError(
            "expected a function, but got a coroutine object: you probably wrote "
            "fanout.map(f(x), items); write fanout.map(f, items)"
        )
    raise ConfigError(f"fn must be callable (got {fn!r})")


def configure(
    fn: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    api: str,
    allowed: tuple[str, ...] = tuple(Options.__annotations__),
    keep: bool = False,
) -> RunConfig:
    """Check ``options`` (the keywords given to ``api``) and resolve the defaults."""
    _check_fn(fn)
    for name in options:
        if name not in allowed:
            raise _unknown(name, api, allowed)
    get = options.get

    executor = get("executor")
    if executor is not None and not isinstance(executor, Executor):
        raise ConfigError(
            f"executor must be an executor instance such as fanout.ThreadExecutor() "
            f"(got executor={executor!r})"
        )
    asked = check_mode(get("mode", "auto"))
    if executor is not None:
        if asked not in ("auto", executor.mode):
            raise ConfigError(
                f"mode={asked!r} and executor={type(executor).__name__}(...) disagree: "
                "give one of them"
            )
        mode = executor.mode
        reason = f"{mode}: executor={type(executor).__name__}(...)"
    elif asked != "auto":
        mode, reason = asked, f"{asked}: asked for"
    elif is_async_callable(fn):
        mode, reason = "async", "async: a coroutine function"
    else:
        mode, reason = "thread", "thread: measuring the first calls"
    auto = asked == "auto" and executor is None and mode == "thread"
    cls = type(executor) if executor is not None else executor_class(mode)

    concurrency, auto_concurrency = _concurrency(get("concurrency"))
    given = concurrency
    if concurrency is None:
        concurrency = (executor if executor is not None else cls()).default_concurrency()
    if cls.max_concurrency is not None:
        concurrency = min(concurrency, cls.max_concurrency)

    ordered = get("ordered", True)
    if not isinstance(ordered, bool):
        raise ConfigError(f"ordered must be True or False (got ordered={ordered!r})")
    timeout = get("timeout")
    if timeout is not None:
        timeout = _number("timeout", timeout, positive=True)
    retries = get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be an int >= 0 (got retries={retries!r})")
    retry = RetryPolicy(
        retries=retries,
        retry_on=_retry_on(get("retry_on")),
        backoff=_number("backoff", get("backoff", DEFAULT_BACKOFF), positive=False),
        max_backoff=_number("max_backoff", get("max_backoff", DEFAULT_MAX_BACKOFF),
                            positive=False),
        max_retry_after=_number("max_retry_after",
                                get("max_retry_after", DEFAULT_MAX_RETRY_AFTER),
                                positive=False),
    )
    progress = get("progress")
    if progress is not None and not isinstance(progress, bool):
        raise ConfigError(f"progress must be True, False or None (got progress={progress!r})")
    interval = progress_interval(get("progress_interval"))
    details = get("progress_details")
    if details is not None and not callable(details):
        raise ConfigError("progress_details must be a function fn() -> text for the progress "
                          f"display (got progress_details={details!r})")
    errors = get("errors", "collect")
    if errors not in ("collect", "raise"):
        raise ConfigError(f"errors must be 'collect' or 'raise' (got errors={errors!r})")
    stop = get("stop")
    if stop is not None and not isinstance(stop, asyncio.Event):
        raise ConfigError(f"stop must be an asyncio.Event (got stop={stop!r})")
    budget = parse_rate(get("budget"), name="budget", unit="cost units")
    cost = get("cost")
    if cost is not None and not callable(cost):
        raise ConfigError(f"cost must be a function cost(item) -> number (got cost={cost!r})")
    if budget is not None and cost is None:
        raise ConfigError(
            f"budget={get('budget')!r} needs cost=fn, the cost of one item in the budget's "
            "units (for example its estimated tokens); for a limit on calls use rate="
        )
    server_limits = _server_limits(get("server_limits"), cost)
    return RunConfig(
        mode=mode,
        concurrency=concurrency,
        auto_concurrency=auto_concurrency,
        auto=auto,
        concurrency_given=given,
        mode_reason=reason,
        executor=executor,
        ordered=ordered,
        timeout=timeout,
        retry=retry,
        rate=parse_rate(get("rate")),
        budget=budget,
        cost=cost,
        server_limits=server_limits,
        progress=progress,
        progress_interval=interval,
        progress_details=details,
        errors=errors,
        description=getattr(fn, "__name__", None) or type(fn).__name__,
        keep=keep,
    )


#: the keywords of the sync API and of the async API
SYNC_OPTIONS: tuple[str, ...] = tuple(Options.__annotations__)
ASYNC_OPTIONS: tuple[str, ...] = tuple(AsyncOptions.__annotations__)
