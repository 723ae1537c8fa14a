"""Process mode in the programs people write: scripts, ``python -``, notebooks,
lambdas and closures. Workers never import the program's ``__main__``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import core_jobs as jobs
import pytest

import fanout
from fanout.executors._process import _dumps

HERE = Path(__file__).parent


def _python(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)


ARGPARSE_SCRIPT = """\
import argparse
import fanout

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, required=True)
args = parser.parse_args()


class Point:
    def __init__(self, x):
        self.x = x


def square(p):
    return Point(p.x * p.x)


if __name__ == "__main__":
    results = fanout.map(square, [Point(i) for i in range(args.n)], mode="process",
                         concurrency=2)
    assert all(type(r.value) is Point for r in results), [r.error for r in results]
    print(sum(r.value.x for r in results))
"""


def test_a_guarded_script_with_module_level_argparse_works(tmp_path: Path) -> None:
    # Items and results are instances of a class defined in the script: they
    # travel by value, and come back as the script's own class.
    script = tmp_path / "squares.py"
    script.write_text(ARGPARSE_SCRIPT)
    proc = _python(str(script), "--n", "100")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sum(i * i for i in range(100)))


def test_a_script_piped_to_python_stdin_works() -> None:
    script = ARGPARSE_SCRIPT.replace("parser.parse_args()", "parser.parse_args(['--n', '50'])")
    proc = _python("-", stdin=script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sum(i * i for i in range(50)))


def test_a_script_without_main_guard_runs_once(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""\
        import fanout
        print("start")
        def f(x):
            return x
        print(len(fanout.map(f, range(1000), mode="process")))
    """))
    proc = _python(str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["start", "1000"]


def test_lambdas_and_closures_run_by_value() -> None:
    offset = 10

    def add_offset(x: int) -> int:
        return x + offset

    assert [r.value for r in fanout.map(lambda x: x * 3, range(4), mode="process")] == [
        0, 3, 6, 9]
    assert [r.value for r in fanout.map(add_offset, range(4), mode="process")] == [
        10, 11, 12, 13]


def test_a_function_in_an_importable_module_goes_by_reference() -> None:
    # The worker imports core_jobs itself, so it runs the module's own function.
    results = fanout.map(jobs.pid_of, range(4), mode="process", concurrency=2)
    assert all(r.ok and r.value != os.getpid() for r in results)
    assert b"cloudpickle" not in _dumps(jobs.pid_of)
    assert b"cloudpickle" in _dumps(lambda x: x)


def test_a_truly_unpicklable_function_is_refused_in_one_line() -> None:
    lock = threading.Lock()

    def locked(x: int) -> int:
        with lock:
            return x

    with pytest.raises(fanout.NotPicklableError) as info:
        fanout.map(locked, [1], mode="process")
    message = str(info.value)
    assert "\n" not in message
    assert "locked in test_process_programs.py" in message
    assert "mode='thread'" in message


def test_an_unpicklable_item_is_refused_in_one_line() -> None:
    with pytest.raises(fanout.NotPicklableError) as info:
        fanout.map(jobs.double, [threading.Lock()], mode="process")
    assert "\n" not in str(info.value)
    assert "picklable items" in str(info.value)


# ----------------------------------------------------------------- notebooks


def _run_notebook(cells: list[str], cwd: Path) -> list[str]:
    """Run ``cells`` in a real Jupyter kernel; the text each printed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return ["".join(o.get("text", "") for o in cell.outputs) for cell in nb.cells]


def test_a_function_defined_in_a_notebook_cell_runs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no migration warning from jupyter_core
    out = _run_notebook([
        "import fanout",
        "def cpu_nb(x):\n    return sum(i * i for i in range(x))",
        "rs = fanout.map(cpu_nb, range(20), mode='process', concurrency=2)\n"
        "print([r.error for r in rs if not r.ok], sum(r.value for r in rs if r.ok))",
    ], tmp_path)
    expected = sum(sum(i * i for i in range(x)) for x in range(20))
    assert out[-1].split() == ["[]", str(expected)]
