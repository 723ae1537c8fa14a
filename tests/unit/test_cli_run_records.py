"""The records of ``fanout run``: strict JSON whatever the function returned."""

from __future__ import annotations

import json
from typing import Any

import fanout
from fanout.cli._run_input import BadItem, InvalidInput, Item
from fanout.cli._run_output import Encoder, Tally, summary_document


def strict(line: bytes) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(name)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    return json.loads(line, parse_constant=refuse)


def ok(value: Any, item: Any = 1, index: int = 0) -> fanout.Result[Any]:
    return fanout.Result(index, Item(index, 1, item), value, None, 2, 0.0015)


def test_record_shape_with_and_without_id() -> None:
    line, error_type = Encoder().line(ok(5, item={"id": "a"}, index=3))
    assert strict(line) == {"id": "a", "index": 3, "ok": True, "value": 5, "attempts": 2,
                            "elapsed_ms": 1.5}
    assert error_type is None
    assert list(strict(line)) == ["id", "index", "ok", "value", "attempts", "elapsed_ms"]
    assert "id" not in strict(Encoder().line(ok(5, item={"id": True}))[0])


def test_failures_and_bad_items() -> None:
    failed = fanout.Result(0, Item(0, 1, 1), None, ValueError("boom"), 1, 0.0)
    assert strict(Encoder().line(failed)[0])["error"] == {"type": "ValueError", "message": "boom"}
    bad = fanout.Result(4, BadItem(4, 9, "<stdin>:9: invalid JSON"), None,
                        InvalidInput("<stdin>:9: invalid JSON"), 1, 0.0)
    line, error_type = Encoder().line(bad)
    assert error_type == "InvalidInput" and strict(line)["index"] == 4
    tally = Tally()
    tally.add(bad, error_type)
    assert (tally.invalid, tally.failures, tally.errors["InvalidInput"]) == (1, 1, 1)


def test_a_cycle_or_deep_nesting_is_a_failure_not_a_crash() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    deep: list[Any] = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    for value in (cycle, deep):
        for encoder in (Encoder(), Encoder(default_str=True)):
            line, error_type = encoder.line(ok(value))
            rec = strict(line)
            assert error_type == "NotJSONSerializable" and rec["ok"] is False
            assert "of type list" in rec["error"]["message"]
            assert list(rec) == ["index", "ok", "error", "attempts", "elapsed_ms"]


def test_default_str_only_changes_what_json_cannot_hold() -> None:
    value = {"n": 1.5, "s": {2}, 3: [float("-inf"), None], None: True}
    rec = strict(Encoder(default_str=True).line(ok(value))[0])
    assert rec["value"] == {"n": 1.5, "s": "{2}", "3": ["-inf", None], "null": True}


def test_summary_document_counts() -> None:
    tally = Tally(skipped=2, failed_before=1)
    tally.items, tally.todo = 5, 3
    tally.add(ok(1), None)
    retried = fanout.Result(1, Item(1, 2, 2), None, KeyError("k"), 3, 0.0)
    tally.add(retried, "KeyError")
    doc = summary_document(tally, wall=2.0, exit_code=1, interrupted="SIGINT", info=None)
    assert doc == {"items": 5, "done": 2, "skipped": 2, "failed_before": 1, "ok": 1,
                   "failures": 1, "invalid": 0, "retries": 3, "errors": {"KeyError": 1},
                   "throughput": 1.0, "wall_time": 2.0, "interrupted": "SIGINT",
                   "exit_code": 1, "mode": None, "mode_reason": None, "concurrency": None,
                   "stuck": None}
