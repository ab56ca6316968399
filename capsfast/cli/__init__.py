"""The ``capsfast`` command: ``main(argv) -> exit status``.

Each subcommand is a module of this package (``bench``: the benchmark's
package) with its own ``main(argv) -> exit status``, imported only when
that command runs, so ``capsfast check -q`` loads only what it uses.  User
errors become one ``capsfast: ...`` line on stderr and exit status 2, never
a traceback.
"""
import os
import sys

from capsfast.cli.options import PROG, UsageError, dispatch, error, flush, out
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn


def _command(module: str) -> "Callable[[list[str]], int]":
    """The command whose ``main(argv)`` is in ``module``, imported when run:
    ``capsfast check`` loads none of the other commands."""
    def run_command(argv: list[str]) -> int:
        main: Callable[[list[str]], int] = __import__(module, fromlist=["main"]).main
        return main(argv)

    return run_command


COMMANDS = {
    "bench": (_command("capsfast.bench"), "probe latency on this host, against the floor and the alternatives"),
    "capabilities": (_command("capsfast.cli.capabilities"),
                     "print the host's capabilities (libvirt XML, draft XML or JSON)"),
    "check": (_command("capsfast.cli.check"), "can KVM guests run here? why not, and what to do"),
    "export": (_command("capsfast.cli.export"),
               "feed fleet tools: NFD node labels, Prometheus textfile, Ansible fact"),
    "record": (_command("capsfast.cli.record"),
               "capture this host (or a remote one) as a recording that replays as it"),
    "watch": (_command("capsfast.cli.watch"),
              "print each change of the host's facts as it happens (inotify, uevents)"),
}


def _run(args: list[str]) -> int:
    if args and args[0] == "--version":
        from capsfast.constants import __version__

        out("%s %s\n" % (PROG, __version__))
        return 0
    return dispatch(PROG, COMMANDS, args, "What virtualization this Linux host can do "
                    "('%s --version' prints the version)." % PROG)


def main(argv: "Sequence[str] | None" = None) -> int:
    """Run the CLI; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _run(args)
        # The output is complete only once flushed: a full disk or a closed
        # standard output is an error, a reader that left is not.
        flush()
        return status
    except (UsageError, CapsfastError) as e:
        error(e)
        return 2
    except KeyboardInterrupt:
        return 130


def long_running() -> None:
    """Called by a command that stays running (watch, export --every): its
    process collects garbage again, as any long-lived Python process must."""
    import gc

    gc.enable()


def run() -> "NoReturn":
    """The ``capsfast`` command: main() on sys.argv, then the process ends.

    It ends with os._exit once the output is out: tearing the interpreter
    down (every module's objects, the C buffers) would cost about 3 ms of a
    25 ms ``capsfast capabilities`` and release nothing the kernel does not
    release anyway.  Everything capsfast writes is closed by then (exported
    files are written, synced and renamed inside main).

    Garbage collection is off (bin/capsfast turns it off before its first
    import): the long-running commands turn it back on (``long_running``)."""
    import gc

    gc.disable()
    status = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # main() already reported what it could; the status stands
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
