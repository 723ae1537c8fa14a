"""Progress in a Jupyter notebook, on a real kernel: a widget, or text updated in place."""

from __future__ import annotations

import sys
from typing import Any

from _notebook import run_notebook

WORK = """
import time
import fanout

def work(x):
    time.sleep(0.002)
    if x % 50 == 7:
        raise ValueError(x)
    return x
"""
FINAL = "finished 200/200 (100%)"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def outputs_of(cell: Any) -> list[dict[str, Any]]:
    return [dict(output) for output in cell.outputs]


def assert_no_warning_and_no_empty_pre(cell: Any) -> None:
    for output in outputs_of(cell):
        if output.get("name") == "stderr":  # not rich's "install ipywidgets" warning...
            # ...only fanout's own line saying the run had failures
            assert output["text"].startswith("fanout.map(work): 4 of 200 items failed"), output
        html = output.get("data", {}).get("text/html", "")
        assert "<pre" not in html, output  # rich's empty live display


def widget_states(notebook: Any) -> dict[str, dict[str, Any]]:
    stored = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    return {model_id: model["state"] for model_id, model in stored["state"].items()}


def children(states: dict[str, dict[str, Any]], model_id: str) -> list[dict[str, Any]]:
    return [states[ref.removeprefix("IPY_MODEL_")] for ref in states[model_id]["children"]]


def test_default_progress_in_a_notebook_is_a_widget_ending_on_the_final_count() -> None:
    notebook = run_notebook(
        [
            "import sys\nprint(sys.executable)",
            WORK,
            "results = fanout.map(work, range(200), concurrency=4)\nlen(results)",
        ]
    )
    check, _, run = notebook.cells
    assert outputs_of(check)[0]["text"].strip() == sys.executable  # this venv's Python
    assert_no_warning_and_no_empty_pre(run)
    views = [o for o in outputs_of(run) if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1, outputs_of(run)
    data = views[0]["data"]
    # where widgets are not rendered (a saved notebook on a forge), the final line is the text
    assert FINAL in data["text/plain"] and "4 failed" in data["text/plain"]
    states = widget_states(notebook)
    box_id = data[WIDGET_VIEW]["model_id"]
    title, bar, status = children(states, box_id)
    assert title["value"] == "work"
    assert (bar["value"], bar["max"]) == (200, 200)
    assert bar["bar_style"] == "danger"  # some failed
    assert "200/200 (100%)" in status["value"] and "overall" in status["value"]
    assert '<span style="color: red">4 failed</span>' in status["value"]
    assert outputs_of(run)[-1]["data"]["text/plain"] == "200"


def test_without_ipywidgets_progress_is_one_text_output_updated_in_place() -> None:
    notebook = run_notebook(
        [
            'import sys\nsys.modules["ipywidgets"] = None  # as if not installed',
            WORK,
            "results = fanout.map(work, range(200), concurrency=4, progress=True)\nlen(results)",
        ]
    )
    run = notebook.cells[2]
    assert_no_warning_and_no_empty_pre(run)
    displays = [o for o in outputs_of(run) if o["output_type"] == "display_data"]
    assert len(displays) == 1, outputs_of(run)  # updated in place, not one output per tick
    data = displays[0]["data"]
    assert set(data) == {"text/plain"}
    text = data["text/plain"]
    assert text.startswith("█" * 24)
    assert f"fanout work: {FINAL}" in text and "/s overall" in text and "4 failed" in text
