"""fanout: run a batch of calls fast and safely.

Map of the package (ARCHITECTURE.md draws the data path):
    _api.py           map, imap (sync, on a private loop thread), amap, aimap, aimap_batches
    _config.py        the keywords of the API, defined and checked once -> RunConfig
    _orchestrator.py  the one scheduler, built from small parts:
      _input.py         lazy input      _flow.py      the start gate (limits, overload)
      _deadlines.py     per-call deadlines              _retry.py     retry policy, scheduler
      _reorder.py       ordered output  _batching.py  tiny calls in batches
    executors/        how one call runs: one module per mode, one registry (the mode list)
    _limits.py        rate parsing, GCRA rate limiter, adaptive concurrency cap
    _result.py        Result, Results;  _errors.py: the exception tree
    http/, mock/, bench/  the HTTP runner, the mock API server, the benchmark
    cli/              the ``fanout`` command and its subcommands (the library never imports it)
"""

from typing import Any as _Any

from fanout._api import aimap, aimap_batches, amap, imap, map
from fanout._errors import (
    BatchError,
    CallTimeout,
    ConfigError,
    FanoutError,
    Interrupted,
    NotPicklableError,
    RemoteError,
    SlotsExhausted,
    WorkerCrashed,
)
from fanout._info import RunInfo, last_run
from fanout._limits import parse_rate
from fanout._result import Result, Results
from fanout.executors import Executor
from fanout.executors import class_names as _class_names
from fanout.executors import executor_class_named as _executor_class_named

__all__ = [
    "BatchError",
    "CallTimeout",
    "ConfigError",
    "Executor",
    "FanoutError",
    "Interrupted",
    "NotPicklableError",
    "RemoteError",
    "Result",
    "Results",
    "RunInfo",
    "SlotsExhausted",
    "WorkerCrashed",
    "aimap",
    "aimap_batches",
    "amap",
    "imap",
    "last_run",
    "map",
    "parse_rate",
    *sorted(_class_names()),  # one executor class per registered mode: fanout.ThreadExecutor...
]


def __getattr__(name: str) -> _Any:
    # Executor classes are published from the registry, imported on first use
    # (a backend's optional dependencies are imported only if it is used).
    cls = _executor_class_named(name)
    if cls is None:
        raise AttributeError(f"module 'fanout' has no attribute {name!r}")
    return cls


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
