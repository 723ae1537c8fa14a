"""Executors: how the calls of a run are executed — the only thing that differs
between modes. The protocol is documented in ``_base.py``.

    _base.py        the Executor protocol (what a backend implements)
    _calls.py       running a batch of calls: the part every executor shares
    _sequential.py  _thread.py  _async.py  _process.py (+ _worker.py)   one mode each

``_REGISTRY`` below is the one list of modes: the API's ``mode=`` values, the
error messages and the CLI's ``--mode`` choices all come from it. Adding a
backend is one module with one ``Executor`` subclass plus one line here; its
class is then also reachable as ``fanout.<ClassName>``. A backend's module is
imported only when its mode is used, so optional dependencies stay optional.
"""

from __future__ import annotations

import difflib
import importlib

from fanout._errors import ConfigError
from fanout.executors._base import Executor, Stop

#: mode name -> "module:Class" of its executor
_REGISTRY: dict[str, str] = {
    "sequential": "fanout.executors._sequential:SequentialExecutor",
    "thread": "fanout.executors._thread:ThreadExecutor",
    "async": "fanout.executors._async:AsyncExecutor",
    "process": "fanout.executors._process:ProcessExecutor",
    "dask": "fanout.executors._dask:DaskExecutor",
}

#: every value ``mode=`` accepts
MODES: tuple[str, ...] = (*_REGISTRY, "auto")

__all__ = [
    "MODES",
    "Executor",
    "Stop",
    "class_names",
    "executor_class",
    "executor_class_named",
    "new_executor",
]


def check_mode(mode: object) -> str:
    """``mode`` if it is known, else a ConfigError listing the modes (with a hint)."""
    if isinstance(mode, str) and mode in MODES:
        return mode
    close = difflib.get_close_matches(str(mode), MODES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"mode {mode!r} is not known; expected one of: {', '.join(MODES)}{hint}")


def executor_class(mode: str) -> type[Executor]:
    """The executor class of a registered mode (its module is imported now)."""
    module_name, _, class_name = _REGISTRY[mode].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # a backend whose optional dependency is missing says how to install it
        raise ConfigError(f"mode {mode!r} is not available: {exc}") from None
    cls: type[Executor] = getattr(module, class_name)
    return cls


def new_executor(mode: str) -> Executor:
    """A fresh executor of a registered mode, with its default settings."""
    return executor_class(mode)()


def class_names() -> dict[str, str]:
    """Public class name -> mode, for ``fanout.<ClassName>``."""
    return {target.partition(":")[2]: mode for mode, target in _REGISTRY.items()}


def executor_class_named(name: str) -> type[Executor] | None:
    """The executor class published as ``fanout.<name>``, or None."""
    mode = class_names().get(name)
    return executor_class(mode) if mode is not None else None
