"""The output of ``fanout run``: one strict-JSON record per item, and the counts.

A record is ``{"id"?, "index", "ok", "value" | "error": {"type", "message"},
"attempts", "elapsed_ms"}`` (``id`` when the item is an object with a string or
integer ``id``). Every line parses with a strict JSON parser: a return value
that is not JSON (a set, bytes, NaN...) makes the record a failure that says so
and how to fix it, unless ``--default str`` asked for ``str(value)`` instead.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from fanout import Result
from fanout._info import RunInfo
from fanout.cli._run_input import BadItem, Item

NOT_JSON = "NotJSONSerializable"
_FIX = ("return JSON data (dict, list, str, int, float, bool or None), or pass "
        "--default str to write str(value) instead")
_strict = json.JSONEncoder(allow_nan=False).encode
_lenient = json.JSONEncoder(allow_nan=False, default=str).encode


def _as_text(value: Any, seen: frozenset[int] = frozenset()) -> Any:
    """``value`` with what ``default=str`` cannot reach made text: NaN and
    infinities, and dict keys JSON has no form for."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if id(value) in seen:
        return value  # a cycle: left for the encoder to report
    if isinstance(value, dict):
        inner = seen | {id(value)}
        return {_key(k): _as_text(v, inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        inner = seen | {id(value)}
        return [_as_text(v, inner) for v in value]
    return value


def _key(key: Any) -> Any:
    if key is None or isinstance(key, (str, int)):
        return key
    if isinstance(key, float) and math.isfinite(key):
        return key
    return str(key)


def _not_json(value: Any, exc: Exception) -> str:
    detail = str(exc)
    if isinstance(exc, ValueError) and "Out of range float" in detail:
        detail = "NaN and Infinity are not JSON"
    elif isinstance(exc, RecursionError):
        detail = "nested too deeply"
    return f"the value (of type {type(value).__name__}) is not JSON: {detail}; {_FIX}"


class Encoder:
    """Turns a finished ``Result`` into its output line (bytes, newline included)."""

    def __init__(self, *, default_str: bool = False) -> None:
        self._encode = _lenient if default_str else _strict
        self._default_str = default_str

    def line(self, result: Result[Any]) -> tuple[bytes, str | None]:
        """The line, and the error type when the record is a failure."""
        item: Item | BadItem = result.item
        rec: dict[str, Any] = {}
        key = item.id
        if key is not None:
            rec["id"] = key
        rec["index"] = item.index
        error = result.error
        if error is None:
            rec["ok"] = True
            rec["value"] = result.value
            error_type = None
        else:
            error_type = type(error).__name__
            rec["ok"] = False
            rec["error"] = {"type": error_type, "message": str(error) or error_type}
        rec["attempts"] = result.attempts
        rec["elapsed_ms"] = round(result.elapsed * 1000, 3)
        try:
            text = self._encode(rec)
        except (TypeError, ValueError, RecursionError) as exc:
            text, error_type = self._fallback(rec, exc)
        return (text + "\n").encode(), error_type

    def _fallback(self, rec: dict[str, Any], exc: Exception) -> tuple[str, str | None]:
        """The line when the value did not encode: as text with ``--default str``,
        else (or if even that fails) a failure saying why."""
        value = rec["value"]
        if self._default_str and not isinstance(exc, RecursionError):
            try:
                return self._encode({**rec, "value": _as_text(value)}), None
            except (TypeError, ValueError, RecursionError) as again:
                exc = again
        failed = {k: v for k, v in rec.items() if k not in ("ok", "value", "attempts")}
        failed["ok"] = False
        failed["error"] = {"type": NOT_JSON, "message": _not_json(value, exc)}
        failed["attempts"] = rec["attempts"]
        failed["elapsed_ms"] = failed.pop("elapsed_ms")
        return self._encode(failed), NOT_JSON


class Tally:
    """The counts of one run of ``fanout run``, for the stderr line and the
    ``--summary-json`` document."""

    def __init__(self, *, skipped: int = 0, failed_before: int = 0) -> None:
        #: items in the input, and those of them this run had to do; None until
        #: known (a pipe: when it ends)
        self.items: int | None = None
        self.todo: int | None = None
        #: records already in the output (``--resume``), of which failed
        self.skipped = skipped
        self.failed_before = failed_before
        self.done = 0
        self.ok = 0
        self.failures = 0
        self.invalid = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def add(self, result: Result[Any], error_type: str | None) -> None:
        """Count one written record."""
        self.done += 1
        if result.attempts > 1:
            self.retries += result.attempts - 1
        if error_type is None:
            self.ok += 1
            return
        self.failures += 1
        self.errors[error_type] += 1
        if type(result.item) is BadItem:
            self.invalid += 1

    @property
    def written(self) -> int:
        """Records in the output now: those from before and those of this run."""
        return self.skipped + self.done


def summary_document(tally: Tally, *, wall: float, exit_code: int, interrupted: str | None,
                     info: RunInfo | None) -> dict[str, Any]:
    """The ``--summary-json`` document: ``throughput`` in items per second,
    ``wall_time`` in seconds; ``skipped`` were already in the output; ``mode`` the
    mode the calls ran in (what ``auto`` chose) and ``mode_reason`` why; ``stuck``
    calls timed out that could not be stopped (null when nothing was left to run)."""
    return {
        "items": tally.items,
        "done": tally.done,
        "skipped": tally.skipped,
        "failed_before": tally.failed_before,
        "ok": tally.ok,
        "failures": tally.failures,
        "invalid": tally.invalid,
        "retries": tally.retries,
        "errors": dict(tally.errors.most_common()),
        "throughput": round(tally.done / wall, 3) if wall > 0 else None,
        "wall_time": round(wall, 3),
        "interrupted": interrupted,
        "exit_code": exit_code,
        "mode": info.mode if info is not None else None,
        "mode_reason": info.mode_reason if info is not None else None,
        "concurrency": info.concurrency if info is not None else None,
        "stuck": info.stuck if info is not None else None,
    }
