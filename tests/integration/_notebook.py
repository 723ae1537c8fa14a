"""Run notebook cells on a real Jupyter kernel (this venv's Python), for notebook behaviour.

``run_notebook(["import fanout", "fanout.map(...)"])`` returns the executed notebook: each
cell's ``outputs``, and the final widget states in ``metadata.widgets``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

_KERNEL_NAME = "fanout-test-python"


def run_notebook(
    cells: list[str], timeout: float = 60.0, cwd: Path | None = None
) -> nbformat.NotebookNode:
    """Execute ``cells`` in order in a fresh kernel and return the executed notebook.

    The kernel runs ``sys.executable`` (a kernelspec written for the call: an installed
    ``python3`` spec may name a bare ``python`` found on PATH, another interpreter), in
    ``cwd`` (default: a temporary folder). A cell that raises fails the call
    (``nbclient.exceptions.CellExecutionError``); ``timeout`` bounds each cell and the
    kernel's start.
    """
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    with tempfile.TemporaryDirectory(prefix="fanout-nb-") as folder:
        spec_dir = Path(folder) / "kernels" / _KERNEL_NAME
        write_kernel_spec(str(spec_dir))
        specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
        manager = KernelManager(
            kernel_name=_KERNEL_NAME,
            kernel_spec_manager=specs,
            # local sockets in the temp folder: no TCP port, no warning about one
            transport="ipc",
            ip=str(Path(folder) / "kernel"),
        )
        client = NotebookClient(
            notebook,
            km=manager,
            timeout=timeout,
            startup_timeout=timeout,
            resources={"metadata": {"path": str(cwd or folder)}},
        )
        client.execute(cleanup_kc=True)  # stop the kernel and close its sockets
    return notebook
