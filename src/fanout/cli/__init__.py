"""The ``fanout`` command and its subcommands, apart from the library core.

    _run.py  _http.py  _chat.py  _bench.py  _mock_server.py  _demo.py   one module per command
    _util.py   what the commands share: exit codes, one-line errors, signals, input
    _batch.py  what the commands sending requests share (http, chat)

Subcommands live in their own modules and are imported only when invoked, so
``fanout --help`` and small commands start fast (rich, aiohttp and matplotlib
are not imported until a command needs them).

Exit codes: 0 all succeeded; 1 finished, some items failed; 2 usage or input
error (nothing run); 74 output not writable; 130 interrupted (143 on SIGTERM);
141 the reader of standard output went away (``fanout ... | head``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from fanout.cli._util import exit_broken_pipe

# name -> "module:attribute" of a click.Command
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fanout.cli._run:run_command", "Call MODULE:FUNCTION on every item of a file."),
    "http": ("fanout.cli._http:http_command", "Send a JSONL batch of HTTP requests."),
    "chat": ("fanout.cli._chat:chat_command", "Send a file of prompts to a chat API."),
    "mock-server": (
        "fanout.cli._mock_server:mock_server_command", "Run the embedded mock API server."
    ),
    "bench": ("fanout.cli._bench:bench_command", "Measure the concurrency models side by side."),
    "demo": ("fanout.cli._demo:demo_command", "Offline demo: one batch done five ways, timed."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fanout")
def cli() -> None:
    """Run a batch of calls fast and safely."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``fanout`` console script.

    Usage errors are one line, ``Error: what (try 'fanout run --help')``,
    rather than click's usage block. Bare ``fanout`` prints the help (exit 0).
    """
    args = sys.argv[1:] if argv is None else argv
    if not args:
        with click.Context(cli, info_name="fanout") as ctx:
            click.echo(ctx.get_help())
        sys.exit(0)
    try:
        return cli.main(args=args, prog_name="fanout", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Error: aborted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # `fanout ... | head`: the reader went away; leave quietly, like `seq | head`.
        exit_broken_pipe()

if __name__ == "__main__":
    main()
