"""fanout: run a batch of calls fast and safely.

Map of the package:
    _api.py           map, imap (sync, on a private loop thread), amap, aimap
    _orchestrator.py  the one scheduler: window, batching, retries, ordering, cancellation
    executors/        how one call runs: one module per mode, one registry
    _limits.py        rate limiting (GCRA) and the adaptive concurrency cap
    _retry.py         retry policy: backoff with full jitter, Retry-After
    _result.py        Result;  _errors.py: the exception tree
    http/, mock/, bench/  the HTTP runner, the mock API server, the benchmark
    cli/              the ``fanout`` command and its subcommands (the library never imports it)
"""

from fanout._api import aimap, aimap_batches, amap, imap, map
from fanout._errors import (
    CallTimeout,
    ConfigError,
    FanoutError,
    Interrupted,
    NotPicklableError,
    RemoteError,
    WorkerCrashed,
)
from fanout._limits import parse_rate
from fanout._result import Result

__all__ = [
    "CallTimeout",
    "ConfigError",
    "FanoutError",
    "Interrupted",
    "NotPicklableError",
    "RemoteError",
    "Result",
    "WorkerCrashed",
    "aimap",
    "aimap_batches",
    "amap",
    "imap",
    "map",
    "parse_rate",
]
