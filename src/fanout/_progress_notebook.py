"""Progress in a Jupyter notebook: a live widget, or a line of text updated in place.

A kernel's stderr is not a terminal, and rich's live display needs ipywidgets there (without
them it warns and leaves an empty ``<pre>``), so notebooks get displays of their own, sent
through IPython's display machinery:

- with ipywidgets (8 or later): a bar, a title and a status line, like ``tqdm.auto``;
- without: one output whose plain text (a text bar and the status line) is replaced each tick
  through a display id.

Either way the output's ``text/plain`` ends as the final status line, so a saved notebook
shows the final count even where widgets are not rendered. The display is made from the
display's own thread; the kernel sends it to the cell being run.
"""

from __future__ import annotations

import html
import importlib
import sys
from typing import Any

from fanout._progress_text import Snapshot, failed_text, plain_line, status_parts, text_bar


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel), where cells show displays."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has imported it
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return getattr(shell, "kernel", None) is not None


def notebook_view() -> WidgetView | TextView:
    """The widget view when ipywidgets 8+ can be imported, else the text view."""
    try:
        widgets = importlib.import_module("ipywidgets")
    except ImportError:
        return TextView()
    if int(str(widgets.__version__).split(".")[0]) < 8:
        return TextView()
    return WidgetView(widgets)


class TextView:
    """One output of plain text, replaced in place every tick."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._shown = ""

    def show(self, snap: Snapshot) -> None:
        text = f"{text_bar(snap.fraction)} {plain_line(snap)}"
        if self._handle is None:
            self._handle = _display({"text/plain": text})
        elif text != self._shown:  # a message to the notebook only when the text changed
            self._handle.update({"text/plain": text}, raw=True)
        self._shown = text

    def close(self, snap: Snapshot) -> None:
        self.show(snap)


class WidgetView:
    """A title, a progress bar and a status line, side by side (ipywidgets)."""

    def __init__(self, widgets: Any) -> None:
        self._title = widgets.Label()
        self._bar = widgets.IntProgress(min=0, max=1, value=0)
        self._status = widgets.HTML()
        self._box = widgets.HBox([self._title, self._bar, self._status])
        self._handle: Any = None

    def show(self, snap: Snapshot) -> None:
        self._title.value = snap.description
        bar = self._bar
        if snap.total is None:  # unknown total: a full bar in the "info" colour, like tqdm
            bar.max, bar.value, bar.bar_style = 1, 1, "info"
        else:
            bar.max, bar.value = max(snap.total, 1), min(snap.done, snap.total)
            bar.bar_style = "danger" if snap.failed else ""
        self._status.value = _status_html(snap)
        if self._handle is None:
            self._handle = _display(self._bundle(snap))

    def close(self, snap: Snapshot) -> None:
        self.show(snap)
        if not snap.failed and snap.total is not None and snap.done >= snap.total:
            self._bar.bar_style = "success"
        # the final line as the output's plain text, for where widgets are not rendered
        self._handle.update(self._bundle(snap), raw=True)

    def _bundle(self, snap: Snapshot) -> dict[str, Any]:
        # the widget's own display bundle (IPython's display protocol), with our plain text
        bundle: dict[str, Any] = self._box._repr_mimebundle_()
        bundle["text/plain"] = plain_line(snap)
        return bundle


def _display(bundle: dict[str, Any]) -> Any:
    """Show a raw MIME bundle in the running cell; the handle updates it in place."""
    from IPython.display import display

    return display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]


def _status_html(snap: Snapshot) -> str:
    failed = failed_text(snap) if snap.failed else None
    return ", ".join(
        f'<span style="color: red">{html.escape(part)}</span>' if part == failed
        else html.escape(part)
        for part in status_parts(snap)
    )
